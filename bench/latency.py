"""Serving latency of a model bundle: load time, per-title latency of each system, one-shot and batch throughput.

    python bench/latency.py --model models/bundle [--titles FILE | --test-tsv outputs/test.tsv] [--num-titles 50]
                            [--systems model,knn] [--num-songs 20] [--repeats 3] [--json-out latency.json]

- load: ``PlaylistGenerator.load`` in ``--repeats`` fresh Python processes (median): from the process's start to
  the loaded generator (interpreter, imports and load), and the load call alone; beside them, as the floor, a fresh
  process that only imports torch.
- one shot: ``generate_playlist.py --model BUNDLE --title "late night drive"`` as a user runs it once (with this
  bench's ``--num-songs`` and ``--device``; its decoding settings are the script's own), wall seconds from start
  to exit (median of ``--repeats``).
- both again through transformers, as the generator served the T5 before genrec.serve.inference (the child
  processes make ``load_inference`` decline the model), in the same run: the baseline of the two figures above.
- per title: ``generate(title)`` one title at a time at the bundle's default settings (``--num-songs`` songs),
  for each system and, as the baseline, title kNN's lookup alone (``knn.scored([title], num_songs)``), all in this
  one process. Per title every system is timed once, in an order rotated by one each title, so that background
  load and per-title caches (a title encoder's sentence vectors) fall evenly on every system. ``first`` is the
  first title (it pays one-time costs such as the trie build, for whichever system first needs them); p50, p95
  and max are over all titles, the first included. The ratio is each p50 over title kNN lookup's p50.
- batch: ``generate_batch`` of all the titles at once, titles per second, the fastest of ``--repeats`` calls
  (title kNN: one ``scored`` call).

Titles: ``--titles FILE`` (one a line), else the distinct titles of ``--test-tsv`` (a corpus split), else a
built-in list of varied titles (English moods, Chinese, emoji, one nonsense title); the first ``--num-titles``
distinct ones. Timings use time.perf_counter and torch's default thread count.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from genrec.corpus.build import read_corpus  # noqa: E402
from genrec.errors import GenrecError  # noqa: E402
from genrec.serve.bundle import find_bundle  # noqa: E402
from genrec.serve.generator import PlaylistGenerator, read_titles  # noqa: E402
from bench.sample_titles import SAMPLE_TITLES  # noqa: E402

ONE_SHOT_TITLE = "late night drive"
KNN = "knn lookup"
LOAD_CHILD = """\
import sys, time
sys.path.insert(0, sys.argv[1])
from genrec import PlaylistGenerator
start = time.perf_counter()
PlaylistGenerator.load(sys.argv[2], sys.argv[3])
print(time.time(), time.perf_counter() - start)
"""
# Prepended to a child's code: the plain-torch loader declines every model, so the generator loads transformers.
THROUGH_TRANSFORMERS = """\
import sys
sys.path.insert(0, sys.argv[1])
import genrec.serve.inference
genrec.serve.inference.load_inference = lambda *args, **kwargs: None
"""
ONE_SHOT_CHILD = """\
import runpy
sys.argv = sys.argv[2:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""
PATHS = {"plain torch": "import sys\n", "transformers": THROUGH_TRANSFORMERS}


def bench_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="models", help="bundle folder, or a model folder holding bundle/")
    parser.add_argument("--titles", help="file of titles, one a line")
    parser.add_argument("--test-tsv", help="a corpus split (outputs/test.tsv): its distinct titles")
    parser.add_argument("--num-titles", type=int, default=50, help="titles timed one at a time and in the batch")
    parser.add_argument("--systems", default="", help="comma-separated systems to time (default: all the bundle's)")
    parser.add_argument("--num-songs", type=int, default=20, help="songs per playlist")
    parser.add_argument("--repeats", type=int, default=3, help="runs of the load, one-shot and batch timings")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    parser.add_argument("--json-out", help="also write every figure to this JSON file")
    return parser


def bench_titles(args) -> tuple[list[str], str]:
    if args.titles:
        titles, source = read_titles(args.titles), args.titles
    elif args.test_tsv:
        titles, source = [row.input_text for row in read_corpus(args.test_tsv)], args.test_tsv
    else:
        titles, source = SAMPLE_TITLES, "built-in list"
    return list(dict.fromkeys(titles))[:args.num_titles], source


IMPORTS_ONLY = "import torch"


def median_wall(command: list[str], repeats: int) -> tuple[float, list[float]]:
    """Median wall seconds of a command run ``repeats`` times (it must succeed)."""
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True)
        runs.append(time.perf_counter() - start)
        if done.returncode:
            raise GenrecError(f"{' '.join(command)} failed: {(done.stderr or done.stdout).strip()[-500:]}")
    return statistics.median(runs), runs


def load_times(bundle: Path, device: str, repeats: int, path: str) -> dict:
    """Seconds from a fresh process's start to the loaded generator, and of the load call alone (medians)."""
    to_loaded, calls = [], []
    for _ in range(repeats):
        started = time.time()  # wall clock: compared with the child's
        done = subprocess.run([sys.executable, "-c", PATHS[path] + LOAD_CHILD, str(REPO), str(bundle), device],
                              capture_output=True, text=True)
        if done.returncode:
            raise GenrecError(f"loading {bundle} in a fresh process failed: {done.stderr.strip()[-500:]}")
        loaded, call = map(float, done.stdout.split()[-2:])
        to_loaded.append(loaded - started)
        calls.append(call)
    return {"start_to_loaded_s": statistics.median(to_loaded), "load_call_s": statistics.median(calls),
            "runs": {"start_to_loaded_s": to_loaded, "load_call_s": calls}}


