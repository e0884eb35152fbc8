"""Stage 5: write the model bundle, one folder that serves every system on its own (run_pipeline.py runs it last).

    python export_bundle.py                          # models/bundle from models/ and outputs/
    python export_bundle.py --model models/spotify_mpd

It holds the trained model, the catalogue with song names and artists, what title kNN, the retrieved list and the
hybrid read, the system that scored best on the validation split (served by default), and a manifest with every
file's sha256. Copy the folder anywhere and serve it: python generate_playlist.py --model PATH.
"""

import sys

from genrec.cli import run_script
from genrec.serve.bundle import read_bundle
from genrec.serve.export import export_bundle


GROUPS = ["run", "data", "decode"]
SHORT_FLAGS = {"--model": "--run.model_dir"}


def main(cfg, extras) -> None:
    folder = export_bundle(cfg)
    serving = read_bundle(folder).serving
    print(f"bundle written to {folder}: serves {', '.join(serving['systems'])}; default {serving['default_system']} "
          f"(best on the validation split)")


if __name__ == "__main__":
    sys.exit(run_script(main, __doc__, short=SHORT_FLAGS, groups=GROUPS))
