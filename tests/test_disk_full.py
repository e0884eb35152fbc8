"""A full disk or a read-only one while a stage writes: one line, exit != 0, the earlier artifacts intact, no staging
folder left.

The disk is a real small filesystem (a tmpfs mounted for the test, where this machine lets the test mount one) filled
to a chosen number of free bytes, so the stage meets ENOSPC where it would on a full disk; and, on any machine, a
file size limit (RLIMIT_FSIZE) on the stage's process, under which a write past the limit fails the same way (EFBIG).
"""

from __future__ import annotations

import os
import resource
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, TINY_DEMO, TINY_MODEL
from faults import assert_one_line_refusal, copy_work, run_in_process, snapshot

KB = 1024


@pytest.fixture
def small_disk(tmp_path):
    """A 2 MiB tmpfs at tmp_path/disk, unmounted after the test."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(disk)], capture_output=True,
                             text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({mounted.stderr.strip() or 'mount failed'}); "
                    "the file size limit test covers a refused write")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=False)


def fill(disk: Path, leave: int) -> None:
    """Fill ``disk`` with a filler file until about ``leave`` bytes are free."""
    stats = os.statvfs(disk)
    free = stats.f_bavail * stats.f_frsize
    (disk / "filler").write_bytes(bytes(max(0, free - leave)))


def staging_leftovers(folder: Path) -> list[Path]:
    return [p for p in folder.rglob(".*.tmp")]


def test_a_full_disk_during_stage_1_is_one_line_and_keeps_the_old_codebooks_and_ids(tiny_pipeline, small_disk,
                                                                                   tmp_path, monkeypatch):
    work = copy_work(tiny_pipeline, tmp_path / "work")
    for folder in ("models", "outputs"):  # stage 1's targets live on the small disk
        shutil.copytree(work / folder, small_disk / folder, ignore=shutil.ignore_patterns("tiger_*", "bundle"))
    fill(small_disk, leave=4 * KB)
    before = snapshot(small_disk)
    monkeypatch.chdir(work)
    outcome = run_in_process("train_rq_kmeans.py", *TINY_DEMO, "--seed", "7", "--run.model_dir",
                             str(small_disk / "models"), "--run.output_dir", str(small_disk / "outputs"))
    assert_one_line_refusal(outcome, str(small_disk / "models" / "rq_kmeans_codebooks.npy"),
                            "earlier artifacts are intact")
    assert {k: v for k, v in snapshot(small_disk).items() if k != "filler"} == \
        {k: v for k, v in before.items() if k != "filler"}
    assert not staging_leftovers(small_disk)


def test_a_read_only_disk_during_stage_1_is_one_line_and_keeps_the_old_codebooks_and_ids(tiny_pipeline, small_disk,
                                                                                        tmp_path, monkeypatch):
    work = copy_work(tiny_pipeline, tmp_path / "work")
    shutil.copytree(work / "models", small_disk / "models", ignore=shutil.ignore_patterns("tiger_*", "bundle"))
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    before = snapshot(small_disk)
    monkeypatch.chdir(work)
    outcome = run_in_process("train_rq_kmeans.py", *TINY_DEMO, "--seed", "7", "--run.model_dir",
                             str(small_disk / "models"))
    assert_one_line_refusal(outcome, "Read-only file system", str(small_disk / "models"), "earlier artifacts are intact")
    assert snapshot(small_disk) == before


def test_a_full_disk_during_training_is_one_line_and_keeps_the_old_model(tiny_pipeline, small_disk, tmp_path,
                                                                       monkeypatch):
    work = copy_work(tiny_pipeline, tmp_path / "work")
    shutil.copytree(work / "models" / "tiger_final", small_disk / "models" / "tiger_final")
    # Room for the tokenizer and run.json beside the checkpoints, not for the first checkpoint's weights.
    fill(small_disk, leave=96 * KB)
    before = snapshot(small_disk)
    monkeypatch.chdir(work)
    outcome = run_in_process("train_tiger.py", *TINY_MODEL, "--train.max_steps", "1",
                             "--run.model_dir", str(small_disk / "models"))
    assert_one_line_refusal(outcome, "No space left on device", str(small_disk / "models" / "tiger_checkpoints"),
                            "earlier artifacts are intact")
    assert (small_disk / "models" / "tiger_checkpoints" / "tokenizer" / "tokenizer.json").is_file()  # it got that far
    after = snapshot(small_disk)
    assert {k: v for k, v in after.items() if "tiger_final" in k} == \
        {k: v for k, v in before.items() if "tiger_final" in k}
    assert not staging_leftovers(small_disk)


def limit_file_size(limit: int):
    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit then fails with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


def test_a_refused_write_during_stage_1_is_one_line_and_keeps_the_old_codebooks_and_ids(tiny_pipeline, tmp_path):
    work = copy_work(tiny_pipeline, tmp_path / "work")
    before = snapshot(work)
    # Smaller than the codebooks and the IDs file, larger than the stage's log.
    proc = subprocess.run([sys.executable, str(REPO / "train_rq_kmeans.py"), *TINY_DEMO, "--seed", "7"], cwd=work,
                          capture_output=True, text=True, timeout=600, preexec_fn=limit_file_size(16 * KB))
    assert "Traceback" not in proc.stderr and proc.returncode == 1, proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "models/rq_kmeans_codebooks.npy" in errors[0] and "intact" in errors[0], errors
    assert snapshot(work) == before
    assert not staging_leftovers(work)
