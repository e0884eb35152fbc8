"""Stage 0: write a dataset in the four-file input schema.

    python prepare_data.py                      # built-in demo data into data/demo/
    python prepare_data.py --prepare.source mpd --prepare.input ../shared/datasets/spotify_mpd \
        --prepare.output data/spotify_mpd       # Spotify MPD slices, item2vec song vectors
    python prepare_data.py --prepare.source csv --prepare.input ../shared/datasets/kkbox \
        --prepare.output data/kkbox             # tables in the input schema (see README)

An import writes data/<name>/config.yaml: pass it to every later stage (--config data/<name>/config.yaml).
"""

import json
import sys

from genrec.cli import run_script
from genrec.data.prepare import prepare


def main(cfg, extras) -> None:
    report = prepare(cfg)
    print(json.dumps(report, ensure_ascii=False, indent=2))


if __name__ == "__main__":
    sys.exit(run_script(main, __doc__))
