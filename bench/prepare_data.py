"""Benchmark of the MPD import: playlists per second and peak memory, extrapolated to the full MPD.

    python bench/prepare_data.py [--input ../shared/datasets/spotify_mpd]

Each phase runs in a fresh Python process so its peak resident memory is its own:
- baseline: ``json.load`` of every slice, one at a time, keeping nothing (the floor for reading);
- read: genrec.data.importers.read_mpd (streaming slices into song codes);
- import: the whole ``prepare_data.py --prepare.source mpd`` (cleaning, item2vec, writing the folder).
Time is extrapolated linearly in playlists. For memory the read phase also runs on the first half
of the slices: the memory the second half added, per playlist, is the marginal cost, and since the
catalogue grows ever more slowly, marginal cost times 1M playlists is an upper bound for the full MPD.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from genrec.data.importers import mpd_slice_files  # noqa: E402
FULL_MPD_PLAYLISTS = 1_000_000

CHILD = r"""
import json, resource, sys, time
sys.path.insert(0, {repo!r})
phase, folder = sys.argv[1], sys.argv[2]
started = time.perf_counter()
if phase == "baseline":
    from genrec.data.importers import mpd_slice_files, read_slice
    playlists, songs, rows = sum(len(read_slice(path)) for path in mpd_slice_files(folder)), 0, 0
else:
    from genrec.data.importers import read_mpd
    data = read_mpd(folder)
    playlists, songs, rows = len(data.ids), len(data.song_ids), data.report["rows"]
print(json.dumps({{"seconds": time.perf_counter() - started, "playlists": playlists, "songs": songs, "rows": rows,
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""


def run_phase(phase: str, folder: Path) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD.format(repo=str(REPO)), phase, str(folder)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_import(folder: Path) -> dict:
    """The whole stage in a child process; its peak memory is read from the children's rusage."""
    import resource
    with tempfile.TemporaryDirectory() as work:
        started = time.perf_counter()
        subprocess.run([sys.executable, str(REPO / "prepare_data.py"), "--prepare.source", "mpd",
                        "--prepare.input", str(folder), "--prepare.output", "data/bench_mpd"],
                       cwd=work, capture_output=True, text=True, check=True)
        seconds = time.perf_counter() - started
        report = json.loads((Path(work) / "outputs" / "bench_mpd" / "data_report.json").read_text(encoding="utf-8"))
    return {"seconds": seconds, "playlists": report["read"]["playlists"], "report": report,
            "peak_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", default=str(REPO.parent / "shared" / "datasets" / "spotify_mpd"))
    folder = Path(parser.parse_args().input)
    if not folder.exists():
        sys.exit(f"{folder} is absent: nothing to measure")
    baseline = run_phase("baseline", folder)
    read = run_phase("read", folder)
    with tempfile.TemporaryDirectory() as half_folder:
        files = mpd_slice_files(folder)
        for path in files[:max(1, len(files) // 2)]:
            (Path(half_folder) / path.name).symlink_to(path.resolve())
        half = run_phase("read", Path(half_folder))
    full = run_import(folder)
    scale = FULL_MPD_PLAYLISTS / read["playlists"]
    print(f"input: {folder} ({read['playlists']} playlists)")
    print(f"{'phase':<10} {'seconds':>8} {'playlists/s':>12} {'peak MB':>8}   time for 1M playlists (linear)")
    for name, phase in (("baseline", baseline), ("read", read), ("import", full)):
        rate = phase["playlists"] / phase["seconds"]
        print(f"{name:<10} {phase['seconds']:8.1f} {rate:12.0f} {phase['peak_mb']:8.0f}   "
              f"{phase['seconds'] * scale / 60:6.1f} min")
    print(f"read / baseline time: {read['seconds'] / baseline['seconds']:.2f}x; "
          f"read memory above baseline: {read['peak_mb'] - baseline['peak_mb']:.0f} MB "
          f"for {full['report']['read']['songs']} songs and {full['report']['read']['rows']} rows")
    marginal = (read["peak_mb"] - half["peak_mb"]) / (read["playlists"] - half["playlists"])
    full_mb = read["peak_mb"] + marginal * (FULL_MPD_PLAYLISTS - read["playlists"])
    print(f"read memory: {half['peak_mb']:.0f} MB for {half['playlists']} playlists, {read['peak_mb']:.0f} MB for "
          f"{read['playlists']}: {marginal * 1024:.1f} KB per extra playlist -> 1M playlists <= {full_mb / 1024:.1f} GB")
    print(f"import seconds: read {full['report']['seconds']['read']}, item2vec "
          f"{full['report']['vectors']['seconds']}, total in-stage {full['report']['seconds']['total']}")


if __name__ == "__main__":
    main()
