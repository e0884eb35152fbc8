"""What each torchrun rank holds of training's pooled examples, at the real MPD's title count: the Python lists
that the ranks' file held before, against the flat arrays (genrec.train.pooled_targets) each rank now maps from it,
in the same run, on the same examples.

    python bench/rank_examples.py                          # the real MPD's shape: 92,944 titles, 66M pairs
    python bench/rank_examples.py --titles 2000 --pairs 1000000   # a quick look

The synthetic corpus of bench/scale.py repeats 1,800 titles, so its examples are few. Here the (title, song) pair
counts are drawn directly: ``--titles`` distinct titles (the MPD's statistics list 92,944), each with a
long-tailed share of ``--pairs`` pairs (the MPD's 66M), its songs drawn by a Zipf popularity over ``--songs``
(2.26M) songs whose IDs are 3 codes of 256, a suffix and ``</s>`` (the MPD presets' shape). Drawn from the
global popularity, a title's songs spread more than a real title's do: more soft targets, so more memory.

Each step runs in its own child process (peak resident memory from ``os.wait4``):

- ``build``: count the pairs and pool them into ``--paths`` examples a title (``targets.paths_per_title`` of the
  MPD presets), as the main process does; write the ranks' file the way train_tiger.py now does;
- ``old file``: the same examples as the lists the file held before (a title's soft targets shared between its
  examples, as the code before built them), written with ``torch.save``;
- ``imports``: import what a rank imports (the floor of both ranks' peaks);
- ``old rank`` / ``new rank``: load the file as a rank does (lists read in full; arrays mapped), then read every
  example once, as an epoch does (a digest of its title, path, soft targets and weight).

Prints the file sizes, each rank's load and pass seconds, its peak resident memory and its private memory at the
end (``RssAnon``: what a second rank on the machine adds; mapped file pages are shared), the ratios new / old, and
whether both ranks read the same examples.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

FILES = {"old": "examples_lists.pt", "new": "examples_arrays.pt"}
CHILDREN = ("build", "old file", "imports", "old rank", "new rank")
ID_SHAPE = (256, 256, 256, 4)
"""Codes per level of a synthetic song ID, then the suffix that tells colliding songs apart."""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--titles", type=int, default=92_944, help="distinct titles (default: the MPD's 92,944)")
    parser.add_argument("--pairs", type=int, default=66_000_000, help="(title, song) pairs (default: the MPD's 66M)")
    parser.add_argument("--songs", type=int, default=2_262_292, help="songs in the catalogue (default: the MPD's)")
    parser.add_argument("--paths", type=int, default=50, help="examples a title (targets.paths_per_title)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--child", choices=CHILDREN, help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    for name in ("titles", "pairs", "songs", "paths"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1, got {getattr(args, name)}")
    return args


def pair_counts(args: argparse.Namespace) -> tuple[dict, int]:
    """(title token ids, ()) -> {ID path: pairs}, as genrec.train.batches.count_pairs gives them."""
    from collections import Counter

    import scale  # bench/scale.py: the synthetic corpus's popularity

    rng = np.random.default_rng(args.seed)
    codes = np.stack([rng.integers(0, size, args.songs) for size in ID_SHAPE], axis=1)
    codes += np.cumsum((2,) + ID_SHAPE[:-1])  # each level's own token ids, after pad and </s>
    popularity = np.cumsum(1.0 / np.arange(1, args.songs + 1) ** scale.ZIPF_EXPONENT)
    share = rng.lognormal(0.0, 1.5, args.titles)
    sizes = np.maximum(1, np.round(share / share.sum() * args.pairs)).astype(np.int64)
    counts = {}
    for t, size in enumerate(sizes):
        songs, times = np.unique(np.searchsorted(popularity, rng.random(size) * popularity[-1]), return_counts=True)
        title = (1000 + t % 30_000, 1000 + t // 30_000, 1)  # distinct token ids a title, then </s>
        counts[(title, ())] = Counter({(*map(int, codes[s]), 1): int(n) for s, n in zip(songs, times)})
    return counts, int(sizes.sum())


def as_lists(examples) -> dict:
    """The examples as the ranks' file held them before: lists per example, a title's soft targets shared."""
    shared = map(examples.target, range(len(examples.share_tokens)))
    targets = [(tokens.tolist(), shares.tolist()) for tokens, shares in shared]
    titles = [examples.titles[k].tolist() for k in range(len(examples.titles))]
    cuts = examples.path_tokens.ends[:-1]
    paths, rows = np.split(examples.path_tokens.values, cuts), np.split(examples.path_targets, cuts)
    return {"inputs": [list(titles[k]) for k in examples.example_input.tolist()],
            "paths": [path.tolist() for path in paths],
            "targets": [[targets[r] for r in row.tolist()] for row in rows],
            "weights": examples.example_weights.tolist(), "pairs": examples.pairs}


def digest_of(items) -> str:
    """Every example's title, path, soft targets (float32, as the collator reads them) and weight."""
    h = hashlib.sha256()
    for title, path, targets, weight in items:
        h.update(np.asarray(title, dtype=np.int64).tobytes() + np.asarray(path, dtype=np.int64).tobytes())
        for tokens, shares in targets:
            h.update(np.asarray(tokens, dtype=np.int64).tobytes() + np.asarray(shares, dtype=np.float32).tobytes())
        h.update(np.float64(weight).tobytes())
    return h.hexdigest()[:16]


