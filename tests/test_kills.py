"""Kill tests: SIGKILL a long stage at a chosen moment (tests/kill_at.py), then check that nothing is mixed and that
the rerun either resumes to the result of an uninterrupted run or refuses with one line naming the stage to rerun.

The training kills run several tiny trainings: they are marked ``slow`` (``python -m pytest -q -m slow
tests/test_kills.py``, or bench/kills.py for a table); the kills of stage 0 and stage 1 run in the default suite.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, TINY_DEMO, TINY_EVAL, TINY_MODEL, run_stage
from faults import assert_one_line_refusal, copy_work, run_in_process, snapshot

KILLED = -signal.SIGKILL
TRAIN = (*TINY_DEMO, *TINY_MODEL, "--retrieval.songs", "10", "--train.max_steps", "6", "--train.eval_steps", "2")
"""Six steps, a validation and a checkpoint every two: kills land between checkpoints and inside one."""


def run_killed(moment: str, calls: int, script: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, str(REPO / "tests" / "kill_at.py"), moment, str(calls), script, *args],
                          cwd=cwd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == KILLED, f"not killed at {moment} (exit {proc.returncode}):\n{proc.stderr[-3000:]}"
    return proc


def staging_leftovers(work: Path) -> list[Path]:
    return [p for p in work.rglob(".*.tmp") if p.is_dir()]


def files_of(folder: Path) -> dict[str, str]:
    """sha256 of every file of a folder but its manifest (which records when it was written)."""
    return {k: v for k, v in snapshot(folder).items() if v != "folder" and not k.endswith("manifest.json")}


# ------------------------------------------------------------------------------------------------ stage 0 and 1


def test_a_kill_mid_import_leaves_the_old_dataset_and_the_rerun_writes_the_same_one(tiny_pipeline, tmp_path):
    work = copy_work(tiny_pipeline, tmp_path / "work")
    before = snapshot(work)
    run_killed("mid-import", 1, "prepare_data.py", *TINY_DEMO, "--prepare.output", "data/demo", cwd=work)
    assert staging_leftovers(work / "data")  # the killed writer's half-written copy, beside the intact old one
    assert {k: v for k, v in snapshot(work).items() if ".tmp" not in k} == before
    run_stage("prepare_data.py", *TINY_DEMO, cwd=work)
    assert not staging_leftovers(work / "data")
    assert files_of(work / "data") == files_of(tiny_pipeline / "data")


def test_a_kill_between_codebooks_and_ids_is_refused_downstream_and_the_rerun_gives_the_same_ids(
        tiny_pipeline, tmp_path, monkeypatch):
    work = copy_work(tiny_pipeline, tmp_path / "work")
    run_stage("train_rq_kmeans.py", *TINY_DEMO, "--seed", "7", cwd=work)  # a pair unlike the one killed below
    run_killed("between-codebooks-and-ids", 1, "train_rq_kmeans.py", *TINY_DEMO, cwd=work)
    monkeypatch.chdir(work)
    before = snapshot(work)
    assert_one_line_refusal(run_in_process("prepare_corpus.py", *TINY_DEMO), "song_semantic_ids.jsonl",
                            "train_rq_kmeans.py")
    assert snapshot(work) == before
    run_stage("train_rq_kmeans.py", *TINY_DEMO, cwd=work)
    for path in ("models/rq_kmeans_codebooks.npy", "outputs/song_semantic_ids.jsonl"):
        assert (work / path).read_bytes() == (tiny_pipeline / path).read_bytes()
    assert not staging_leftovers(work)


RQVAE = (*TINY_DEMO, "--rqvae.epochs", "6")


@pytest.fixture(scope="module")
def rqvae_uninterrupted(tiny_pipeline, tmp_path_factory) -> Path:
    """The tiny pipeline's folder after one RQ-VAE training never killed."""
    work = copy_work(tiny_pipeline, tmp_path_factory.mktemp("rqvae") / "uninterrupted")
    run_stage("train_rqvae.py", *RQVAE, cwd=work)
    return work


@pytest.mark.parametrize("moment, calls", [("rqvae-epoch", 3), ("between-codebooks-and-ids", 1)])
def test_a_killed_rqvae_training_changes_nothing_and_the_rerun_gives_the_uninterrupted_ids(
        tiny_pipeline, rqvae_uninterrupted, tmp_path, monkeypatch, moment, calls):
    """RQ-VAE training has no checkpoints to resume: killed mid-epoch it leaves every earlier artifact as it was;
    killed between its model and its IDs, the IDs left are refused downstream; the rerun trains again, to the
    same model and IDs as a run never killed."""
    uninterrupted = rqvae_uninterrupted
    work = copy_work(tiny_pipeline, tmp_path / "work")
    if moment == "between-codebooks-and-ids":  # an RQ-VAE pair unlike the one killed below (else the IDs left
        run_stage("train_rqvae.py", *RQVAE, "--seed", "7", cwd=work)  # are RQ-KMeans', whole and consistent)
    before = snapshot(work)
    run_killed(moment, calls, "train_rqvae.py", *RQVAE, cwd=work)
    if moment == "rqvae-epoch":
        assert {k: v for k, v in snapshot(work).items() if ".tmp" not in k} == before
    else:
        monkeypatch.chdir(work)
        assert_one_line_refusal(run_in_process("prepare_corpus.py", *TINY_DEMO), "song_semantic_ids.jsonl",
                                "train_rqvae.py")
    run_stage("train_rqvae.py", *RQVAE, cwd=work)
    assert files_of(work / "models" / "rqvae") == files_of(uninterrupted / "models" / "rqvae")
    ids = "outputs/song_semantic_ids.jsonl"
    assert (work / ids).read_bytes() == (uninterrupted / ids).read_bytes()
    assert not staging_leftovers(work)


