"""The model bundle: one folder that holds everything serving needs, so it can be copied and served alone.

``export_bundle.py`` writes it (``run_pipeline.py`` runs it last) to ``<run.model_dir>/bundle/``:

    bundle/
      manifest.json   format version, every file's sha256, and the artifacts it was made from
      serving.json    the system served by default (the best on the validation split), the systems offered,
                      the tuned title kNN and hybrid parameters, the decoding settings, and the evaluation's figures
      songs.json      the catalogue: {"ids": [...], "names": [...], "artists": [...]}
      playlists.json  the training playlists title kNN and popularity read ({"ids", "titles", "songs"}); absent
                      when model/retrieval.json already holds the same playlists (retrieval models)
      model/          the trained T5 as train_tiger.py wrote it (weights, tokenizer, semantic-ID vocabulary,
                      config.yaml, retrieval.json and the retriever's title vectors when it retrieves)
      title_encoder/  a local sentence-transformers folder, only when network.title_encoder named one
                      (the packaged ``minilm`` comes from its PyPI package)

Loading checks every file against the manifest: a changed, missing or added file is refused with one line.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

from config import Config, config_as_dict

from genrec.artifacts import atomic_path, read_manifest, require_fresh, sha256_of, write_json
from genrec.corpus.build import corpus_path, read_corpus
from genrec.corpus.id_tokens import VOCAB_FILE, SemanticIdVocab
from genrec.data.files import load_song_info
from genrec.errors import ArtifactError
from genrec.evaluate.baselines import TrainingPlaylists, hybrid_path
from genrec.evaluate.report import METRICS_FILE
from genrec.model.retrieval import RETRIEVAL_FILE
from genrec.model.t5 import tiger_final_dir
from genrec.model.title_vectors import PACKAGED

log = logging.getLogger(__name__)

BUNDLE_DIR = "bundle"
FORMAT = "generate_playlist bundle"
VERSION = 1
MODEL, ENCODER = "model", "title_encoder"
SERVING, SONGS, PLAYLISTS, MANIFEST = "serving.json", "songs.json", "playlists.json", "manifest.json"

SERVED_SYSTEMS = ("model", "hybrid", "retrieved", "knn")
"""What the generator can serve: the T5's ranking, the evaluated hybrid, the retrieval model's retrieved list, title
kNN. The evaluation calls title kNN ``title_knn``."""
EVALUATED_NAME = {"model": "model", "hybrid": "hybrid", "retrieved": "retrieved", "knn": "title_knn"}


def bundle_dir(cfg: Config) -> Path:
    return Path(cfg.run.model_dir) / BUNDLE_DIR


def is_bundle(folder: Path) -> bool:
    try:
        return json.loads((folder / MANIFEST).read_text(encoding="utf-8")).get("format") == FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def find_bundle(path: str | Path) -> Path:
    """A bundle folder, or a model folder (``run.model_dir``) that holds one in ``bundle/``."""
    path = Path(path)
    for folder in (path, path / BUNDLE_DIR):
        if is_bundle(folder):
            return folder
    if (path / MANIFEST).is_file() and not (path / BUNDLE_DIR).exists():
        raise ArtifactError(f"{path} is not a model bundle (its manifest.json is another artifact's): give the "
                            f"folder export_bundle.py wrote (<run.model_dir>/{BUNDLE_DIR})")
    if (path / BUNDLE_DIR).exists():
        raise ArtifactError(f"{path / BUNDLE_DIR} has no valid manifest.json: rerun export_bundle.py")
    if not path.exists():
        raise ArtifactError(f"{path} does not exist: give a bundle folder (--model), or run the pipeline first "
                            "(run_pipeline.py ends by writing models/bundle)")
    raise ArtifactError(f"no model bundle in {path}: run train_tiger.py, evaluate_tiger.py, then export_bundle.py "
                        "(run_pipeline.py runs them all)")


def best_system(validation: dict[str, float]) -> str:
    """The system with the highest validation score; ties go to the simpler one (model, then kNN, retrieved,
    hybrid), since the hybrid at fusion weight 0 or 1 is exactly its partner or the model."""
    simplicity = ("model", "knn", "retrieved", "hybrid")
    return max((s for s in simplicity if s in validation), key=lambda s: (validation[s], -simplicity.index(s)))


def export_bundle(cfg: Config, dest: Path | None = None) -> Path:
    """Write the bundle for this run's model and evaluation (see the module docstring), atomically."""
    dest = Path(dest) if dest else bundle_dir(cfg)
    model_dir = tiger_final_dir(cfg)
    model_manifest = read_manifest(model_dir, "train_tiger.py")
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
    evaluation = json.loads(metrics_file.read_text(encoding="utf-8")) if metrics_file.is_file() else {}
    retrieval = model_dir / RETRIEVAL_FILE
    sources = [model_dir / MANIFEST, hybrid_file, train_path, Path(cfg.data.song_info_file),
               *([metrics_file] if metrics_file.is_file() else [])]
    with atomic_path(dest) as staged:
        staged.mkdir()
        shutil.copytree(model_dir, staged / MODEL)
        encoder = _model_config(model_dir).get("title_encoder")
        if encoder and encoder != PACKAGED:
            shutil.copytree(encoder, staged / ENCODER)
        if not (retrieval.is_file() and _same_playlists(retrieval, training)):
            write_json(staged / PLAYLISTS, {"ids": training.ids, "titles": training.titles, "songs": training.songs})
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


