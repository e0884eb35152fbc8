"""Run every kill test (tests/test_kills.py, the slow training kills included) and print one table: the case, its
outcome and its seconds.

    python bench/kills.py            # about as long as a few tiny trainings on this machine
    python bench/kills.py -k mid     # only the cases whose name matches, as pytest -k reads it
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ElementTree
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-k", default="", help="Only the cases whose name matches this pytest -k expression.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "kills.xml"
        # -m '' lifts the default 'not slow'; one process, since every case trains on the same 2 cores anyway.
        command = [sys.executable, "-m", "pytest", "-q", "-n", "0", "-m", "", "-p", "no:cacheprovider",
                   f"--junitxml={report}", "tests/test_kills.py", *(["-k", args.k] if args.k else [])]
        proc = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
        if not report.exists():
            print(proc.stdout[-3000:], proc.stderr[-3000:], sep="\n")
            return proc.returncode or 1
        cases = ElementTree.parse(report).getroot().iter("testcase")
        rows = [(case.get("name"), outcome(case), float(case.get("time", 0))) for case in cases]
    width = max(len(name) for name, _, _ in rows)
    print(f"{'case':<{width}}  outcome  seconds")
    for name, result, seconds in rows:
        print(f"{name:<{width}}  {result:<7}  {seconds:7.1f}")
    print(f"{'total':<{width}}  {sum(r == 'passed' for _, r, _ in rows)}/{len(rows)}    {sum(s for *_, s in rows):7.1f}")
    return proc.returncode


def outcome(case: ElementTree.Element) -> str:
    for tag in ("failure", "error", "skipped"):
        if case.find(tag) is not None:
            return {"failure": "FAILED", "error": "ERROR", "skipped": "skipped"}[tag]
    return "passed"


if __name__ == "__main__":
    sys.exit(main())
