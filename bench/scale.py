"""Scale bench: stages 0-2 and the kNN baselines on synthetic data of the Spotify MPD's shape, per size.

    nice -n 10 python bench/scale.py --sizes 10k 100k 1M [--out outputs/scale] [--max-memory-gb 16]

Per size it writes synthetic playlists as MPD slice files (``mpd.slice.<a>-<b>.json``, so stage 0's real
importer is what is timed), then runs, each in its own child process:

- ``import``: ``prepare_data.py --source mpd`` (reading the slices, cleaning, split, catalogue cut, item2vec on
  the training playlists, writing the dataset folder; the data report's own seconds split read / item2vec);
- ``rq_kmeans``: ``train_rq_kmeans.py`` (3 x 256 codes, the MPD presets' shape);
- ``corpus``: ``prepare_corpus.py`` in single mode (one row per training (title, song) pair, the presets' mode);
- ``title_knn``: the evaluation's title kNN: fitted on train.tsv, tuned on the validation playlists, ranking the
  test playlists' titles;
- ``retrieval``: the retrieval list of presets/mpd_cpu_retrieval.yaml: kNN's votes after one step of the
  co-occurrence walk, for the test titles.

Each stage's wall time and peak resident memory (the child's own, from ``os.wait4``) go into a table, with the
growth exponent between consecutive sizes: ``log(t2 / t1) / log(rows2 / rows1)`` over playlist-track rows (1 is
linear). Before a size runs, each stage's time and memory there are predicted from the sizes already measured
(the last exponent, at least linear); a size whose prediction passes ``--max-memory-gb`` is refused with the
reason, and a child whose memory passes it while running is stopped, and the bench says so.

The synthetic data: songs per size follow the MPD's growth of its catalogue with playlists (187,557 distinct
tracks in a 6,337-playlist slice, 2.26M in the full 1M; Heaps' law, exponent 0.49); playlist lengths are
log-normal with the MPD's median 49 and mean 66, between 5 and 250; each playlist picks a taste and draws most
songs from that taste by a Zipf popularity, the rest from all songs; titles are the demo generator's
(genrec/data/demo.py). Results: ``<out>/scale.json``; log: ``logs/scale.log``.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
from tqdm import tqdm  # noqa: E402

log = logging.getLogger("bench.scale")

STAGES = ("synthesize", "import", "rq_kmeans", "corpus", "title_knn", "retrieval")
MPD_SLICE_PLAYLISTS = 1000
HEAPS_PLAYLISTS, HEAPS_SONGS, HEAPS_EXPONENT = 6337, 187_557, 0.49
LENGTH_MEDIAN, LENGTH_MEAN, LENGTH_MIN, LENGTH_MAX = 49, 66, 5, 250
TASTE_SHARE = 0.8
"""Share of a playlist's songs drawn from its own taste (the rest from all songs by global popularity)."""
ZIPF_EXPONENT = 1.0
CODEBOOK_SIZE = 256
"""The MPD presets' codes per level, or fewer where the catalogue is too small for them (songs / 39, faiss's floor)."""
RETRIEVAL_SONGS, WALK_WEIGHT = 100, 32.0
"""presets/mpd_cpu_retrieval.yaml's retrieval list."""
POLL_SECONDS = 0.2


def parse_size(text: str) -> int:
    """'10k' -> 10000, '1M' -> 1000000, '300' -> 300."""
    scale = {"k": 1_000, "m": 1_000_000}.get(text[-1].lower(), 1)
    number = text[:-1] if scale > 1 else text
    try:
        value = int(float(number) * scale)
    except ValueError:
        raise argparse.ArgumentTypeError(f"size {text!r}: a number of playlists, like 300, 10k or 1M") from None
    if value < 100:
        raise argparse.ArgumentTypeError(f"size {text!r}: at least 100 playlists")
    return value


def size_label(n: int) -> str:
    if n % 1_000_000 == 0:
        return f"{n // 1_000_000}M"
    return f"{n // 1000}k" if n % 1000 == 0 else str(n)


