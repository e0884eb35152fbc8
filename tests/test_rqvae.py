"""RQ-VAE (stage 1, method A): no collapse, collapse detection, dead-code reset, reload, bad inputs."""

from __future__ import annotations

import dataclasses
import json
import logging

import numpy as np
import pytest
import torch

from config import Config
from genrec.quantize.rqvae import RQVAESettings
from genrec.quantize import rqvae
from genrec.quantize import stage as stage1
from genrec.data.demo import generate_demo
from genrec.errors import ArtifactError
from genrec.quantize.report import level_usage_and_perplexity, report_path
from genrec.quantize.semantic_ids import read_semantic_ids, semantic_ids_path
from conftest import run_stage

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def demo_vectors() -> np.ndarray:
    """The default demo's song vectors (2,000 x 100), made in memory."""
    return generate_demo().vectors.astype(np.float32)


@pytest.fixture(scope="module")
def small_vectors() -> np.ndarray:
    return generate_demo(n_songs=640, n_playlists=50, n_tastes=12).vectors.astype(np.float32)


def small_config(**changes) -> RQVAESettings:
    return dataclasses.replace(RQVAESettings(), vocab_size=16, hidden_sizes=[64], latent_dim=16, epochs=80,
                               **changes)


def assert_no_collapse(codes: np.ndarray, vocab_size: int) -> None:
    usage, perplexity = level_usage_and_perplexity(codes, vocab_size)
    assert min(usage) >= rqvae.USAGE_BAR, usage
    assert min(perplexity) >= rqvae.PERPLEXITY_BAR * vocab_size, perplexity


def test_default_training_on_demo_data_does_not_collapse(demo_vectors):
    cfg = RQVAESettings()
    trained = rqvae.train_rqvae(demo_vectors, cfg, seed=42, device=CPU)
    assert trained.codes.shape == (len(demo_vectors), cfg.levels)
    assert trained.codes.min() >= 0 and trained.codes.max() < cfg.vocab_size
    assert_no_collapse(trained.codes, cfg.vocab_size)
    assert trained.collapsed == []


@torch.no_grad()
def random_codebooks(model, train, cfg, seed):
    """Scaled Gaussian codes: the initialisation of the public ports that collapse (no longer an option)."""
    latents = model.encoder(train)
    model.codebooks.copy_(torch.randn(model.codebooks.shape, generator=torch.Generator().manual_seed(seed)) *
                          latents.std())


def test_collapse_is_detected_and_warned(small_vectors, caplog, monkeypatch):
    # Random codebooks and no dead-code reset: the setting in which public ports put every song on one code.
    monkeypatch.setattr(rqvae, "init_codebooks", random_codebooks)
    cfg = small_config(dead_code_epochs=0)
    with caplog.at_level(logging.WARNING, logger="genrec.quantize.rqvae"):
        trained = rqvae.train_rqvae(small_vectors, cfg, seed=42, device=CPU)
    assert trained.collapsed, "a collapsed run must be reported"
    usage, _ = level_usage_and_perplexity(trained.codes, cfg.vocab_size)
    assert min(usage) < rqvae.USAGE_BAR
    assert any("collapsed" in record.getMessage() for record in caplog.records)
    assert trained.codes_reset == 0


def test_dead_code_reset_rescues_the_collapsing_setting(small_vectors, monkeypatch):
    monkeypatch.setattr(rqvae, "init_codebooks", random_codebooks)
    cfg = small_config(dead_code_epochs=1)
    trained = rqvae.train_rqvae(small_vectors, cfg, seed=42, device=CPU)
    assert trained.codes_reset > 0
    assert trained.collapsed == []
    assert_no_collapse(trained.codes, cfg.vocab_size)


def test_reset_dead_codes_reseeds_only_idle_codes_from_residuals():
    torch.manual_seed(0)
    model = rqvae.RQVAE(input_dim=8, hidden_sizes=[16], latent_dim=4, levels=2, vocab_size=4)
    train = torch.randn(50, 8)
    with torch.no_grad():
        model.codebooks.copy_(torch.randn(2, 4, 4) * 0.1)
        model.codebooks[0, 3] = 1e3  # far from every latent: nobody picks it
    before = model.codebooks.detach().clone()
    idle = torch.zeros(2, 4, dtype=torch.long)
    idle[0, 3] = 2
    idle[1, 0] = 1  # idle, but not yet for long enough
    reset = rqvae.reset_dead_codes(model, train, idle, dead_after=2, generator=torch.Generator().manual_seed(0))
    assert reset == 1
    latents = model.encoder(train).detach()
    assert torch.isclose(latents, model.codebooks[0, 3].detach()).all(dim=1).any(), "re-seeded from a residual"
    unchanged = torch.ones(2, 4, dtype=torch.bool)
    unchanged[0, 3] = False
    assert torch.equal(model.codebooks.detach()[unchanged], before[unchanged])
    assert idle[0, 3] == 0 and idle[1, 0] == 1
    codes = model.quantize(latents)[0]
    assert (codes[:, 0] == 3).any(), "the re-seeded code is used at once"


