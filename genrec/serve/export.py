"""Writing the model bundle (genrec.serve.bundle describes the folder): export_bundle.py's stage."""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import asdict
from pathlib import Path

from config import Config, config_as_dict

from genrec.artifacts import atomic_path, read_manifest, read_verified_manifest, require_fresh, sha256_of, write_json
from genrec.corpus.build import corpus_path, read_corpus
from genrec.corpus.id_tokens import VOCAB_FILE, SemanticIdVocab
from genrec.data.files import load_song_info
from genrec.data.playlists_file import write_playlists
from genrec.errors import ArtifactError
from genrec.evaluate.continuation import CONTINUATION_FILE
from genrec.evaluate.baselines import TrainingPlaylists, hybrid_path
from genrec.evaluate.report import METRICS_FILE
from genrec.model.loaded import read_model_config
from genrec.model.retrieval import RETRIEVAL_FILE, read_retrieval_file
from genrec.model.t5 import tiger_final_dir
from genrec.model.title_vectors import PACKAGED
from genrec.serve.seeds import SEED_HYBRID, SEED_WALK
from genrec.serve.bundle import (ENCODER, EVALUATED_NAME, FORMAT, MANIFEST, MODEL, PLAYLISTS, SERVED_SYSTEMS, SERVING,
                                 SONGS, VERSION, bundle_dir)

log = logging.getLogger(__name__)


def best_system(validation: dict[str, float]) -> str:
    """The system with the highest validation score; ties go to the simpler one (model, then kNN, retrieved,
    hybrid), since the hybrid at fusion weight 0 or 1 is exactly its partner or the model."""
    simplicity = ("model", "knn", "retrieved", "hybrid")
    return max((s for s in simplicity if s in validation), key=lambda s: (validation[s], -simplicity.index(s)))


def export_bundle(cfg: Config, dest: Path | None = None) -> Path:
    """Write the bundle for this run's model and evaluation (see the module docstring), atomically."""
    dest = Path(dest) if dest else bundle_dir(cfg)
    model_dir = tiger_final_dir(cfg)
    model_manifest = read_verified_manifest(model_dir, "train_tiger.py")
    hybrid_file = hybrid_path(cfg)
    require_fresh(hybrid_file, "evaluate_tiger.py")
    hybrid = json.loads(hybrid_file.read_text(encoding="utf-8"))
    if "validation" not in hybrid:
        raise ArtifactError(f"{hybrid_file} predates the choice of a served system: rerun evaluate_tiger.py")
    train_path = corpus_path(cfg, "train")
    require_fresh(train_path, "prepare_corpus.py")
    training = TrainingPlaylists.from_corpus(read_corpus(train_path))
    catalogue = sorted(SemanticIdVocab.load(model_dir / VOCAB_FILE).songs)
    info = load_song_info(cfg.data)
    metrics_file = Path(cfg.run.output_dir) / METRICS_FILE
    if metrics_file.is_file():
        check_one_evaluation(metrics_file, hybrid_file)
    evaluation = json.loads(metrics_file.read_text(encoding="utf-8")) if metrics_file.is_file() else {}
    retrieval = model_dir / RETRIEVAL_FILE
    continuation_file = Path(cfg.run.output_dir) / CONTINUATION_FILE
    seeded = seeded_system(continuation_file)
    sources = [model_dir / MANIFEST, hybrid_file, train_path, Path(cfg.data.song_info_file),
               *([metrics_file] if metrics_file.is_file() else []), *([continuation_file] if seeded else [])]
    with atomic_path(dest) as staged:
        staged.mkdir()
        shutil.copytree(model_dir, staged / MODEL)
        encoder = read_model_config(model_dir).get("title_encoder")
        if encoder and encoder != PACKAGED:
            shutil.copytree(encoder, staged / ENCODER)
        if not (retrieval.is_file() and _same_playlists(model_dir, training)):
            write_playlists(staged / PLAYLISTS, training)
        write_json(staged / SONGS, {"ids": catalogue, "names": [info.names.get(s, "") for s in catalogue],
                                    "artists": [info.singers.get(s, "") for s in catalogue]})
        validation = {served: hybrid["validation"][name] for served, name in EVALUATED_NAME.items()
                      if name in hybrid["validation"]}
        served_name = {name: served for served, name in EVALUATED_NAME.items()}
        write_json(staged / SERVING, {
            "default_system": best_system(validation),
            "systems": [s for s in SERVED_SYSTEMS if s != "retrieved" or retrieval.is_file()],
            "validation": {"objective": hybrid.get("objective", ""), **validation},
            "title_knn": hybrid["title_knn"],
            "fusion": {"partner": "title_knn", **hybrid["fusion"]},
            # The hybrid fuses lists as deep as the evaluation's (its eval.num_songs).
            "fusion_depth": evaluation.get("config", {}).get("eval", {}).get("num_songs", cfg.eval.num_songs),
            "decode": {**asdict(cfg.decode), "seed": cfg.run.seed},
            **({"seeded": seeded} if seeded else {}),
            "test": {served_name.get(name, name): {k: v for k, v in figures.items()
                                                   if k.startswith(("ndcg@", "r_precision"))}
                     for name, figures in evaluation.get("systems", {}).items()}})
        files = sorted(p for p in staged.rglob("*") if p.is_file())
        write_json(staged / MANIFEST, {
            "format": FORMAT, "version": VERSION,
            "files": {p.relative_to(staged).as_posix(): sha256_of(p) for p in files},
            # What it was made from, as every artifact's manifest says (run_pipeline.py reruns the export when
            # one of these changes).
            "inputs": {str(p): sha256_of(p) for p in sources},
            "config": config_as_dict(cfg, ["decode"]),
            "model_created": model_manifest.get("created")})
    return dest