def private_gb() -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("RssAnon:")) / 2**20


def child(args: argparse.Namespace, folder: Path) -> dict:
    import torch

    from genrec.train.pooled_targets import PooledDataset, PooledExamples, pool_counted

    if args.child == "imports":
        return {}
    if args.child == "build":
        started = time.perf_counter()
        counts, pairs = pair_counts(args)
        counted = time.perf_counter()
        examples = pool_counted(counts, pairs, 16, args.seed, paths_per_input=args.paths)
        pooled = time.perf_counter()
        torch.save({"pooled": examples.to_tensors()}, folder / FILES["new"])
        return {"count_seconds": counted - started, "pool_seconds": pooled - counted,
                "write_seconds": time.perf_counter() - pooled, "examples": len(examples), "pairs": pairs,
                "soft_targets": len(examples.share_tokens)}
    if args.child == "old file":
        examples = PooledExamples.from_tensors(torch.load(folder / FILES["new"], weights_only=True)["pooled"])
        lists = as_lists(examples)
        del examples
        started = time.perf_counter()
        torch.save({"pooled": lists}, folder / FILES["old"])
        return {"write_seconds": time.perf_counter() - started}
    started = time.perf_counter()
    if args.child == "old rank":
        lists = torch.load(folder / FILES["old"], weights_only=True)["pooled"]
        loaded = time.perf_counter()
        found = digest_of(zip(lists["inputs"], lists["paths"], lists["targets"], lists["weights"]))
    else:
        dataset = PooledDataset(PooledExamples.from_tensors(
            torch.load(folder / FILES["new"], weights_only=True, mmap=True)["pooled"]))
        loaded = time.perf_counter()
        found = digest_of((item["input_ids"], item["labels"], item["targets"], item["weight"])
                          for item in map(dataset.__getitem__, range(len(dataset))))
    return {"load_seconds": loaded - started, "pass_seconds": time.perf_counter() - loaded, "digest": found,
            "private_gb": private_gb()}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        print(json.dumps(child(args, Path(args.folder))))
        return 0
    import scale  # bench/scale.py: one child process measured (wall time, peak resident memory)

    results = {}
    with tempfile.TemporaryDirectory() as folder:
        for which in CHILDREN:
            command = [sys.executable, __file__, *(argv if argv is not None else sys.argv[1:]), "--child", which,
                       "--folder", folder]
            results[which] = scale.run_measured(command, 2**62, Path(folder) / "children.log")
            if results[which]["returncode"]:
                sys.exit(f"the {which} child failed: {(Path(folder) / 'children.log').read_text()[-2000:]}")
        sizes = {name: (Path(folder) / file).stat().st_size / 2**20 for name, file in FILES.items()}
    built = results["build"]["result"]
    print(f"{built['pairs']} (title, song) pairs of {args.titles} titles -> {built['examples']} pooled examples, "
          f"{built['soft_targets']} soft targets: counted in {built['count_seconds']:.1f} s, pooled in "
          f"{built['pool_seconds']:.1f} s; the building process peaked at {results['build']['peak_gb']:.3f} GB")
    print(f"a process importing what a rank imports peaks at {results['imports']['peak_gb']:.3f} GB")
    rows = {}
    for name, write in (("old", results["old file"]["result"]["write_seconds"]), ("new", built["write_seconds"])):
        rank = results[f"{name} rank"]
        rows[name] = (sizes[name], write, rank["result"]["load_seconds"], rank["result"]["pass_seconds"],
                      rank["peak_gb"], rank["result"]["private_gb"])
    ratios = scale.print_comparison(rows, {"MB": ".1f", "write s": ".2f", "load s": ".2f", "pass s": ".2f",
                                           "peak GB": ".3f", "private GB": ".3f"}, "new", "old")
    print(f"new / old: size {ratios[0]:.3f}, write {ratios[1]:.2f}, load {ratios[2]:.3f}, pass {ratios[3]:.2f}, "
          f"peak {ratios[4]:.3f}, private {ratios[5]:.3f}")
    same = results["old rank"]["result"]["digest"] == results["new rank"]["result"]["digest"]
    print("same examples in both ranks" if same else "DIFFERENT examples")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
