"""The whole job in order: each stage script runs unless its artifact is up to date.

A stage is up to date when its artifact exists, the inputs its manifest recorded are unchanged
(genrec.artifacts.require_fresh), and the config groups it recorded equal the current ones. The
stages run as subprocesses with the same flags, so each behaves exactly as when run by hand.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from config import Config

from genrec.artifacts import require_fresh
from config import config_as_dict
from genrec.errors import ArtifactError, GenrecError
from genrec.quantize.semantic_ids import semantic_ids_path

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[1]
SAMPLE_TITLE = "late night drive"


@dataclass
class Stage:
    script: str
    artifact: Callable[[Config], Path]
    always: bool = False  # cheap reports are simply rerun
    method: str | None = None  # the semantic-ID file is shared: it must also hold this method's IDs


METHODS = ("rq_kmeans", "rqvae")


def stages_for(quantizer: str) -> list[Stage]:
    return [
        Stage("prepare_data.py", lambda c: Path(c.data.song_vector_file).parent),
        Stage(f"train_{quantizer}.py", lambda c: semantic_ids_path(c.run.output_dir), method=quantizer),
        Stage(f"evaluate_{quantizer}.py", lambda c: Path(c.run.output_dir) / f"quantizer_report_{quantizer}.json",
              always=True),
        Stage("prepare_corpus.py", lambda c: Path(c.run.output_dir) / "train.tsv"),
        Stage("train_tiger.py", lambda c: Path(c.run.model_dir) / "tiger_final"),
        Stage("evaluate_tiger.py", lambda c: Path(c.run.output_dir) / "evaluation_metrics.json"),
        Stage("export_bundle.py", lambda c: Path(c.run.model_dir) / "bundle"),
    ]


def up_to_date(stage: Stage, cfg: Config) -> bool:
    """True when the artifact and its recorded inputs are unchanged and it was made with this config.

    Inputs are compared by checksum, so a rerun stage that reproduces the same file (runs are
    seeded) leaves the later stages up to date.
    """
    if stage.always:
        return False
    artifact = stage.artifact(cfg)
    try:
        manifest = require_fresh(artifact, stage.script)
    except (ArtifactError, GenrecError):
        return False
    if stage.script == "prepare_data.py":
        return True  # a dataset folder is an input: imported data is never regenerated here
    if stage.method and manifest.get("summary", {}).get("method") != stage.method:
        return False
    current = config_as_dict(cfg)
    recorded = manifest.get("config", {})
    return all(recorded[group] == current.get(group) for group in recorded)


def run_stage(script: str, argv: list[str]) -> None:
    command = [sys.executable, str(REPO / script), *argv]
    log.info("\n=== %s", " ".join([script, *argv]))
    start = time.perf_counter()
    result = subprocess.run(command)
    if result.returncode != 0:
        raise GenrecError(f"{script} failed (exit {result.returncode}); its message is above. "
                          "Fix that and rerun: finished stages are skipped")
    log.info("=== %s done in %.1fs", script, time.perf_counter() - start)


def run_pipeline(cfg: Config, argv: list[str], method: str, force: bool) -> None:
    for stage in stages_for(method):
        if not force and up_to_date(stage, cfg):
            log.info("=== %s: up to date (%s), skipped", stage.script, stage.artifact(cfg))
            continue
        if stage.script == "prepare_data.py" and cfg.prepare.source == "demo" and \
                Path(cfg.data.song_vector_file).parent != Path(cfg.prepare.output):
            raise GenrecError(f"{cfg.data.song_vector_file} is missing and prepare.output={cfg.prepare.output} "
                              "would not create it: run prepare_data.py for that dataset first")
        run_stage(stage.script, argv)
    run_stage("generate_playlist.py", [*argv, "--generate.title", SAMPLE_TITLE])


def strip_pipeline_flags(argv: list[str]) -> list[str]:
    """The flags meant for run_pipeline.py itself are not passed on to the stages."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--force":
            continue
        elif arg == "--method":
            skip = True
        elif not arg.startswith("--method="):
            out.append(arg)
    return out

