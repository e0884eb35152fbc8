"""Stage 1 (method B): quantise song vectors into semantic IDs with residual k-means (faiss).

    python train_rq_kmeans.py --ids.levels 3 --ids.codebook_size 64
"""

import sys

from genrec.cli import run_script
from genrec.quantize.stage import train_rq_kmeans_stage


GROUPS = ["run", "data", "ids", "rqkmeans"]
SHORT_FLAGS = {"--seed": "--run.seed"}


def main(cfg, extras) -> None:
    path = train_rq_kmeans_stage(cfg)
    print(f"semantic IDs written to {path}; next: python evaluate_rq_kmeans.py")


if __name__ == "__main__":
    sys.exit(run_script(main, __doc__, short=SHORT_FLAGS, groups=GROUPS))
