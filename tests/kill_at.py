"""Run a stage script that SIGKILLs itself at a chosen moment: a test-only wrapper, so the kill tests hit the same
instant on every run instead of racing a timer (the product has no hook for this).

    python tests/kill_at.py MOMENT N SCRIPT [ARGS...]

kills the process the N-th time it reaches MOMENT (one of :data:`MOMENTS`) while running ``SCRIPT ARGS`` as
``python SCRIPT ARGS`` would.
"""

from __future__ import annotations

import importlib
import os
import runpy
import signal
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


MOMENTS = {  # moment: (module, the function whose call is the moment)
    # After the checkpoint's weights, before its optimizer, scheduler and trainer_state.json.
    "checkpoint-write": ("transformers.trainer", "Trainer._save_optimizer_and_scheduler"),
    "mid-epoch": ("genrec.train.trainer", "TigerTrainer.training_step"),
    "between-codebooks-and-ids": ("genrec.quantize.stage", "save_semantic_ids"),
    "rqvae-epoch": ("genrec.quantize.rqvae", "Trainer.epoch"),
    # Inside the dataset folder's staging copy: the four tables written, the split not yet.
    "mid-import": ("genrec.data.dataset", "write_split_file"),
    # evaluation_metrics.json written, hybrid.json (the tuned kNN and fusion) not.
    "between-metrics-and-tuning": ("genrec.evaluate.run", "save_hybrid"),
    # Inside the bundle's staging copy: the model copied, serving.json not yet written.
    "mid-export": ("genrec.serve.export", "best_system"),
}


def kill_on_call(moment: str, calls: int) -> None:
    """Replace the moment's function by one that kills the process on its ``calls``-th call."""
    module, path = MOMENTS[moment]
    owner = importlib.import_module(module)
    *parents, name = path.split(".")
    for parent in parents:
        owner = getattr(owner, parent)
    original = getattr(owner, name)
    seen = [0]

    def wrapper(*args, **kwargs):
        seen[0] += 1
        if seen[0] == calls:
            os.kill(os.getpid(), signal.SIGKILL)
        return original(*args, **kwargs)

    setattr(owner, name, wrapper)


if __name__ == "__main__":
    moment, calls, script, *args = sys.argv[1:]
    sys.path.insert(0, str(REPO))
    kill_on_call(moment, int(calls))
    sys.argv = [str(REPO / script), *args]
    runpy.run_path(str(REPO / script), run_name="__main__")