# ------------------------------------------------------------------------------------------ synthetic data


def catalogue_size(playlists: int) -> int:
    return max(200, round(HEAPS_SONGS * (playlists / HEAPS_PLAYLISTS) ** HEAPS_EXPONENT))


def synthesize(playlists: int, folder: Path, seed: int) -> dict:
    """MPD slice files of ``playlists`` synthetic playlists (see the module docstring); returns counts."""
    from genrec.data.demo import TASTES, _title
    rng = np.random.default_rng(seed)
    n_songs = catalogue_size(playlists)
    n_tastes = len(TASTES)
    song_taste = rng.integers(0, n_tastes, size=n_songs)
    weight = 1.0 / (1.0 + rng.permutation(n_songs)) ** ZIPF_EXPONENT  # each song's global popularity rank
    members = [np.flatnonzero(song_taste == t) for t in range(n_tastes)]
    taste_cdf = [np.cumsum(weight[m]) / weight[m].sum() for m in members]
    global_cdf = np.cumsum(weight) / weight.sum()
    sigma = math.sqrt(2 * math.log(LENGTH_MEAN / LENGTH_MEDIAN))
    folder.mkdir(parents=True, exist_ok=True)
    rows = 0
    for start in tqdm(range(0, playlists, MPD_SLICE_PLAYLISTS), desc=f"synthesizing {size_label(playlists)}",
                      unit="slice"):
        count = min(MPD_SLICE_PLAYLISTS, playlists - start)
        lengths = np.clip(rng.lognormal(math.log(LENGTH_MEDIAN), sigma, size=count).astype(int), LENGTH_MIN,
                          LENGTH_MAX)
        tastes = rng.integers(0, n_tastes, size=count)
        out = []
        for i, (length, taste) in enumerate(zip(lengths, tastes)):
            # Twice the draws, repeats dropped: popular songs would otherwise repeat far more than in the MPD.
            own = rng.binomial(2 * length, TASTE_SHARE)
            drawn = np.concatenate([members[taste][np.searchsorted(taste_cdf[taste], rng.random(own))],
                                    np.searchsorted(global_cdf, rng.random(2 * length - own))])
            drawn = np.minimum(drawn, n_songs - 1)[rng.permutation(2 * length)]
            first = np.sort(np.unique(drawn, return_index=True)[1])[:length]
            songs = drawn[first]
            out.append({"name": _title(rng, int(taste)), "pid": start + i, "num_tracks": len(songs),
                        "tracks": [{"pos": p, "track_uri": f"spotify:track:syn{s:019d}", "track_name": f"song {s}",
                                    "artist_name": f"artist {s // 8}"} for p, s in enumerate(songs.tolist())]})
            rows += len(songs)
        name = f"mpd.slice.{start}-{start + MPD_SLICE_PLAYLISTS - 1}.json"
        (folder / name).write_text(json.dumps({"info": {"slice": name}, "playlists": out}), encoding="utf-8")
    return {"playlists": playlists, "songs_drawn_from": n_songs, "rows_written": rows}


# ------------------------------------------------------------------------------------------ stage children


