"""T5 training throughput (target tokens per second) on this machine, for each model preset and for torchrun.

    python bench/train_tiger.py                   # 40 steps each, on a demo corpus built in a temporary folder
    python bench/train_tiger.py --steps 100 --keep /tmp/bench_tiger

Runs train_tiger.py itself (so the numbers include the Trainer's per-step costs) on the demo corpus:
the demo defaults, the presets/mpd_cpu.yaml and presets/mpd_gpu.yaml model shapes, and the demo
defaults under ``torchrun --nproc_per_node=2``. Prints one table with each run's tokens/s and its
ratio to the demo run measured here; validation is switched off so only training steps are timed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
NO_VALIDATION = ["--train.val_loss_examples", "64"]


def run(command: list[str], cwd: Path) -> None:
    env = dict(os.environ, PYTHONUNBUFFERED="1", TOKENIZERS_PARALLELISM="false")
    proc = subprocess.run(command, cwd=cwd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{proc.stderr[-3000:]}")


def build_corpus(folder: Path) -> None:
    for script in ("prepare_data.py", "train_rq_kmeans.py", "prepare_corpus.py"):
        run([sys.executable, str(REPO / script)], folder)


def measure(folder: Path, launcher: list[str], extra: list[str], steps: int) -> dict:
    """Train ``steps`` steps (validation only at the very end) and read the summary it wrote."""
    start = time.perf_counter()
    run([*launcher, str(REPO / "train_tiger.py"), *extra, *NO_VALIDATION, "--train.max_steps", str(steps),
         "--train.eval_steps", str(steps)], folder)
    manifest = json.loads((folder / "models/tiger_final/manifest.json").read_text(encoding="utf-8"))
    return dict(manifest["summary"], wall_seconds=time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=40, help="optimizer steps per run")
    parser.add_argument("--keep", default="", help="work in this folder (kept) instead of a temporary one")
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(opts.keep or tmp)
        folder.mkdir(parents=True, exist_ok=True)
        build_corpus(folder)
        python = [sys.executable]
        torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2"]
        runs = {
            "demo defaults, 1 process": (python, []),
            "demo defaults, torchrun 2 processes": (torchrun, []),
            "presets/mpd_cpu.yaml, 1 process": (python, ["--config", str(REPO / "presets/mpd_cpu.yaml")]),
            "presets/mpd_gpu.yaml, 1 process": (python, ["--config", str(REPO / "presets/mpd_gpu.yaml"),
                                                         "--train.batch_size", "256"]),
        }
        results = {name: measure(folder, launcher, extra, opts.steps) for name, (launcher, extra) in runs.items()}
    baseline = results["demo defaults, 1 process"]["train_target_tokens_per_second"]
    print(f"{opts.steps} steps each on the demo corpus, {os.cpu_count()} CPUs, device "
          f"{results['demo defaults, 1 process']['device']}")
    print(f"{'run':40s} {'params':>9s} {'batch/proc':>10s} {'tokens/s':>10s} {'vs demo':>8s} {'wall s':>7s}")
    for name, r in results.items():
        batch = r.get("batch_size", "")
        print(f"{name:40s} {r['parameters'] / 1e6:8.2f}M {batch!s:>10s} {r['train_target_tokens_per_second']:10.0f} "
              f"{r['train_target_tokens_per_second'] / baseline:8.2f} {r['wall_seconds']:7.0f}")


if __name__ == "__main__":
    main()
