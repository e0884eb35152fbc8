"""Stage 1 (method A): quantise song vectors into semantic IDs with an RQ-VAE (trained not to collapse).

    python train_rqvae.py --ids.levels 3 --ids.codebook_size 64

Writes outputs/song_semantic_ids.jsonl (the same file RQ-KMeans writes: the last one trained wins)
and the model under models/rqvae/.
"""

import sys

from genrec.cli import run_script
from genrec.quantize.stage import train_rqvae_stage


GROUPS = ["run", "data", "ids", "rqvae"]
SHORT_FLAGS = {"--seed": "--run.seed"}


def main(cfg, extras) -> None:
    path = train_rqvae_stage(cfg)
    print(f"semantic IDs written to {path}; next: python evaluate_rqvae.py")


if __name__ == "__main__":
    sys.exit(run_script(main, __doc__, short=SHORT_FLAGS, groups=GROUPS))