def test_train_and_evaluate_side_by_side_and_reload(tiny_demo):
    run_stage("train_rq_kmeans.py", cwd=tiny_demo)
    run_stage("evaluate_rq_kmeans.py", cwd=tiny_demo)
    run_stage("train_rqvae.py", "--rqvae.epochs", "30", cwd=tiny_demo)
    ids_path = semantic_ids_path("outputs")
    manifest = json.loads(ids_path.with_name(ids_path.name + ".manifest.json").read_text())
    assert manifest["summary"]["method"] == "rqvae" and manifest["summary"]["collapsed_levels"] == []
    assert json.loads((tiny_demo / "models/rqvae/manifest.json").read_text())["summary"]["method"] == "rqvae"

    proc = run_stage("evaluate_rqvae.py", cwd=tiny_demo)
    assert "Average Cosine Similarity:" in proc.stdout
    assert "rq_kmeans" in proc.stdout and "Recommendation: use" in proc.stdout
    reports = {m: json.loads(report_path("outputs", m).read_text()) for m in ("rq_kmeans", "rqvae")}
    assert reports["rqvae"].keys() == reports["rq_kmeans"].keys()
    assert 0 < reports["rqvae"]["avg_cosine"] <= 1

    # Reloading the checkpoint gives exactly the IDs that were written.
    cfg = Config()
    song_ids, codes = read_semantic_ids(ids_path)
    vectors = stage1.load_song_vectors(cfg.data)
    assert vectors.ids == song_ids
    assert np.array_equal(rqvae.encode(stage1.load_rqvae_model(cfg), vectors.vectors), codes)

    # The last quantizer trained wins the IDs file: the RQ-KMeans evaluator now refuses with a clear message.
    refused = run_stage("evaluate_rq_kmeans.py", cwd=tiny_demo, check=False)
    assert refused.returncode == 1 and "holds rqvae IDs" in refused.stderr


def test_collapsed_run_is_recorded_in_the_manifests(tiny_demo, monkeypatch):
    monkeypatch.setattr(rqvae, "init_codebooks", random_codebooks)
    monkeypatch.setattr(rqvae.RQVAESettings, "from_config", classmethod(lambda cls, ids, vae: small_config(
        dead_code_epochs=0)))
    stage1.train_rqvae_stage(Config())
    ids_manifest = json.loads((tiny_demo / "outputs/song_semantic_ids.jsonl.manifest.json").read_text())
    model_manifest = json.loads((tiny_demo / "models/rqvae/manifest.json").read_text())
    assert ids_manifest["summary"]["collapsed_levels"]
    assert model_manifest["summary"]["collapsed_levels"] == ids_manifest["summary"]["collapsed_levels"]


def one_line_error(proc) -> str:
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    return proc.stderr.strip().splitlines()[-1]


def test_bad_inputs_fail_with_one_line_and_keep_earlier_artifacts(tiny_demo):
    assert "run train_rqvae.py first" in one_line_error(run_stage("evaluate_rqvae.py", cwd=tiny_demo, check=False))

    run_stage("train_rqvae.py", "--rqvae.epochs", "3", cwd=tiny_demo)
    ids = (tiny_demo / "outputs/song_semantic_ids.jsonl").read_bytes()
    too_many = one_line_error(run_stage("train_rqvae.py", "--ids.codebook_size", "1000", cwd=tiny_demo, check=False))
    assert "ids.codebook_size" in too_many
    bad_value = one_line_error(run_stage("train_rqvae.py", "--rqvae.latent_dim", "0", cwd=tiny_demo, check=False))
    assert "rqvae.latent_dim" in bad_value
    assert (tiny_demo / "outputs/song_semantic_ids.jsonl").read_bytes() == ids

    model_file = tiny_demo / "models/rqvae/model.pt"
    model_file.write_bytes(b"not a model")
    assert "rerun train_rqvae.py" in one_line_error(run_stage("evaluate_rqvae.py", cwd=tiny_demo, check=False))
    with pytest.raises(ArtifactError, match="not a readable RQ-VAE model"):
        rqvae.load_model(model_file, CPU)

    vectors = tiny_demo / "data/demo/song_vectors.csv"
    lines = vectors.read_text().splitlines()
    lines[3] = lines[3].rsplit(",", 1)[0] + ",nan"
    vectors.write_text("\n".join(lines) + "\n")
    assert "line 4" in one_line_error(run_stage("train_rqvae.py", cwd=tiny_demo, check=False))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message for a machine without a GPU")
def test_cuda_requested_without_gpu_is_a_config_error():
    with pytest.raises(rqvae.ConfigError, match="run.device"):
        rqvae.pick_device("cuda")
