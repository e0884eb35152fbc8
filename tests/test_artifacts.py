"""Atomic writes: an artifact is replaced whole or not at all, and a killed writer's staging folder does not stay.
A folder's manifest hashes every file in it, and a changed, missing or added file is refused."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from conftest import REPO
import json

from genrec.artifacts import atomic_path, require_fresh, write_manifest, write_text
from genrec.errors import ArtifactError


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


@pytest.mark.parametrize("change, message", [
    (lambda f: (f / "weights.bin").write_bytes(b"\1\2"), "weights.bin changed after"),
    (lambda f: (f / "sub" / "vocab.json").unlink(), "vocab.json is missing"),
    (lambda f: (f / "stray.txt").write_text("x"), "stray.txt was added after"),
])
def test_a_folder_manifest_hashes_every_file_and_refuses_any_change(tmp_path, change, message):
    folder = tmp_path / "model"
    (folder / "sub").mkdir(parents=True)
    (folder / "weights.bin").write_bytes(b"\0\1")
    (folder / "sub" / "vocab.json").write_text("{}")
    (folder / "sub" / "manifest.json").write_text("{}")  # a copied artifact's own manifest, as in a bundle
    manifest = write_manifest(folder, [], {})
    assert set(manifest["files"]) == {"weights.bin", "sub/vocab.json", "sub/manifest.json"}
    (folder / ".x.123.abc.tmp").mkdir()  # a killed writer's staging folder is not part of the artifact
    require_fresh(folder, "train.py")
    change(folder)
    with pytest.raises(ArtifactError, match=f"{message}.*train.py"):
        require_fresh(folder, "train.py")


def test_a_folder_manifest_from_before_content_hashes_is_read_as_it_is(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "table.csv").write_text("a\n")
    (folder / "manifest.json").write_text(json.dumps({"artifact": str(folder), "inputs": {}}))
    assert require_fresh(folder, "prepare_data.py")["inputs"] == {}
