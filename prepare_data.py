"""Stage 0: write a dataset in the four-file input schema.

    python prepare_data.py                      # built-in demo data into data/demo/
"""

import json
import sys

from genrec.cli import run_script
from genrec.prepare import prepare


def main(cfg, extras) -> None:
    report = prepare(cfg)
    print(json.dumps(report, ensure_ascii=False, indent=2))


if __name__ == "__main__":
    sys.exit(run_script(main, __doc__))