def summary(seconds: list[float]) -> dict:
    ms = np.asarray(seconds) * 1000
    return {"first_ms": float(ms[0]), "p50_ms": float(np.percentile(ms, 50)), "p95_ms": float(np.percentile(ms, 95)),
            "max_ms": float(ms.max())}


def per_title(generator: PlaylistGenerator, titles: list[str], systems: list[str], n: int) -> dict[str, list[float]]:
    """Seconds per title of title kNN's lookup and of each system, the order rotated by one each title."""
    calls = {KNN: lambda title: generator.knn.scored([title], n),
             **{s: (lambda title, s=s: generator.generate(title, system=s, num_songs=n)) for s in systems}}
    names = list(calls)
    seconds: dict[str, list[float]] = {name: [] for name in names}
    for i, title in enumerate(titles):
        for name in names[i % len(names):] + names[:i % len(names)]:
            start = time.perf_counter()
            calls[name](title)
            seconds[name].append(time.perf_counter() - start)
    return seconds


def batch_rate(call, titles: list[str], repeats: int) -> float:
    """Titles per second of one call on all the titles, the fastest of ``repeats`` (robust to other load)."""
    fastest = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        call(titles)
        fastest = min(fastest, time.perf_counter() - start)
    return len(titles) / fastest


def main(args) -> dict:
    if args.num_titles < 1 or args.repeats < 1:
        raise GenrecError("--num-titles and --repeats must be at least 1")
    bundle = find_bundle(args.model)
    titles, source = bench_titles(args)
    generator = PlaylistGenerator.load(bundle, args.device)
    systems = [s for s in args.systems.split(",") if s] or list(generator.systems)
    unknown = [s for s in systems if s not in generator.systems]
    if unknown:
        raise GenrecError(f"--systems: {unknown[0]!r} is not served by this bundle ({', '.join(generator.systems)})")
    # Each path's load and one-shot runs alternate, so background load falls on both alike.
    loads, one_shots = {}, {}
    script = [str(REPO / "generate_playlist.py"), "--model", str(bundle), "--title", ONE_SHOT_TITLE,
              "--num-songs", str(args.num_songs), "--run.device", args.device]
    for path in PATHS:
        loads[path] = load_times(bundle, args.device, args.repeats, path)
        median, runs = median_wall([sys.executable, "-c", PATHS[path] + ONE_SHOT_CHILD, str(REPO), *script],
                                   args.repeats)
        one_shots[path] = {"median_s": median, "runs_s": runs}
    # The floor under any process that serves the T5: starting Python and importing torch.
    imports_only, _ = median_wall([sys.executable, "-c", IMPORTS_ONLY], args.repeats)
    n = args.num_songs
    seconds = per_title(generator, titles, systems, n)
    rates = {KNN: batch_rate(lambda t: generator.knn.scored(t, n), titles, args.repeats),
             **{s: batch_rate(lambda t, s=s: generator.generate_batch(t, system=s, num_songs=n), titles, args.repeats)
                for s in systems}}
    figures = {name: {**summary(s), "batch_titles_per_s": rates[name]} for name, s in seconds.items()}
    for name in figures:
        figures[name]["p50_over_knn_lookup"] = figures[name]["p50_ms"] / figures[KNN]["p50_ms"]
    result = {"bundle": str(bundle), "device": str(generator.tiger.model.device), "threads": torch.get_num_threads(),
              "titles": len(titles), "title_source": source, "num_songs": n, "default_system": generator.default_system,
              "catalogue_songs": len(generator.names), "load": loads, "imports_only_s": imports_only,
              "one_shot": {"command": f'generate_playlist.py --model BUNDLE --title "{ONE_SHOT_TITLE}"',
                           **one_shots},
              "per_title": figures}
    print_report(result, args.repeats)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return result


def print_report(result: dict, repeats: int) -> None:
    print(f"{result['bundle']}: {result['catalogue_songs']} songs, default system {result['default_system']}; "
          f"{result['device']}, {result['threads']} torch threads; {result['titles']} titles ({result['title_source']}), "
          f"{result['num_songs']} songs each")
    print(f"medians of {repeats} fresh processes; python start to torch imported (the floor): "
          f"{result['imports_only_s']:.2f} s; one shot: {result['one_shot']['command']}")
    print(f"{'T5 served by':<14}{'start to loaded s':>19}{'load call s':>13}{'one shot s':>12}")
    for path, load in result["load"].items():
        print(f"{path:<14}{load['start_to_loaded_s']:19.2f}{load['load_call_s']:13.2f}"
              f"{result['one_shot'][path]['median_s']:12.2f}")
    print(f"{'per title':<14}{'first ms':>10}{'p50 ms':>10}{'p95 ms':>10}{'max ms':>10}{'p50 / kNN':>11}"
          f"{'batch titles/s':>16}")
    for name, f in result["per_title"].items():
        print(f"{name:<14}{f['first_ms']:10.1f}{f['p50_ms']:10.1f}{f['p95_ms']:10.1f}{f['max_ms']:10.1f}"
              f"{f['p50_over_knn_lookup']:11.1f}{f['batch_titles_per_s']:16.1f}")


if __name__ == "__main__":
    try:
        main(bench_parser().parse_args())
    except GenrecError as err:
        sys.exit(f"error: {err}")
