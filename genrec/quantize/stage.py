"""Stage 1 glue shared by both quantizers: loading vectors, writing IDs, evaluating them."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from config import Config

from genrec.quantize import rq_kmeans
from genrec.quantize import rqvae
from genrec.artifacts import atomic_path, manifest_path, require_fresh, sha256_of, write_manifest
from config import config_as_dict, save_config
from genrec.data.files import load_song_vectors
from genrec.errors import ArtifactError
from genrec.quantize.report import format_report, quantizer_report, save_report, side_by_side
from genrec.quantize.semantic_ids import read_semantic_ids, semantic_ids_path, write_semantic_ids

log = logging.getLogger(__name__)


def rq_kmeans_codebook_path(cfg: Config) -> Path:
    return Path(cfg.run.model_dir) / "rq_kmeans_codebooks.npy"


def save_semantic_ids(cfg: Config, method: str, song_ids: list[str], codes: np.ndarray, vocab_size: int,
                      model_artifact: Path, group: str, extra_summary: dict | None = None) -> Path:
    """Write song_semantic_ids.jsonl with a manifest naming the method and the model it came from."""
    path = semantic_ids_path(cfg.run.output_dir)
    write_semantic_ids(path, song_ids, codes)
    # The model is an input too: a run killed between writing the model and writing the IDs leaves a pair that
    # require_fresh then refuses (the codebook file's own bytes; a model folder's manifest, which hashes its weights).
    model_input = model_artifact if Path(model_artifact).is_file() else manifest_path(model_artifact)
    write_manifest(path, [cfg.data.song_vector_file, model_input], config_as_dict(cfg, ["data", "ids", group, "run"]),
                   {"method": method, "levels": int(codes.shape[1]), "vocab_size": int(vocab_size),
                    "songs": len(song_ids), "model": str(model_artifact), **(extra_summary or {})})
    save_config(cfg, Path(cfg.run.output_dir) / "song_semantic_ids.config.yaml")
    return path


def train_rq_kmeans_stage(cfg: Config) -> Path:
    songs = load_song_vectors(cfg.data)
    settings = rq_kmeans.RQKMeansSettings.from_config(cfg.ids, cfg.rqkmeans, cfg.run.device)
    codebooks = rq_kmeans.train_rq_kmeans(songs.vectors, settings, cfg.run.seed)
    codes = rq_kmeans.encode(songs.vectors, codebooks)
    model_path = rq_kmeans_codebook_path(cfg)
    with atomic_path(model_path) as tmp, open(tmp, "wb") as out:
        np.save(out, codebooks)
    write_manifest(model_path, [cfg.data.song_vector_file], config_as_dict(cfg, ["data", "ids", "rqkmeans", "run"]),
                   {"method": "rq_kmeans", "shape": list(codebooks.shape)})
    return save_semantic_ids(cfg, "rq_kmeans", songs.ids, codes, cfg.ids.codebook_size, model_path, "rqkmeans")


def rqvae_model_dir(cfg: Config) -> Path:
    return Path(cfg.run.model_dir) / "rqvae"


def train_rqvae_stage(cfg: Config) -> Path:
    songs = load_song_vectors(cfg.data)
    settings = rqvae.RQVAESettings.from_config(cfg.ids, cfg.rqvae)
    trained = rqvae.train_rqvae(songs.vectors, settings, cfg.run.seed, rqvae.pick_device(cfg.run.device))
    model_dir = rqvae_model_dir(cfg)
    with atomic_path(model_dir) as tmp:
        tmp.mkdir()
        rqvae.save_model(trained.model, tmp / rqvae.MODEL_FILE)
    training = {"best_epoch": trained.best_epoch, "best_val_loss": trained.best_val_loss,
                "codes_reset": trained.codes_reset, "collapsed_levels": trained.collapsed}
    write_manifest(model_dir, [cfg.data.song_vector_file], config_as_dict(cfg, ["data", "ids", "rqvae", "run"]),
                   {"method": "rqvae", "model_sha256": sha256_of(model_dir / rqvae.MODEL_FILE),
                    "architecture": trained.model.architecture, **training})
    return save_semantic_ids(cfg, "rqvae", songs.ids, trained.codes, cfg.ids.codebook_size, model_dir, "rqvae",
                             {"collapsed_levels": trained.collapsed})


def load_rqvae_model(cfg: Config) -> rqvae.RQVAE:
    """The trained model, refused when its inputs or its weights changed since train_rqvae.py wrote it."""
    model_dir = rqvae_model_dir(cfg)
    manifest = require_fresh(model_dir, "train_rqvae.py")
    model_file = model_dir / rqvae.MODEL_FILE
    if not model_file.exists() or sha256_of(model_file) != manifest["summary"].get("model_sha256"):
        raise ArtifactError(f"{model_file} is missing or changed after train_rqvae.py wrote it: rerun train_rqvae.py")
    return rqvae.load_model(model_file, rqvae.pick_device(cfg.run.device))


def load_ids_for(cfg: Config, method: str, train_script: str, song_ids: list[str],
                 model_artifact: Path) -> tuple[np.ndarray, dict]:
    """Codes in the order of ``song_ids``, checked to be fresh, made by ``method``, and made with ``model_artifact``
    (not with a model of another run: run.output_dir and run.model_dir must belong together)."""
    path = semantic_ids_path(cfg.run.output_dir)
    manifest = require_fresh(path, train_script)
    made_by = manifest["summary"].get("method")
    if made_by != method:
        raise ArtifactError(f"{path} holds {made_by} IDs, not {method}: run {train_script} first")
    made_with = manifest["summary"].get("model")
    if made_with and Path(made_with).resolve() != Path(model_artifact).resolve():
        raise ArtifactError(f"{path} was made with the model in {made_with}, not {model_artifact} (run.output_dir "
                            f"and run.model_dir are from different runs): give the matching --run.model_dir, or "
                            f"rerun {train_script}")
    id_songs, codes = read_semantic_ids(path)
    if id_songs != song_ids:
        raise ArtifactError(f"{path} does not list the songs of {cfg.data.song_vector_file} in order: "
                            f"rerun {train_script}")
    return codes, manifest


def evaluate_stage(cfg: Config, method: str, vectors: np.ndarray, reconstructed: np.ndarray,
                   codes: np.ndarray, vocab_size: int) -> dict:
    """Compute, print and save the report; print the side-by-side comparison when both exist."""
    report = quantizer_report(vectors, reconstructed, codes, vocab_size, cfg.run.seed)
    path = save_report(cfg.run.output_dir, method, report)
    print(format_report(method, report))
    print(f"(written to {path})")
    table = side_by_side(cfg.run.output_dir, method)
    if table:
        print("\nBoth quantizers on these songs:\n" + table)
    return report


def evaluate_rq_kmeans_stage(cfg: Config) -> dict:
    songs = load_song_vectors(cfg.data)
    model_path = rq_kmeans_codebook_path(cfg)
    codes, _ = load_ids_for(cfg, "rq_kmeans", "train_rq_kmeans.py", songs.ids, model_path)
    require_fresh(model_path, "train_rq_kmeans.py")
    codebooks = np.load(model_path)
    if codebooks.shape[0] != codes.shape[1]:
        raise ArtifactError(f"{model_path} has {codebooks.shape[0]} levels but the IDs have {codes.shape[1]}: "
                            "rerun train_rq_kmeans.py")
    reconstructed = rq_kmeans.decode(codes, codebooks)
    return evaluate_stage(cfg, "rq_kmeans", songs.vectors, reconstructed, codes, codebooks.shape[1])


def evaluate_rqvae_stage(cfg: Config) -> dict:
    songs = load_song_vectors(cfg.data)
    codes, _ = load_ids_for(cfg, "rqvae", "train_rqvae.py", songs.ids, rqvae_model_dir(cfg))
    model = load_rqvae_model(cfg)
    levels, vocab_size = model.architecture["levels"], model.architecture["vocab_size"]
    if codes.shape[1] != levels or codes.max() >= vocab_size:
        raise ArtifactError(f"the IDs in {semantic_ids_path(cfg.run.output_dir)} do not fit the model in "
                            f"{rqvae_model_dir(cfg)} ({levels} levels x {vocab_size} codes): rerun train_rqvae.py")
    reconstructed = rqvae.decode(model, codes)
    return evaluate_stage(cfg, "rqvae", songs.vectors, reconstructed, codes, vocab_size)
