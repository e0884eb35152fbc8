"""Stage 4: score the model against popularity, title kNN and their hybrid on the test playlists.

    python evaluate_tiger.py                                   # the test split
    python evaluate_tiger.py --eval.playlist_info_file new_info.csv --eval.playlist_songs_file new_songs.csv
    torchrun --nproc_per_node=2 evaluate_tiger.py              # shards the decoding, same metrics

Prints one table (model constrained / unconstrained, hybrid, popularity, title kNN) and writes
outputs/evaluation_metrics.json, outputs/evaluation_results.txt and outputs/evaluation_recall.png.
"""

import sys

from genrec.cli import run_script
from genrec.evaluate.run import evaluate_tiger_stage


GROUPS = ["run", "data", "decode", "eval"]
SHORT_FLAGS = {"--model": "--run.model_dir", "--num-songs": "--eval.num_songs", "--seed": "--run.seed"}


def main(cfg, extras) -> None:
    evaluate_tiger_stage(cfg)


if __name__ == "__main__":
    sys.exit(run_script(main, __doc__, short=SHORT_FLAGS, groups=GROUPS))
