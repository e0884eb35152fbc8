"""Shared test helpers: run a stage script in a temporary working folder on tiny generated data."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATASETS = REPO.parent / "shared" / "datasets"

# Small enough for 2 CPU cores, large enough for 16 codes per level (faiss wants ~39 points per code).
TINY_DEMO = ["--prepare.demo_songs", "640", "--prepare.demo_playlists", "600", "--prepare.demo_tastes", "12",
             "--rqkmeans.vocab_size", "16", "--rqvae.vocab_size", "16"]


def run_stage(script: str, *args: str, cwd: Path, check: bool = True, input: str | None = None,
              timeout: int = 600) -> subprocess.CompletedProcess:
    """Run ``python <repo>/<script> args`` in ``cwd``; on failure with check, show its output."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", TOKENIZERS_PARALLELISM="false")
    proc = subprocess.run([sys.executable, str(REPO / script), *args], cwd=cwd, capture_output=True,
                          text=True, input=input, timeout=timeout, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(f"{script} {' '.join(args)} exited {proc.returncode}\n"
                             f"stdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}")
    return proc


@pytest.fixture
def workdir(tmp_path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def tiny_demo(workdir) -> Path:
    """A working folder with tiny demo data in data/demo/ (the default config points there)."""
    run_stage("prepare_data.py", *TINY_DEMO, cwd=workdir)
    return workdir


def shared_dataset(name: str) -> Path:
    path = SHARED_DATASETS / name
    if not path.exists():
        pytest.skip(f"real dataset {path} is absent (it is provided in ../shared/datasets, never committed)")
    return path
