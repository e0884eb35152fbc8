"""Writing artifacts atomically, with a manifest that records what produced them.

Every artifact ``X`` has a sibling ``X.manifest.json`` (for a folder: ``X/manifest.json``):

    {"artifact": "outputs/song_semantic_ids.jsonl", "stage": "train_rq_kmeans.py",
     "created": "2026-11-28T09:00:00Z", "sha256": "<of the artifact file; a folder has "files" instead>",
     "files": {"<path inside the folder>": "<sha256>"}, "inputs": {"<path>": "<sha256>"},
     "config": {<the config groups the stage used>}, "summary": {<counts and facts a later stage may check>}}

A later stage calls :func:`require_fresh` to refuse an artifact whose recorded inputs no longer
match the files on disk (for example semantic IDs rebuilt after the corpus was made).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import glob
import hashlib
import json
import math
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterator

from genrec.errors import ArtifactError

MANIFEST_SUFFIX = ".manifest.json"


def sha256_of(path: str | os.PathLike) -> str:
    """Hex digest of a file's bytes, read in chunks so large inputs do not fill memory."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it into place only if the block succeeds.

    Works for files and folders. A crash or error inside the block leaves the old ``path`` as it was.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_leftovers(target)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.{os.getpid()}.", suffix=".tmp", dir=target.parent))
    staged = tmp / target.name
    try:
        yield staged
        if target.is_dir() and staged.is_dir():
            # Folders cannot be replaced by rename in one step: move the old one aside first.
            old = tmp / (target.name + ".old")
            os.replace(target, old)
            os.replace(staged, target)
        else:
            os.replace(staged, target)
    except OSError as err:
        # The user named the target, not the staging folder: say which artifact could not be written.
        if not err.filename or str(err.filename).startswith(str(tmp)):  # numpy's short write names no file
            raise type(err)(err.errno, err.strerror or str(err), str(target)) from err
        raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def remove_leftovers(target: Path) -> None:
    """Remove the staging folders a killed writer of ``target`` left beside it (named after their process id; a
    living process's are left alone, so two writers never remove each other's)."""
    for leftover in target.parent.glob(f".{glob.escape(target.name)}.*.tmp"):
        pid = leftover.name[len(target.name) + 2:].split(".", 1)[0]
        if pid.isdigit() and not process_alive(int(pid)):
            shutil.rmtree(leftover, ignore_errors=True)


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | os.PathLike, payload: Any) -> None:
    """Valid JSON always: a NaN or infinite number (a metric of no playlist) is written as null, not as NaN."""
    write_text(path, json.dumps(_finite(payload), ensure_ascii=False, indent=2, default=_json_default,
                                allow_nan=False) + "\n")


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    return value


def _json_default(value: Any) -> Any:
    if dataclasses.is_dataclass(value):
        return _finite(dataclasses.asdict(value))
    if hasattr(value, "tolist"):
        return _finite(value.tolist())
    raise TypeError(f"cannot serialise {type(value).__name__}")


def manifest_path(artifact: str | os.PathLike) -> Path:
    artifact = Path(artifact)
    if artifact.is_dir():
        return artifact / "manifest.json"
    return artifact.with_name(artifact.name + MANIFEST_SUFFIX)


def build_manifest(artifact: str | os.PathLike, inputs: list[str | os.PathLike], config: dict,
                   summary: dict | None = None) -> dict:
    """Describe ``artifact`` (already in place) and the exact inputs it was made from."""
    artifact = Path(artifact)
    manifest = {
        "artifact": str(artifact),
        "stage": Path(sys.argv[0]).name,
        "created": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "inputs": {str(p): sha256_of(p) for p in inputs},
        "config": config,
        "summary": summary or {},
    }
    if artifact.is_file():
        manifest["sha256"] = sha256_of(artifact)
    elif artifact.is_dir():
        manifest["files"] = folder_hashes(artifact)
    return manifest


def folder_hashes(folder: Path) -> dict[str, str]:
    """sha256 of every file in a folder artifact but its own manifest."""
    return {name: sha256_of(folder / name) for name in folder_files(folder)}


def folder_files(folder: Path) -> list[str]:
    """The files of a folder artifact, relative to it: all but its own manifest and a killed writer's staging
    folder (a manifest further down, such as a bundle's copy of the model's, is a file like any other)."""
    names = (path.relative_to(folder) for path in sorted(folder.rglob("*")) if path.is_file())
    return [str(name) for name in names if str(name) != "manifest.json"
            and not any(part.startswith(".") and part.endswith(".tmp") for part in name.parts)]


def verify_folder(folder: str | os.PathLike, manifest: dict, produced_by: str) -> None:
    """Refuse a folder artifact whose files are not exactly those its manifest hashed (changed, missing or added).
    Every file is read once: for a model folder that is the cost of reading its weights. A manifest written
    before folders recorded their files has no "files" and is taken as it is."""
    recorded = manifest.get("files")
    if recorded is None:
        return
    folder = Path(folder)
    present = set(folder_files(folder))
    for name in sorted(set(recorded) - present):
        raise ArtifactError(f"{folder / name} is missing (the folder is incomplete): rerun {produced_by}")
    for name in sorted(present - set(recorded)):
        raise ArtifactError(f"{folder / name} was added after {produced_by} wrote {folder}: remove it or rerun "
                            f"{produced_by}")
    for name, digest in recorded.items():
        if sha256_of(folder / name) != digest:
            raise ArtifactError(f"{folder / name} changed after {produced_by} wrote it: rerun {produced_by}")


def read_verified_manifest(folder: str | os.PathLike, produced_by: str) -> dict:
    """The manifest of a folder artifact, after checking every file against it (not its inputs: see require_fresh)."""
    manifest = read_manifest(folder, produced_by)
    verify_folder(folder, manifest, produced_by)
    return manifest


def write_manifest(artifact: str | os.PathLike, inputs: list[str | os.PathLike], config: dict,
                   summary: dict | None = None) -> dict:
    manifest = build_manifest(artifact, inputs, config, summary)
    write_json(manifest_path(artifact), manifest)
    return manifest


def read_manifest(artifact: str | os.PathLike, produced_by: str) -> dict:
    """The manifest of an artifact that must exist; ``produced_by`` names the script to run if not."""
    artifact = Path(artifact)
    if not artifact.exists():
        raise ArtifactError(f"{artifact} does not exist: run {produced_by} first")
    path = manifest_path(artifact)
    if not path.exists():
        raise ArtifactError(f"{artifact} has no manifest ({path}): rerun {produced_by}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ArtifactError(f"{path} is not valid JSON ({err}): rerun {produced_by}") from err


def require_fresh(artifact: str | os.PathLike, produced_by: str) -> dict:
    """Read an artifact's manifest and check that it and every input it recorded are unchanged."""
    manifest = read_manifest(artifact, produced_by)
    recorded = manifest.get("sha256")
    if recorded and sha256_of(artifact) != recorded:
        raise ArtifactError(f"{artifact} changed after {produced_by} wrote it: rerun {produced_by}")
    if Path(artifact).is_dir():
        verify_folder(artifact, manifest, produced_by)
    for path, digest in manifest.get("inputs", {}).items():
        if not Path(path).exists():
            raise ArtifactError(f"{artifact} was made from {path}, which no longer exists: rerun {produced_by}")
        if sha256_of(path) != digest:
            raise ArtifactError(f"{artifact} is stale: {path} changed since {produced_by} made it; rerun {produced_by}")
    return manifest
