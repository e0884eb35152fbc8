"""Real-data quality benchmark: stages 1-4 in order, then the model-vs-baselines table per variant.

    python bench/quality.py --config data/spotify_mpd/config.yaml --config presets/mpd_cpu.yaml
    python bench/quality.py --quantizers rq_kmeans --modes single -- --config ... --tiger.max_steps 2000

Needs the imported data (prepare_data.py --prepare.source mpd ...). Every argument this script does not
know is passed to every stage (``--config FILE``, ``--group.field value``). Each variant
(quantizer x target mode) gets its own ``<run.output_dir>/bench/<variant>`` and
``<run.model_dir>/bench/<variant>`` folders, so variants never overwrite each other or the main run.
Prints wall time per stage and one table of every variant's systems; writes both to
``<run.output_dir>/bench/quality.json``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from genrec.cli import parse_config  # noqa: E402

STAGES = {"rq_kmeans": ["train_rq_kmeans.py"], "rqvae": ["train_rqvae.py"]}
LATER = ["prepare_corpus.py", "train_tiger.py", "evaluate_tiger.py"]
COLUMNS = ("r_precision", "recall@{k}", "ndcg@{k}", "hit@10", "coverage", "invalid_rate")


def run(script: str, args: list[str]) -> float:
    started = time.perf_counter()
    print(f"\n$ python {script} {' '.join(args)}", flush=True)
    proc = subprocess.run([sys.executable, str(REPO / script), *args])
    if proc.returncode != 0:
        sys.exit(f"{script} failed (exit {proc.returncode}); see logs/{Path(script).stem}.log")
    return time.perf_counter() - started


def variant(quantizer: str, mode: str, passed: list[str], output_dir: str, model_dir: str) -> tuple[dict, dict]:
    name = f"{quantizer}_{mode}"
    args = [*passed, "--corpus.target_mode", mode, "--run.output_dir", f"{output_dir}/bench/{name}",
            "--run.model_dir", f"{model_dir}/bench/{name}"]
    timings = {script: round(run(script, args), 1) for script in [*STAGES[quantizer], *LATER]}
    metrics = json.loads(Path(output_dir, "bench", name, "evaluation_metrics.json").read_text(encoding="utf-8"))
    return timings, metrics


def table(results: dict[str, dict], k: int) -> str:
    columns = [c.format(k=k) for c in COLUMNS]
    lines = ["| variant | system | " + " | ".join(columns) + " |", "|" + "---|" * (len(columns) + 2)]
    for name, metrics in results.items():
        for system, values in metrics["systems"].items():
            lines.append(f"| {name} | {system} | " + " | ".join(f"{values[c]:.4f}" for c in columns) + " |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quantizers", nargs="+", default=["rq_kmeans", "rqvae"], choices=list(STAGES))
    parser.add_argument("--modes", nargs="+", default=["single", "sequence"], choices=["single", "sequence"])
    ours, passed = parser.parse_known_args()
    passed = [a for a in passed if a != "--"]
    cfg, _ = parse_config(passed)
    results, timings = {}, {}
    started = time.perf_counter()
    for quantizer in ours.quantizers:
        for mode in ours.modes:
            name = f"{quantizer}_{mode}"
            timings[name], results[name] = variant(quantizer, mode, passed, cfg.run.output_dir, cfg.run.model_dir)
    k = max(cfg.eval.k_values)
    report = table(results, k)
    print("\nWall time per stage (s):")
    for name, stages in timings.items():
        print(f"  {name}: " + ", ".join(f"{s} {t}" for s, t in stages.items()))
    print(f"  total: {time.perf_counter() - started:.0f} s\n")
    print(report)
    out = Path(cfg.run.output_dir, "bench", "quality.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"command": " ".join(sys.argv), "timings_s": timings, "table": report,
                               "systems": {n: m["systems"] for n, m in results.items()}}, indent=2,
                              ensure_ascii=False), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
