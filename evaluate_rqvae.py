"""Stage 1 (method A) report: Average Cosine Similarity and more for the RQ-VAE semantic IDs.

    python evaluate_rqvae.py

Reconstructions go through the trained decoder, back in the original vector space. When
evaluate_rq_kmeans.py has also run, both reports are printed side by side with a recommendation.
"""

import sys

from genrec.cli import run_script
from genrec.quantize.stage import evaluate_rqvae_stage


GROUPS = ["run", "data"]


def main(cfg, extras) -> None:
    evaluate_rqvae_stage(cfg)


if __name__ == "__main__":
    sys.exit(run_script(main, __doc__, groups=GROUPS))