# ------------------------------------------------------------------------------------------------ stage 3


def best_loss(work: Path) -> tuple[float, int]:
    summary = json.loads((work / "models/tiger_final/manifest.json").read_text(encoding="utf-8"))["summary"]
    return summary["best_eval"]["eval_loss"], summary["global_step"]


@pytest.mark.parametrize("main_process", [True, False])
def test_resume_picks_the_newest_checkpoint_written_whole_and_the_main_process_removes_the_others(tmp_path,
                                                                                                  main_process):
    from genrec.train.loop import CHECKPOINT_FILES, last_complete_checkpoint
    for step, files, state in [(2, CHECKPOINT_FILES, '{"global_step": 2}'), (4, CHECKPOINT_FILES[:1], None),
                               (6, CHECKPOINT_FILES, '{"global_st'), (8, CHECKPOINT_FILES[1:], '{"global_step": 8}')]:
        folder = tmp_path / f"checkpoint-{step}"
        folder.mkdir()
        for name in files:
            (folder / name).write_bytes(b"x")
        if state is not None:
            (folder / "trainer_state.json").write_text(state, encoding="utf-8")
    assert last_complete_checkpoint(tmp_path, remove_incomplete=main_process) == str(tmp_path / "checkpoint-2")
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == (["checkpoint-2"] if main_process else [f"checkpoint-{n}" for n in (2, 4, 6, 8)])


@pytest.fixture(scope="module")
def uninterrupted(tiny_pipeline, tmp_path_factory) -> tuple[float, int]:
    work = copy_work(tiny_pipeline, tmp_path_factory.mktemp("uninterrupted") / "work")
    run_stage("train_tiger.py", *TRAIN, cwd=work)
    return best_loss(work)


@pytest.mark.slow
@pytest.mark.parametrize("moment, calls, resumed_from", [
    ("mid-epoch", 4, 2),         # the fourth step: checkpoint-2 written, step 4's not reached
    ("checkpoint-write", 2, 2),  # checkpoint-4's weights written, its optimizer and trainer_state.json not
    ("checkpoint-write", 3, 4),  # the last checkpoint half-written, tiger_final not yet replaced
])
def test_a_killed_training_resumes_to_the_uninterrupted_result(moment, calls, resumed_from, uninterrupted,
                                                               tiny_pipeline, tmp_path):
    work = copy_work(tiny_pipeline, tmp_path / "work")
    final_before = files_of(work / "models/tiger_final")
    run_killed(moment, calls, "train_tiger.py", *TRAIN, cwd=work)
    assert files_of(work / "models/tiger_final") == final_before  # the old model, whole
    resumed = run_stage("train_tiger.py", *TRAIN, "--train.resume", "true", cwd=work)
    assert "Traceback" not in resumed.stderr
    summary = json.loads((work / "models/tiger_final/manifest.json").read_text(encoding="utf-8"))["summary"]
    assert summary["resumed_from_step"] == resumed_from
    assert best_loss(work) == pytest.approx(uninterrupted, rel=1e-5)
    assert not staging_leftovers(work)


@pytest.mark.slow
def test_a_run_killed_during_its_only_checkpoint_starts_again_on_resume(tiny_pipeline, tmp_path):
    work = copy_work(tiny_pipeline, tmp_path / "work")
    run_killed("checkpoint-write", 1, "train_tiger.py", *TRAIN, cwd=work)
    assert not (work / "models/tiger_checkpoints/checkpoint-2/trainer_state.json").exists()
    resumed = run_stage("train_tiger.py", *TRAIN, "--train.resume", "true", cwd=work)
    assert "removing" in resumed.stderr and "interrupted" in resumed.stderr
    assert best_loss(work)[1] == 6


# ------------------------------------------------------------------------------------------------ stages 4 and 5

EVALUATED = (*TINY_DEMO, *TINY_MODEL, *TINY_EVAL, "--retrieval.songs", "10")
"""The tiny pipeline's own settings: its evaluation and bundle are what these reruns must reproduce."""


@pytest.mark.slow
def test_a_kill_between_the_metrics_and_the_tuning_is_refused_by_the_export_until_the_evaluation_reruns(
        tiny_pipeline, tmp_path, monkeypatch):
    work = copy_work(tiny_pipeline, tmp_path / "work")
    run_killed("between-metrics-and-tuning", 1, "evaluate_tiger.py", *EVALUATED, "--decode.num_beams", "12",
               cwd=work)
    monkeypatch.chdir(work)
    before = snapshot(work)
    assert_one_line_refusal(run_in_process("export_bundle.py", *EVALUATED, "--decode.num_beams", "12"),
                            "hybrid.json", "evaluate_tiger.py")
    assert snapshot(work) == before
    run_stage("evaluate_tiger.py", *EVALUATED, cwd=work)
    run_stage("export_bundle.py", *EVALUATED, cwd=work)
    assert files_of(work / "models/bundle") == files_of(tiny_pipeline / "models/bundle")


@pytest.mark.slow
def test_a_kill_mid_export_leaves_the_old_bundle_and_the_rerun_writes_the_same_one(tiny_pipeline, tmp_path):
    work = copy_work(tiny_pipeline, tmp_path / "work")
    before = files_of(work / "models/bundle")
    run_killed("mid-export", 1, "export_bundle.py", *EVALUATED, cwd=work)
    assert staging_leftovers(work / "models") and files_of(work / "models/bundle") == before
    run_stage("export_bundle.py", *EVALUATED, cwd=work)
    assert not staging_leftovers(work) and files_of(work / "models/bundle") == before
