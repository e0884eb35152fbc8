"""Stage 0: write a dataset in the four-file input schema.

    python prepare_data.py                      # built-in demo data into data/demo/
    python prepare_data.py --source mpd --input ../shared/datasets/spotify_mpd --output data/spotify_mpd
    python prepare_data.py --source csv --input ../shared/datasets/kkbox --output data/kkbox

An import writes data/<name>/config.yaml: pass it to every later stage (--config data/<name>/config.yaml).
"""

import json
import sys

from genrec.cli import run_script
from genrec.data.prepare import prepare


GROUPS = ["run", "data", "split", "prepare"]
SHORT_FLAGS = {"--source": "--prepare.source", "--input": "--prepare.input", "--output": "--prepare.output", "--seed": "--run.seed"}


def main(cfg, extras) -> None:
    report = prepare(cfg)
    print(json.dumps(report, ensure_ascii=False, indent=2))


if __name__ == "__main__":
    sys.exit(run_script(main, __doc__, short=SHORT_FLAGS, groups=GROUPS))
