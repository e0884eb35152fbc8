"""RQ-KMeans: round trip, the evaluator's figures, the scripts, and their errors."""

import json

import numpy as np
import pytest

from conftest import run_stage
from genrec.quantize import rq_kmeans
from genrec.quantize.rq_kmeans import RQKMeansSettings
from genrec.errors import ConfigError
from genrec.quantize.report import quantizer_report


def clustered_vectors(n=800, dim=8, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=3, size=(16, dim))
    return (centres[rng.integers(0, 16, n)] + rng.normal(size=(n, dim))).astype(np.float32)


def test_reconstruction_improves_with_each_level_and_ids_are_in_range():
    vectors = clustered_vectors()
    codebooks = rq_kmeans.train_rq_kmeans(vectors, RQKMeansSettings(levels=3, vocab_size=16, niter=10), seed=0)
    codes = rq_kmeans.encode(vectors, codebooks)
    assert codes.shape == (len(vectors), 3)
    assert codes.min() >= 0 and codes.max() < 16
    errors = [np.mean((vectors - rq_kmeans.decode(codes[:, :level], codebooks[:level])) ** 2) for level in (1, 2, 3)]
    assert errors[0] > errors[1] > errors[2]


def test_same_seed_same_codebooks():
    vectors = clustered_vectors()
    cfg = RQKMeansSettings(levels=2, vocab_size=8, niter=5)
    np.testing.assert_array_equal(rq_kmeans.train_rq_kmeans(vectors, cfg, 3), rq_kmeans.train_rq_kmeans(vectors, cfg, 3))


def test_too_few_songs_is_a_clear_error_not_a_faiss_crash():
    with pytest.raises(ConfigError, match="only 10 songs for 16 codes per level"):
        rq_kmeans.train_rq_kmeans(clustered_vectors(n=10), RQKMeansSettings(levels=3, vocab_size=16), seed=0)


def test_report_figures_on_a_hand_checkable_case():
    vectors = np.array([[1, 0], [0, 1], [1, 1], [2, 0]], dtype=np.float32)
    reconstructed = np.array([[1, 0], [1, 0], [1, 1], [1, 0]], dtype=np.float32)
    codes = np.array([[0, 0], [0, 1], [1, 0], [0, 0]])
    report = quantizer_report(vectors, reconstructed, codes, vocab_size=4, seed=0)
    assert report["avg_cosine"] == pytest.approx((1 + 0 + 1 + 1) / 4)
    assert report["mse"] == pytest.approx((0 + 2 + 0 + 1) / 8)
    assert report["usage"] == [0.5, 0.5]
    assert report["perplexity"][0] == pytest.approx(np.exp(-(0.75 * np.log(0.75) + 0.25 * np.log(0.25))))
    assert report["unique_fraction"] == 0.5 and report["max_group"] == 2
    # Codes on level 1: song 2 alone, songs 0, 1, 3 together: chance of a random other song sharing = mean(2/3, 2/3, 0, 2/3).
    assert report["neighbour_chance"] == pytest.approx(0.5)


def test_scripts_end_to_end_with_overrides(tiny_demo):
    run_stage("train_rq_kmeans.py", "--ids.levels", "2", "--ids.codebook_size", "8", cwd=tiny_demo)
    lines = (tiny_demo / "outputs" / "song_semantic_ids.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 640
    record = json.loads(lines[0])
    assert set(record) == {"song_id", "semantic_ids"} and len(record["semantic_ids"]) == 2
    assert isinstance(record["song_id"], str) and record["song_id"].startswith("0")
    manifest = json.loads((tiny_demo / "outputs" / "song_semantic_ids.jsonl.manifest.json").read_text())
    assert manifest["summary"]["method"] == "rq_kmeans"
    proc = run_stage("evaluate_rq_kmeans.py", cwd=tiny_demo)
    assert "Average Cosine Similarity:" in proc.stdout
    report = json.loads((tiny_demo / "outputs" / "quantizer_report_rq_kmeans.json").read_text())
    assert set(report) >= {"avg_cosine", "mse", "usage", "perplexity", "unique_fraction", "max_group",
                           "neighbour_share", "neighbour_chance"}
    assert report["neighbour_share"] > 3 * report["neighbour_chance"]


def test_bad_input_fails_in_one_line_and_keeps_earlier_outputs(tiny_demo):
    run_stage("train_rq_kmeans.py", *["--ids.codebook_size", "16"], cwd=tiny_demo)
    ids_file = tiny_demo / "outputs" / "song_semantic_ids.jsonl"
    before = ids_file.read_bytes()
    vectors = tiny_demo / "data" / "demo" / "song_vectors.csv"
    lines = vectors.read_text(encoding="utf-8").splitlines()
    lines[5] = lines[5].rsplit(",", 1)[0] + ",nan"
    vectors.write_text("\n".join(lines) + "\n", encoding="utf-8")
    proc = run_stage("train_rq_kmeans.py", cwd=tiny_demo, check=False)
    assert proc.returncode == 1
    assert "line 6, column 'v99': value 'nan' is not a finite number" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert ids_file.read_bytes() == before


def test_evaluator_refuses_ids_made_from_other_vectors(tiny_demo):
    run_stage("train_rq_kmeans.py", cwd=tiny_demo)
    run_stage("prepare_data.py", "--prepare.demo_songs", "640", "--run.seed", "7", cwd=tiny_demo)
    proc = run_stage("evaluate_rq_kmeans.py", cwd=tiny_demo, check=False)
    assert proc.returncode == 1
    assert "stale" in proc.stderr and "rerun train_rq_kmeans.py" in proc.stderr


def test_codebooks_rewritten_without_their_ids_are_refused_downstream(tiny_demo):
    """A run killed between writing the codebooks and writing the IDs leaves new codebooks beside old IDs."""
    run_stage("train_rq_kmeans.py", cwd=tiny_demo)
    codebooks = tiny_demo / "models" / "rq_kmeans_codebooks.npy"
    np.save(codebooks, np.load(codebooks) + 1.0)
    for script in ("evaluate_rq_kmeans.py", "prepare_corpus.py"):
        proc = run_stage(script, cwd=tiny_demo, check=False)
        assert proc.returncode == 1 and "Traceback" not in proc.stderr
        assert "rq_kmeans_codebooks.npy changed since" in proc.stderr, proc.stderr[-500:]


def test_ids_of_one_run_and_codebooks_of_another_are_refused(tiny_demo):
    run_stage("train_rq_kmeans.py", cwd=tiny_demo)
    run_stage("train_rq_kmeans.py", "--run.seed", "7", "--run.output_dir", "outputs/other",
              "--run.model_dir", "models/other", cwd=tiny_demo)
    proc = run_stage("evaluate_rq_kmeans.py", "--run.model_dir", "models/other", cwd=tiny_demo, check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "run.output_dir and run.model_dir are from different runs" in proc.stderr
