"""The training playlists beside a model: the JSON that retrieval.json and the bundle's playlists.json held before,
against the compact file that replaced it (genrec.data.playlists_file), in the same run, on the same corpus.

    python bench/playlists_file.py                                    # after prepare_corpus.py (demo corpus)
    python bench/playlists_file.py --config outputs/scale/1M/data/config.yaml

One child process reads train.tsv and writes both files (seconds per write, size on disk); then each file is read
back in a child of its own, as every process that loads a model reads it (peak resident memory from ``os.wait4``),
beside a child that only imports what the readers import (the floor both peaks include). Prints each format's
write and read seconds, size and peak memory, the ratios compact / JSON, and whether both read back the same
playlists (a digest).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from genrec.cli import run_script  # noqa: E402

FORMATS = {"json": "playlists.json", "compact": "playlists.npz"}
CHILDREN = ("write", "imports", "read json", "read compact")


def add_arguments(parser) -> None:
    parser.add_argument("--child", choices=CHILDREN, help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)


def digest(playlists) -> str:
    h = hashlib.sha256()
    for pid, title, songs in zip(playlists.ids, playlists.titles, playlists.songs):
        h.update(json.dumps([pid, title, songs], ensure_ascii=False).encode("utf-8"))
    return h.hexdigest()[:16]


def child(cfg, which: str, folder: Path) -> dict:
    from genrec.artifacts import write_json
    from genrec.data.playlists_file import read_playlists, write_playlists
    from genrec.evaluate.baselines import TrainingPlaylists, read_training_playlists

    if which == "imports":
        return {}
    if which == "write":
        from genrec.corpus.build import corpus_path

        playlists = read_training_playlists(corpus_path(cfg, "train"))
        as_json = {"ids": playlists.ids, "titles": playlists.titles, "songs": playlists.songs}
        seconds = {}
        for name, write in (("json", lambda p: write_json(p, as_json)),
                            ("compact", lambda p: write_playlists(p, playlists))):
            started = time.perf_counter()
            write(folder / FORMATS[name])
            seconds[name] = time.perf_counter() - started
        return {"write_seconds": seconds, "playlists": len(playlists.ids),
                "rows": sum(len(songs) for songs in playlists.songs)}
    started = time.perf_counter()
    if which == "read json":
        playlists = TrainingPlaylists(**json.loads((folder / FORMATS["json"]).read_text(encoding="utf-8")))
    else:
        playlists = read_playlists(folder / FORMATS["compact"], "run the bench again")
    seconds = time.perf_counter() - started
    return {"read_seconds": seconds, "digest": digest(playlists)}


def main(cfg, extras) -> None:
    if extras.get("child"):
        print(json.dumps(child(cfg, extras["child"], Path(extras["folder"]))))
        return
    import scale  # bench/scale.py: one child process measured (wall time, peak resident memory)

    results = {}
    with tempfile.TemporaryDirectory(dir=cfg.run.output_dir) as folder:
        for which in CHILDREN:
            command = [sys.executable, __file__, *sys.argv[1:], "--child", which, "--folder", folder]
            results[which] = scale.run_measured(command, 2**62, Path(folder) / "children.log")
            if results[which]["returncode"]:
                sys.exit(f"the {which} child failed: {(Path(folder) / 'children.log').read_text()[-2000:]}")
        sizes = {name: (Path(folder) / file).stat().st_size / 2**20 for name, file in FORMATS.items()}
    written = results["write"]["result"]
    floor = results["imports"]["peak_gb"]
    print(f"{written['playlists']} training playlists, {written['rows']} playlist-track rows; "
          f"a process importing the readers' modules alone peaks at {floor:.3f} GB")
    rows = {name: (sizes[name], written["write_seconds"][name], results[f"read {name}"]["result"]["read_seconds"],
                   results[f"read {name}"]["peak_gb"], results[f"read {name}"]["peak_gb"] - floor) for name in FORMATS}
    ratios = scale.print_comparison(rows, {"MB": ".1f", "write s": ".2f", "read s": ".2f", "read GB": ".3f",
                                           "above imp": ".3f"}, "compact", "json")
    print(f"compact / json: size {ratios[0]:.3f}, write {ratios[1]:.2f}, read {ratios[2]:.2f}, "
          f"read peak {ratios[3]:.2f} (above imports {ratios[4]:.2f})")
    same = results["read json"]["result"]["digest"] == results["read compact"]["result"]["digest"]
    print("same playlists read back" if same else "DIFFERENT playlists read back")


if __name__ == "__main__":
    sys.exit(run_script(main, __doc__, add_arguments))