def codebook_size(work: Path) -> int:
    from genrec.quantize.rq_kmeans import FAISS_MIN_POINTS_PER_CENTROID
    songs = import_breakdown(work)["catalogue_songs"]
    return max(2, min(CODEBOOK_SIZE, songs // FAISS_MIN_POINTS_PER_CENTROID))


def stage_command(stage: str, work: Path, playlists: int, seed: int) -> list[str]:
    """The child process that runs one stage at one size (its working folder is ``work``)."""
    py, config = sys.executable, str(work / "data" / "config.yaml")
    if stage == "import":
        return [py, str(REPO / "prepare_data.py"), "--prepare.source", "mpd", "--prepare.input", str(work / "slices"),
                "--prepare.output", str(work / "data"), "--run.output_dir", str(work / "outputs"),
                "--run.model_dir", str(work / "models"), "--run.seed", str(seed)]
    if stage == "rq_kmeans":
        return [py, str(REPO / "train_rq_kmeans.py"), "--config", config, "--ids.codebook_size", str(codebook_size(work)),
                "--run.device", "cpu"]
    if stage == "corpus":
        return [py, str(REPO / "prepare_corpus.py"), "--config", config, "--corpus.target_mode", "single"]
    return [py, str(Path(__file__).resolve()), "--child", stage, "--work", str(work), "--seed", str(seed),
            "--sizes", str(playlists)]


def corpus_folder(work: Path) -> Path:
    return work / "outputs" / "data"


def run_knn_stage(stage: str, work: Path) -> dict:
    """title_knn or retrieval, the way the evaluation and a retrieval model run them (see the module docstring)."""
    from config import Config
    from genrec.corpus.build import read_corpus
    from genrec.evaluate.baselines import KnnParams, TitleKNN, TrainingPlaylists, read_training_playlists, tune_knn
    from genrec.evaluate.metrics import ndcg_score
    from genrec.train.neighbour_targets import NEIGHBOUR_SONGS, CooccurrenceWalk, walked_knn

    eval_cfg = Config().eval
    folder = corpus_folder(work)
    training = read_training_playlists(folder / "train.tsv")
    val = TrainingPlaylists.from_corpus(read_corpus(folder / "val.tsv"))
    test = TrainingPlaylists.from_corpus(read_corpus(folder / "test.tsv"))
    knn = TitleKNN().fit(training.titles, training.songs)
    if stage == "title_knn":
        tune_knn(knn, val.titles, val.songs, eval_cfg.num_songs, ndcg_score(max(eval_cfg.k_values)))
        ranked = knn.recommend(test.titles, eval_cfg.num_songs)
    else:
        knn.params = KnnParams()
        walk = CooccurrenceWalk(knn)
        ranked = walked_knn(knn, walk, test.titles, WALK_WEIGHT, NEIGHBOUR_SONGS, RETRIEVAL_SONGS)
    truths = [set(songs) for songs in test.songs]
    recall = float(np.mean([len(truth & set(r)) / len(truth) for r, truth in zip(ranked, truths)]))
    return {"training_playlists": len(training.ids), "val_titles": len(val.titles), "test_titles": len(test.titles),
            "params": vars(knn.params), f"recall@{len(ranked[0])}": round(recall, 4)}


def child_main(args: argparse.Namespace) -> None:
    from genrec.cli import setup_logging
    from config import Config
    setup_logging(Config(), "scale")
    work = Path(args.work)
    if args.child == "synthesize":
        result = synthesize(args.sizes[0], work / "slices", args.seed)
    else:
        result = run_knn_stage(args.child, work)
    print(json.dumps(result))


# ------------------------------------------------------------------------------------------ measuring


def rss_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def run_measured(command: list[str], limit_bytes: int, log_file: Path) -> dict:
    """Run one child; its wall time, its own peak RSS (os.wait4) and whether it was stopped at the memory limit."""
    started = time.perf_counter()
    with open(log_file, "a", encoding="utf-8") as child_log:
        child_log.write(f"\n$ {' '.join(command)}\n")
        child_log.flush()
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=child_log, text=True, cwd=str(REPO))
        over, done = threading.Event(), threading.Event()

        def watch() -> None:  # never waits on the child: os.wait4 below must be the one that reaps it
            while not done.wait(POLL_SECONDS):
                if rss_bytes(process.pid) > limit_bytes:
                    over.set()
                    process.kill()
                    return

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        stdout = process.stdout.read()
        _, status, usage = os.wait4(process.pid, 0)
        done.set()
        process.returncode = os.waitstatus_to_exitcode(status)
        watcher.join()
        child_log.write(stdout)
    result = {"seconds": round(time.perf_counter() - started, 2), "peak_gb": round(usage.ru_maxrss / 2**20, 3),
              "returncode": process.returncode}
    if over.is_set():
        result["stopped"] = f"resident memory passed the {limit_bytes / 2**30:.1f} GB limit"
    lines = [line for line in stdout.strip().splitlines() if line.startswith("{")]
    if process.returncode == 0 and lines:
        try:
            result["result"] = json.loads(lines[-1])
        except ValueError:
            pass
    return result


def exponent(small: float, large: float, rows_small: int, rows_large: int) -> float | None:
    if small <= 0 or large <= 0 or rows_large == rows_small:
        return None
    return round(math.log(large / small) / math.log(rows_large / rows_small), 2)


def predicted(measured: list[dict], stage: str, playlists: int) -> dict | None:
    """A stage's time and memory at ``playlists`` from the sizes measured: from one size, proportional to playlists;
    from two or more, the larger of the straight line through the last two (a fixed cost plus a cost per playlist)
    and the power law of their exponent (growth faster than linear)."""
    done = [m for m in measured if "seconds" in m["stages"].get(stage, {}) and "stopped" not in m["stages"][stage]]
    if not done:
        return None
    last = done[-1]
    out = {}
    for key in ("seconds", "peak_gb"):
        value, n = last["stages"][stage][key], last["playlists"]
        if len(done) == 1:
            out[key] = value * playlists / n
            continue
        before, n0 = done[-2]["stages"][stage][key], done[-2]["playlists"]
        line = value + (value - before) / (n - n0) * (playlists - n)
        power = value * (playlists / n) ** (exponent(before, value, n0, n) or 1.0)
        out[key] = max(line, power)
    return out


def import_rows(work: Path) -> int | None:
    report = work / "outputs" / "data" / "data_report.json"
    if not report.exists():
        return None
    return json.loads(report.read_text(encoding="utf-8"))["read"]["rows"]


def import_breakdown(work: Path) -> dict:
    report = json.loads((work / "outputs" / "data" / "data_report.json").read_text(encoding="utf-8"))
    return {"read_seconds": report["seconds"]["read"], "item2vec_seconds": report["vectors"]["seconds"],
            "catalogue_songs": report["songs"], "playlists": report["playlists"], "rows_kept": report["rows"],
            "songs_read": report["read"]["songs"]}


def run_size(playlists: int, args: argparse.Namespace, measured: list[dict], log_file: Path,
             on_stage: Callable[[dict], None] = lambda entry: None) -> dict:
    """Every stage at one size, stopping at the first refused, stopped or failed one; ``on_stage`` sees the size's
    entry after each stage (the bench saves it, so a bench stopped midway keeps what it measured)."""
    work = Path(args.out) / size_label(playlists)
    work.mkdir(parents=True, exist_ok=True)
    entry = {"size": size_label(playlists), "playlists": playlists, "stages": {}}
    limit = int(args.max_memory_gb * 2**30)
    for stage in args.stages:
        guess = predicted(measured, stage, playlists)
        if guess and guess["peak_gb"] > args.max_memory_gb:
            entry["stages"][stage] = {"refused": f"predicted peak {guess['peak_gb']:.1f} GB > {args.max_memory_gb} GB"}
            log.warning("%s %s: refused, predicted peak memory %.1f GB passes --max-memory-gb %g", entry["size"],
                        stage, guess["peak_gb"], args.max_memory_gb)
            break
        if guess:
            log.info("%s %s: predicted %.0f s, %.2f GB", entry["size"], stage, guess["seconds"], guess["peak_gb"])
        result = run_measured(stage_command(stage, work, playlists, args.seed), limit, log_file)
        if stage == "import" and result["returncode"] == 0:
            result.update(import_breakdown(work))
        entry["stages"][stage] = result
        entry["rows"] = import_rows(work)
        on_stage(entry)
        log.info("%s %s: %.1f s, peak %.2f GB%s", entry["size"], stage, result["seconds"], result["peak_gb"],
                 f" ({result['stopped']})" if "stopped" in result else "")
        if result["returncode"] != 0:
            log.warning("%s %s failed (exit %d): see %s", entry["size"], stage, result["returncode"], log_file)
            break
    entry["rows"] = import_rows(work)
    return entry


def with_exponents(measured: list[dict]) -> list[dict]:
    """Growth exponents of time and memory between consecutive sizes, per stage, over playlist-track rows."""
    out = []
    for small, large in zip(measured, measured[1:]):
        if not (small.get("rows") and large.get("rows")):
            continue
        stages = {}
        for stage in STAGES:
            a, b = small["stages"].get(stage, {}), large["stages"].get(stage, {})
            if "seconds" in a and "seconds" in b and not b.get("returncode"):
                stages[stage] = {"time": exponent(a["seconds"], b["seconds"], small["rows"], large["rows"]),
                                 "memory": exponent(a["peak_gb"], b["peak_gb"], small["rows"], large["rows"])}
        out.append({"from": small["size"], "to": large["size"], "stages": stages})
    return out


def format_table(measured: list[dict], exponents: list[dict]) -> str:
    lines = ["| size | rows | " + " | ".join(STAGES) + " |", "|---|---:|" + "---:|" * len(STAGES)]
    for entry in measured:
        cells = []
        for stage in STAGES:
            s = entry["stages"].get(stage)
            if s is None:
                cells.append("-")
            elif "refused" in s:
                cells.append("refused")
            else:
                cells.append(f"{s['seconds']:.1f} s, {s['peak_gb']:.2f} GB" + (" (stopped)" if "stopped" in s else "")
                             + (" (failed)" if s.get("returncode") else ""))
        lines.append(f"| {entry['size']} | {entry.get('rows') or '-'} | " + " | ".join(cells) + " |")
    for growth in exponents:
        cells = [f"{g['time']} / {g['memory']}" if (g := growth["stages"].get(stage)) else "-" for stage in STAGES]
        lines.append(f"| exponent {growth['from']}->{growth['to']} (time / memory) | | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def print_comparison(rows: dict[str, tuple], columns: dict[str, str], new: str, old: str) -> list[float]:
    """Print one line per way (``columns``: heading -> number format), then return ``new`` / ``old`` per column
    (the benches that measure a new way against the old one in the same run)."""
    width = max(map(len, rows))
    print(f"{'':>{width}s} " + " ".join(f"{heading:>9s}" for heading in columns))
    for name, values in rows.items():
        print(f"{name:>{width}s} " + " ".join(f"{value:>9{form}}" for value, form in zip(values, columns.values())))
    return [a / b if b > 0 else float("nan") for a, b in zip(rows[new], rows[old])]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", type=parse_size, default=[parse_size(s) for s in ("10k", "100k", "1M")],
                        help="numbers of playlists (10k, 100k, 1M, ...)")
    parser.add_argument("--out", default="outputs/scale", help="working folder and scale.json (default %(default)s)")
    parser.add_argument("--max-memory-gb", type=float, default=16.0,
                        help="refuse a size predicted to pass this peak, and stop a stage that passes it")
    parser.add_argument("--stages", nargs="+", choices=STAGES, default=list(STAGES))
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--child", choices=("synthesize", "title_knn", "retrieval"), help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child_main(args)
        return 0
    from genrec.cli import setup_logging
    from config import Config
    log_file = setup_logging(Config(), "scale")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    measured: list[dict] = []

    def save(entry: dict) -> None:
        sizes = [*measured, entry]
        (out / "scale.json").write_text(json.dumps({
            "sizes": sizes, "exponents": with_exponents(sizes), "max_memory_gb": args.max_memory_gb,
            "total_seconds": round(time.perf_counter() - started, 1), "cpus": os.cpu_count()}, indent=2),
            encoding="utf-8")

    for playlists in sorted(args.sizes):
        entry = run_size(playlists, args, measured, log_file, save)
        save(entry)
        measured.append(entry)
        if any("refused" in s or "stopped" in s or s.get("returncode") for s in entry["stages"].values()):
            log.warning("stopping after %s: a stage was refused, stopped or failed (see above)", entry["size"])
            break
    print(format_table(measured, with_exponents(measured)))
    print(f"total {time.perf_counter() - started:.0f} s; results in {out / 'scale.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