def seeded_system(path: Path) -> dict | None:
    """What a request with seed songs is served (genrec.serve.seeds): the seeded system evaluate_continuation.py
    measured best and its parameters per category; None (the generator's default) when that evaluation is absent,
    stale, or was run without the model (its hybrid then fused title kNN, which the bundle does not serve seeded)."""
    try:
        require_fresh(path, "evaluate_continuation.py")
    except ArtifactError as err:
        if path.is_file():
            log.warning("%s; the bundle serves seeds with the default walk", err)
        return None
    result = json.loads(path.read_text(encoding="utf-8"))
    best = result["versus_best_baseline"]["system"]
    if best == "hybrid" and not result.get("model"):
        best = "walk"
    by_seeds = []
    for category in result["categories"]:
        tuned = result["tuning"].get(category["name"])
        if tuned:
            by_seeds.append({k: category[k] for k in ("seeds", "title", "random")} | tuned["walk"]
                            | {k: tuned["hybrid"][k] for k in ("weight", "c")})
    return {"system": {"walk": SEED_WALK, "hybrid": SEED_HYBRID}[best], "by_seeds": by_seeds}


def check_one_evaluation(metrics_file: Path, hybrid_file: Path) -> None:
    """evaluate_tiger.py writes the metrics, then hybrid.json: a run killed between the two leaves the metrics of one
    run beside the tuning of another, which the bundle must not mix (the same settings give the same files)."""
    metrics = read_manifest(metrics_file, "evaluate_tiger.py")["config"]
    hybrid = read_manifest(hybrid_file, "evaluate_tiger.py")["config"]
    if any(metrics.get(group) != settings for group, settings in hybrid.items()):
        raise ArtifactError(f"{metrics_file} and {hybrid_file} come from two evaluate_tiger.py runs with different "
                            "settings (one killed between its two writes?): rerun evaluate_tiger.py")


def _same_playlists(model_dir: Path, training: TrainingPlaylists) -> bool:
    return read_retrieval_file(model_dir)[1] == training
