"""Stage 2: build train/val/test corpus files (title -> semantic-ID tokens) from the semantic IDs.

    python prepare_corpus.py                                   # defaults: single mode, suffix collisions
    python prepare_corpus.py --corpus.target_mode sequence     # the original: one example per playlist
"""

import json
import sys

from genrec.cli import run_script
from genrec.corpus.build import build_corpus


GROUPS = ["run", "data", "split", "corpus"]


def main(cfg, extras) -> None:
    report = build_corpus(cfg)
    print(json.dumps(report, ensure_ascii=False, indent=2))
    print(f"corpus written to {cfg.run.output_dir}/{{train,val,test}}.tsv; next: python train_tiger.py")


if __name__ == "__main__":
    sys.exit(run_script(main, __doc__, groups=GROUPS))
