"""Shared test helpers: run a stage script in a temporary working folder on tiny generated data."""

from __future__ import annotations

import os
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATASETS = REPO.parent / "shared" / "datasets"

# Small enough for 2 CPU cores, large enough for 16 codes per level (faiss wants ~39 points per code).
TINY_DEMO = ["--prepare.demo_songs", "640", "--prepare.demo_playlists", "600",
             "--ids.codebook_size", "16"]

# A one-layer T5 trained a few steps, and an evaluation on a few playlists: enough to exercise stages 3-5.
TINY_MODEL = ["--train.max_steps", "3", "--network.d_model", "32", "--network.d_ff", "64", "--network.num_heads", "2",
              "--network.d_kv", "16", "--network.num_layers", "1", "--network.num_decoder_layers", "1",
              "--network.text_vocab_size", "300", "--train.val_loss_examples", "200"]
TINY_EVAL = ["--eval.max_playlists", "24", "--eval.num_songs", "10", "--eval.k_values", "[5,10]",
             "--decode.num_beams", "10", "--eval.val_playlists", "16", "--decode.batch_size", "8"]


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


# A tiny retrieval model (all four served systems) through the whole pipeline, bundle included.
TINY_BUNDLE = [*TINY_DEMO, *TINY_MODEL, *TINY_EVAL, "--retrieval.songs", "10"]


@pytest.fixture(scope="session")
def tiny_pipeline(tmp_path_factory, worker_id) -> Path:
    """The working folder of one run_pipeline.py with TINY_BUNDLE, made once for the whole test session and shared
    by every xdist worker (a file lock: the first worker builds it, the others wait). Read it, never change it:
    copy the bundle (``models/bundle``) to change it."""
    from filelock import FileLock

    root = tmp_path_factory.getbasetemp()
    root = root if worker_id == "master" else root.parent
    work = root / "tiny_pipeline"
    with FileLock(str(root / "tiny_pipeline.lock")):
        if not (work / "models" / "bundle" / "manifest.json").is_file():
            work.mkdir(exist_ok=True)
            run_stage("run_pipeline.py", *TINY_BUNDLE, cwd=work)
    return work


def shared_dataset(name: str) -> Path:
    path = SHARED_DATASETS / name
    if not path.exists():
        pytest.skip(f"real dataset {path} is absent (it is provided in ../shared/datasets, never committed)")
    return path


def synonym_title_vectors(synonyms: dict[str, str], dim: int = 64):
    """Fake title vectors (genrec.evaluate.baselines.TitleVectors): one direction per normalised title, a synonym sharing
    the direction of the title it stands for."""
    from genrec.evaluate.baselines import normalise_title

    def vectors(titles):
        rows = np.zeros((len(titles), dim), dtype=np.float32)
        for i, title in enumerate(titles):
            name = normalise_title(title)
            rows[i, zlib.crc32(synonyms.get(name, name).encode()) % dim] = 1.0
        return rows
    return vectors
