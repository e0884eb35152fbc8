"""The whole job: run_pipeline.py on tiny demo data, then generate_playlist.py in every mode."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from conftest import TINY_DEMO, TINY_EVAL, TINY_MODEL, run_stage
from genrec.decode.decoding import expand_ids
from genrec.corpus.id_tokens import SemanticIdVocab

FLAGS = [*TINY_DEMO, *TINY_MODEL, *TINY_EVAL, "--generate.num_songs", "5", "--decode.num_beams", "8"]


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    work = tmp_path_factory.mktemp("pipeline")
    first = run_stage("run_pipeline.py", *FLAGS, cwd=work)
    return work, first


def playlist_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line[:4].strip().rstrip(".").isdigit()]


def test_pipeline_runs_every_stage_and_ends_with_a_playlist(pipeline):
    work, first = pipeline
    for script in ("prepare_data.py", "train_rq_kmeans.py", "prepare_corpus.py", "train_tiger.py", "evaluate_tiger.py",
                   "export_bundle.py"):
        assert f"=== {script} done" in first.stderr
    assert "title_knn" in first.stdout
    assert len(playlist_lines(first.stdout)) == 5
    assert (work / "outputs" / "evaluation_metrics.json").exists()


def test_second_run_skips_up_to_date_stages_and_force_reruns(pipeline):
    work, _ = pipeline
    again = run_stage("run_pipeline.py", *FLAGS, cwd=work)
    for script in ("prepare_data.py", "train_rq_kmeans.py", "prepare_corpus.py", "train_tiger.py", "evaluate_tiger.py",
                   "export_bundle.py"):
        assert f"=== {script}: up to date" in again.stderr
    changed = run_stage("run_pipeline.py", *FLAGS, "--decode.num_beams", "12", cwd=work)
    assert "=== train_tiger.py: up to date" in changed.stderr
    assert "=== evaluate_tiger.py done" in changed.stderr and "=== export_bundle.py done" in changed.stderr


def test_method_rqvae_retrains_the_ids_and_everything_after(pipeline):
    work, _ = pipeline
    proc = run_stage("run_pipeline.py", *FLAGS, "--method", "rqvae", "--rqvae.epochs", "3", cwd=work)
    for script in ("train_rqvae.py", "evaluate_rqvae.py", "prepare_corpus.py", "train_tiger.py", "evaluate_tiger.py",
                   "export_bundle.py"):
        assert f"=== {script} done" in proc.stderr
    manifest = json.loads((work / "outputs" / "song_semantic_ids.jsonl.manifest.json").read_text(encoding="utf-8"))
    assert manifest["summary"]["method"] == "rqvae"


def test_pipeline_stops_at_the_first_failing_stage(tmp_path):
    proc = run_stage("run_pipeline.py", *FLAGS, "--data.song_vector_file", "data/other/v.csv", cwd=tmp_path,
                     check=False)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert "run prepare_data.py for that dataset first" in proc.stderr


def test_one_title_text_and_json(pipeline):
    work, _ = pipeline
    text = run_stage("generate_playlist.py", *FLAGS, "--generate.title", "夏日海边", cwd=work).stdout
    assert text.splitlines()[0] == "夏日海边"
    assert len(playlist_lines(text)) == 5
    record = json.loads(run_stage("generate_playlist.py", *FLAGS, "--generate.title", "🌊🌊",
                                  "--generate.json", "true", cwd=work).stdout)
    assert record["title"] == "🌊🌊"
    assert len(record["songs"]) == 5 and len({s["song_id"] for s in record["songs"]}) == 5


def test_batch_file_to_json_lines(pipeline):
    work, _ = pipeline
    (work / "titles.txt").write_text("\ufefflate night drive\n\n深夜emo\n" + "x" * 500 + "\n", encoding="utf-8")
    proc = run_stage("generate_playlist.py", *FLAGS, "--generate.input", "titles.txt", "--generate.output",
                     "out/playlists.jsonl", cwd=work)
    assert "3 playlists written" in proc.stdout
    records = [json.loads(line) for line in (work / "out" / "playlists.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r["title"] for r in records][:2] == ["late night drive", "深夜emo"]
    assert all(len(r["songs"]) == 5 for r in records)


def test_interactive_prompt_over_stdin(pipeline):
    work, _ = pipeline
    session = ":n 3\nlate night drive\n\n:temp zero\n:bogus\n:sample\n:seed 7\n周末健身房\n:json\n🎧\nexit\n"
    out = run_stage("generate_playlist.py", *FLAGS, cwd=work, input=session).stdout
    assert "num_songs = 3" in out
    assert ":temp needs a number above 0" in out
    assert "unknown command :bogus" in out
    first_playlist = out.split("late night drive\n", 1)[1]
    assert [line.split(".")[0].strip() for line in playlist_lines(first_playlist)[:4]] == ["1", "2", "3", "1"]
    json_line = next(line for line in out.splitlines() if "{" in line)
    assert json.loads(json_line[json_line.index("{"):])["title"] == "🎧"
    assert out.rstrip().endswith("bye / 再见")


def test_prompt_leaves_cleanly_on_end_of_input_and_sampling_is_reproducible(pipeline):
    work, _ = pipeline
    session = ":sample\n:seed 3\nrainy day\n"
    outs = [run_stage("generate_playlist.py", *FLAGS, cwd=work, input=session).stdout for _ in range(2)]
    assert outs[0] == outs[1]
    assert "bye" in outs[0]


def test_clear_errors_for_missing_model_and_bad_batch_options(tiny_demo):
    proc = run_stage("generate_playlist.py", "--generate.title", "x", cwd=tiny_demo, check=False)
    assert proc.returncode == 1 and "run the pipeline first" in proc.stderr
    proc = run_stage("generate_playlist.py", "--generate.input", "t.txt", cwd=tiny_demo, check=False)
    assert proc.returncode == 1 and "needs both --input" in proc.stderr


def test_cluster_ids_show_one_song_each_most_popular_or_seeded_draw():
    codes = np.array([[0, 0], [0, 0], [0, 0], [1, 1]])
    vocab = SemanticIdVocab.build(["a", "b", "c", "d"], codes, 2, "cluster")
    ranked = [(vocab.songs["a"], -0.1), (vocab.songs["d"], -0.5)]
    popularity = {"a": 1, "b": 9, "c": 3, "d": 2}
    assert expand_ids(vocab, ranked, 5, popularity) == [("b", -0.1), ("d", -0.5)]
    draws = {expand_ids(vocab, ranked, 1, popularity, random.Random(seed))[0][0] for seed in range(40)}
    assert draws == {"a", "b", "c"}
    assert expand_ids(vocab, ranked, 1, popularity, random.Random(5)) == \
        expand_ids(vocab, ranked, 1, popularity, random.Random(5))
