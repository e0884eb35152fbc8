"""Stage 4b: playlist continuation, the RecSys Challenge 2018 task: a title and seed songs in, the rest out.

    python evaluate_continuation.py --config data/spotify_mpd/config.yaml --config presets/mpd_cpu.yaml
    python evaluate_continuation.py --without-model          # the systems that need no trained model

Scores every system (popularity, title kNN, the model reading the title, item co-occurrence kNN and item2vec from
the seeds, the co-occurrence walk from the seeds and the title, and the hybrid of the model with the walk) in each
challenge category on the test split, seeds never counted or recommended (genrec.evaluate.continuation). Prints
one table per metric with 95% bootstrap intervals and writes outputs/continuation_metrics.json. A separate script
from evaluate_tiger.py: it writes its own file and leaves hybrid.json, which the bundle reads, alone.
"""

import sys

from genrec.cli import run_script
from genrec.evaluate.continuation import continuation_stage


GROUPS = ["run", "data", "decode", "eval"]
SHORT_FLAGS = {"--model": "--run.model_dir", "--num-songs": "--eval.num_songs", "--seed": "--run.seed"}


def script_flags(parser) -> None:
    parser.add_argument("--without-model", action="store_true",
                        help="Skip the trained model: the hybrid fuses title kNN with the walk instead.")


def main(cfg, extras) -> None:
    continuation_stage(cfg, use_model=not extras["without_model"])


if __name__ == "__main__":
    sys.exit(run_script(main, __doc__, extra=script_flags, short=SHORT_FLAGS, groups=GROUPS))
