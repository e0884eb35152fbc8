"""Not built yet: see the open issues."""

import sys

from genrec.cli import not_built_yet

if __name__ == "__main__":
    sys.exit(not_built_yet("train_tiger.py"))
