"""Real-data quality benchmark: stages 1-4 in order, then the model-vs-baselines table per variant.

    python bench/quality.py --config data/spotify_mpd/config.yaml --config presets/mpd_cpu.yaml
    python bench/quality.py --quantizers rq_kmeans --modes single -- --config ... --train.max_steps 2000
    python bench/quality.py --stages semantic_ids corpus -- --config ...    # here; then on a GPU machine:
    python bench/quality.py --stages train evaluate -- --config ...         # reuses the fresh earlier artifacts

Needs the imported data (prepare_data.py --prepare.source mpd ...). Every argument this script does not
know is passed to every stage (``--config FILE``, ``--group.field value``). Each variant
(quantizer x target mode) gets its own ``<run.output_dir>/bench/<variant>`` and
``<run.model_dir>/bench/<variant>`` folders, so variants never overwrite each other or the main run.
``--jobs N`` runs N variants at once (a large GPU has room for several small trainings), each variant's
output then going to ``<run.output_dir>/bench/<variant>.log``. ``--stages`` runs a subset (e.g. the cheap
first two on a CPU machine, training and evaluation on a GPU machine without faiss); a later stage
refuses earlier artifacts that are missing or stale.
Prints wall time per stage and one table of every variant's systems; writes both to
``<run.output_dir>/bench/quality.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from genrec.cli import parse_config  # noqa: E402

FIRST_STAGE = {"rq_kmeans": "train_rq_kmeans.py", "rqvae": "train_rqvae.py"}
LATER_STAGES = {"corpus": "prepare_corpus.py", "train": "train_tiger.py", "evaluate": "evaluate_tiger.py"}
STAGE_NAMES = ["semantic_ids", *LATER_STAGES]
COLUMNS = ("r_precision", "recall@{k}", "ndcg@{k}", "hit@10", "coverage", "invalid_rate")


class StageFailed(Exception):
    pass


def run(script: str, args: list[str], log_path: Path | None) -> float:
    started = time.perf_counter()
    with log_path.open("a", encoding="utf-8") if log_path else contextlib.nullcontext(sys.stdout) as out:
        print(f"\n$ python {script} {' '.join(args)}", file=out, flush=True)
        proc = subprocess.run([sys.executable, str(REPO / script), *args], stdout=out,
                              stderr=subprocess.STDOUT if log_path else None)
    if proc.returncode != 0:
        raise StageFailed(f"{script} failed (exit {proc.returncode}); see {log_path or f'logs/{Path(script).stem}.log'}")
    return time.perf_counter() - started


def stage_scripts(quantizer: str, stages: list[str]) -> list[str]:
    """The scripts of the chosen stages, in pipeline order."""
    scripts = {"semantic_ids": FIRST_STAGE[quantizer], **LATER_STAGES}
    return [scripts[name] for name in STAGE_NAMES if name in stages]


def variant(quantizer: str, mode: str, stages: list[str], passed: list[str], output_dir: str, model_dir: str,
            own_log: bool) -> tuple[dict, dict | None]:
    name = f"{quantizer}_{mode}"
    folder = Path(output_dir, "bench", name)
    args = [*passed, "--corpus.target_mode", mode, "--run.output_dir", str(folder),
            "--run.model_dir", f"{model_dir}/bench/{name}"]
    log_path = None
    if own_log:
        folder.mkdir(parents=True, exist_ok=True)
        log_path = Path(output_dir, "bench", f"{name}.log")
        print(f"{name}: output in {log_path}", flush=True)
    timings = {script: round(run(script, args, log_path), 1) for script in stage_scripts(quantizer, stages)}
    if "evaluate" not in stages:
        return timings, None
    return timings, json.loads((folder / "evaluation_metrics.json").read_text(encoding="utf-8"))


def table(results: dict[str, dict], k: int) -> str:
    columns = [c.format(k=k) for c in COLUMNS]
    lines = ["| variant | system | " + " | ".join(columns) + " |", "|" + "---|" * (len(columns) + 2)]
    for name, metrics in results.items():
        for system, values in metrics["systems"].items():
            lines.append(f"| {name} | {system} | " + " | ".join(f"{values[c]:.4f}" for c in columns) + " |")
    return "\n".join(lines)


def bench_parser() -> argparse.ArgumentParser:
    """This bench's own flags (the ones before ``--``); everything else goes to the stages."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quantizers", nargs="+", default=["rq_kmeans", "rqvae"], choices=list(FIRST_STAGE))
    parser.add_argument("--modes", nargs="+", default=["single", "sequence"], choices=["single", "sequence"])
    parser.add_argument("--stages", nargs="+", default=STAGE_NAMES, choices=STAGE_NAMES,
                        help="stages to run (in pipeline order); the others' artifacts must already be fresh")
    parser.add_argument("--jobs", type=int, default=1, help="variants run at once (each logs to its own file)")
    return parser


def main() -> int:
    parser = bench_parser()
    ours, passed = parser.parse_known_args()
    passed = [a for a in passed if a != "--"]
    if ours.jobs < 1:
        parser.error("--jobs must be at least 1")
    cfg, _ = parse_config(passed)
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=ours.jobs) as pool:
        futures = {f"{q}_{m}": pool.submit(variant, q, m, ours.stages, passed, cfg.run.output_dir, cfg.run.model_dir,
                                           ours.jobs > 1)
                   for q in ours.quantizers for m in ours.modes}
    results, timings, failures = {}, {}, []
    for name, future in futures.items():
        try:
            timings[name], results[name] = future.result()
        except StageFailed as err:
            failures.append(f"{name}: {err}")
    print("\nWall time per stage (s):")
    for name, stages in timings.items():
        print(f"  {name}: " + ", ".join(f"{s} {t}" for s, t in stages.items()))
    print(f"  total: {time.perf_counter() - started:.0f} s\n")
    if failures:
        print("\n".join(["Failed:", *failures]), file=sys.stderr)
    if "evaluate" not in ours.stages or not results:
        return 1 if failures else 0
    report = table(results, max(cfg.eval.k_values))
    print(report)
    out = Path(cfg.run.output_dir, "bench", "quality.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"command": " ".join(sys.argv), "timings_s": timings, "table": report,
                               "systems": {n: m["systems"] for n, m in results.items()}}, indent=2,
                              ensure_ascii=False), encoding="utf-8")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
