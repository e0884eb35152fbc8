"""Run a stage script that SIGKILLs itself at a chosen moment: a test-only wrapper, so the kill tests hit the same
instant on every run instead of racing a timer (the product has no hook for this).

    python tests/kill_at.py MOMENT N SCRIPT [ARGS...]

kills the process the N-th time it reaches MOMENT (one of :data:`MOMENTS`) while running ``SCRIPT ARGS`` as
``python SCRIPT ARGS`` would.
"""

from __future__ import annotations

import os
import runpy
import signal
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _kill_on_call(owner, name: str, calls: int) -> None:
    """Replace ``owner.name`` by a function that kills the process on its ``calls``-th call."""
    original = getattr(owner, name)
    seen = [0]

    def wrapper(*args, **kwargs):
        seen[0] += 1
        if seen[0] == calls:
            os.kill(os.getpid(), signal.SIGKILL)
        return original(*args, **kwargs)

    setattr(owner, name, wrapper)


def _checkpoint_write(calls: int) -> None:
    # After the checkpoint's weights, before its optimizer, scheduler and trainer_state.json.
    from transformers import Trainer
    _kill_on_call(Trainer, "_save_optimizer_and_scheduler", calls)


def _mid_epoch(calls: int) -> None:
    from genrec.train.trainer import TigerTrainer
    _kill_on_call(TigerTrainer, "training_step", calls)


def _between_codebooks_and_ids(calls: int) -> None:
    import genrec.quantize.stage as stage
    _kill_on_call(stage, "save_semantic_ids", calls)


def _mid_import(calls: int) -> None:
    # Inside the dataset folder's staging copy: the four tables written, the split not yet.
    import genrec.data.dataset as dataset
    _kill_on_call(dataset, "write_split_file", calls)


def _between_metrics_and_tuning(calls: int) -> None:
    # evaluation_metrics.json written, hybrid.json (the tuned kNN and fusion) not.
    import genrec.evaluate.run as run
    _kill_on_call(run, "save_hybrid", calls)


def _mid_export(calls: int) -> None:
    # Inside the bundle's staging copy: the model copied, serving.json not yet written.
    import genrec.serve.export as export
    _kill_on_call(export, "best_system", calls)


MOMENTS = {"checkpoint-write": _checkpoint_write, "mid-epoch": _mid_epoch,
           "between-codebooks-and-ids": _between_codebooks_and_ids, "mid-import": _mid_import,
           "between-metrics-and-tuning": _between_metrics_and_tuning, "mid-export": _mid_export}


if __name__ == "__main__":
    moment, calls, script, *args = sys.argv[1:]
    sys.path.insert(0, str(REPO))
    MOMENTS[moment](int(calls))
    sys.argv = [str(REPO / script), *args]
    runpy.run_path(str(REPO / script), run_name="__main__")