def _model_config(model_dir: Path) -> dict:
    try:
        return json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ArtifactError(f"{model_dir}/config.json is missing or unreadable ({err}): rerun train_tiger.py") from None


def _same_playlists(retrieval_file: Path, training: TrainingPlaylists) -> bool:
    recorded = json.loads(retrieval_file.read_text(encoding="utf-8"))["playlists"]
    return recorded == {"ids": training.ids, "titles": training.titles, "songs": training.songs}


@dataclass
class BundleFiles:
    """A bundle folder whose files all match its manifest, and what its JSON files say."""

    folder: Path
    manifest: dict
    serving: dict
    songs: dict
    playlists: dict | None


def verify_bundle(folder: Path) -> dict:
    """The manifest, after checking that the folder holds exactly the files it lists, unchanged."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        listed = dict(manifest["files"])
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ArtifactError(f"{folder / MANIFEST} is missing or unreadable ({err}): export the bundle again") from None
    if manifest.get("version") != VERSION:
        raise ArtifactError(f"{folder} is a version {manifest.get('version')} bundle; this code reads version "
                            f"{VERSION}: export it again with export_bundle.py")
    present = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()} - {MANIFEST}
    missing, added = sorted(listed.keys() - present), sorted(present - listed.keys())
    if missing:
        raise ArtifactError(f"{folder} is incomplete: {missing[0]} is missing ({len(missing)} file(s)); copy the "
                            "whole bundle folder")
    if added:
        raise ArtifactError(f"{folder} holds {added[0]}, which is not part of the bundle ({len(added)} file(s)): "
                            "remove it or export the bundle again")
    for name, digest in listed.items():
        if sha256_of(folder / name) != digest:
            raise ArtifactError(f"{folder / name} was changed after the bundle was exported (its sha256 differs from "
                                "the manifest's): export the bundle again")
    return manifest


def read_bundle(folder: Path) -> BundleFiles:
    manifest = verify_bundle(folder)

    def read(name: str) -> dict:
        try:
            return json.loads((folder / name).read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise ArtifactError(f"{folder / name} is unreadable ({err}): export the bundle again") from None

    playlists = read(PLAYLISTS) if (folder / PLAYLISTS).is_file() else None
    return BundleFiles(folder, manifest, read(SERVING), read(SONGS), playlists)
