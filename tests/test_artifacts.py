"""Atomic writes: an artifact is replaced whole or not at all, and a killed writer's staging folder does not stay."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from conftest import REPO
from genrec.artifacts import atomic_path, write_text


def test_a_failed_write_leaves_the_old_file_and_no_staging_folder(tmp_path):
    target = tmp_path / "out.txt"
    write_text(target, "old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as staged:
            staged.write_text("half", encoding="utf-8")
            raise RuntimeError("crash")
    assert target.read_text(encoding="utf-8") == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_a_killed_writers_staging_folder_is_removed_by_the_next_write_but_a_living_ones_stays(tmp_path):
    target = tmp_path / "model"
    # A writer killed mid-write: its process is gone, its staging folder is left.
    code = ("import sys, os, signal; sys.path.insert(0, sys.argv[1]); from genrec.artifacts import atomic_path\n"
            "with atomic_path(sys.argv[2]) as staged:\n    staged.mkdir(); os.kill(os.getpid(), signal.SIGKILL)\n")
    proc = subprocess.run([sys.executable, "-c", code, str(REPO), str(target)], capture_output=True)
    assert proc.returncode != 0
    dead = [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert len(dead) == 1
    alive = tmp_path / f".model.{os.getpid()}.keep.tmp"  # this process's: still writing, as far as anyone knows
    alive.mkdir()
    with atomic_path(target) as staged:
        staged.mkdir()
        (staged / "weights").write_text("new", encoding="utf-8")
    assert (target / "weights").read_text(encoding="utf-8") == "new"
    assert not dead[0].exists() and alive.exists()
