"""Stage 1 (method B) report: Average Cosine Similarity and more for the RQ-KMeans semantic IDs.

    python evaluate_rq_kmeans.py
"""

import sys

from genrec.cli import run_script
from genrec.quantize.stage import evaluate_rq_kmeans_stage


GROUPS = ["run", "data"]


def main(cfg, extras) -> None:
    evaluate_rq_kmeans_stage(cfg)


if __name__ == "__main__":
    sys.exit(run_script(main, __doc__, groups=GROUPS))
