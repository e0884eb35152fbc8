"""Helpers of the fault, kill and full-disk tests: run a stage script in this process through its real entry point
(its ``if __name__ == "__main__"`` block, so parsing, logging and error reporting are the script's own), and take a
snapshot of every artifact of a working folder to compare before and after."""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import runpy
import shutil
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path

from conftest import REPO

ARTIFACT_FOLDERS = ("data", "outputs", "models", "inputs")
"""The folders of a working folder whose every file a failed run must leave as it was (logs/ may grow)."""


@dataclass
class Outcome:
    code: int
    stdout: str
    stderr: str

    @property
    def error_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.startswith("error:")]


def run_in_process(script: str, *args: str, stdin: str = "") -> Outcome:
    """``python <script> args`` in the current folder, without a new interpreter: the script's module runs as
    __main__ with sys.argv set, and its exit code, stdout and stderr are captured. An exception that escapes the
    script is written to stderr as the traceback Python would print."""
    out, err = io.StringIO(), io.StringIO()
    saved_argv, saved_stdin = sys.argv, sys.stdin
    sys.argv, sys.stdin = [str(REPO / script), *args], io.StringIO(stdin)
    code = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                runpy.run_path(str(REPO / script), run_name="__main__")
            except SystemExit as done:
                code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
            except BaseException:  # noqa: BLE001 - what a user would see as a traceback
                err.write(traceback.format_exc())
                code = 1
    finally:
        sys.argv, sys.stdin = saved_argv, saved_stdin
        root = logging.getLogger()
        for handler in root.handlers[:]:  # the script's log file stays open otherwise
            root.removeHandler(handler)
            handler.close()
    return Outcome(code, out.getvalue(), err.getvalue())


def snapshot(work: Path) -> dict[str, str]:
    """sha256 of every file, and every folder's name (a leftover staging folder shows), under the artifact folders."""
    state = {}
    for folder in ARTIFACT_FOLDERS:
        for path in sorted((work / folder).rglob("*")) if (work / folder).exists() else []:
            key = str(path.relative_to(work))
            state[key] = "folder" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
    return state


def assert_one_line_refusal(outcome: Outcome, *fragments: str) -> str:
    """Exit != 0, exactly one ``error:`` line, naming every fragment, and no traceback. (The log's INFO lines and a
    progress bar closing may share stderr; the error line is the only one that starts with ``error:``.)"""
    assert "Traceback" not in outcome.stderr, outcome.stderr[-3000:]
    assert outcome.code != 0, (outcome.stdout[-2000:], outcome.stderr[-2000:])
    assert len(outcome.error_lines) == 1, outcome.stderr[-3000:]
    line = outcome.error_lines[0]
    for fragment in fragments:
        assert fragment in line, (fragment, line)
    return line


def copy_work(source: Path, dest: Path) -> Path:
    shutil.copytree(source, dest, ignore=shutil.ignore_patterns("logs"), symlinks=True)
    return dest
