"""Training's examples from single mode's train.tsv: peak memory of listing every (title, song) pair against
counting them per playlist (what train_tiger.py does), in the same run, on the same corpus.

    python bench/training_memory.py                                     # after prepare_corpus.py (demo corpus)
    python bench/training_memory.py --config outputs/scale/100k/data/config.yaml --config presets/mpd_cpu.yaml
    python bench/training_memory.py --config outputs/scale/1M/data/config.yaml --config presets/mpd_cpu.yaml --ways counted

Each way runs in its own child process (peak resident memory from ``os.wait4``): read train.tsv, train the title
tokenizer on its titles, and pool the targets (``targets.sharpening`` and ``targets.paths_per_title`` of the
config; no retrieval, title vectors or neighbour targets, which both ways add alike):

- ``listed``: the way before: every row read into a list, every pair tokenized, then pooled
  (``genrec.train.pooled_targets.pool_examples``);
- ``counted``: the rows read one at a time into their playlists, pairs counted per title
  (``genrec.train.batches.count_pairs``), then pooled (``pool_counted``).

Prints each way's seconds and peak memory, the ratio counted / listed, and whether both gave the same examples
(a digest of their inputs, paths, soft targets and weights). ``--ways counted`` runs the new way alone, for a corpus
whose listing would not fit in memory. Every process of a torchrun holds what one process
holds here.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import pickle
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from genrec.cli import run_script  # noqa: E402

WAYS = ("listed", "counted")


def add_arguments(parser) -> None:
    parser.add_argument("--ways", nargs="+", choices=WAYS, default=list(WAYS), help="the ways to run (default both)")
    parser.add_argument("--way", choices=WAYS, help=argparse.SUPPRESS)


def pooled_examples(cfg, way: str):
    from genrec.corpus.build import corpus_path, load_vocab, read_corpus
    from genrec.evaluate.baselines import read_training_playlists
    from genrec.model.tokenizer import build_tokenizer
    from genrec.train.batches import TrainingCorpus, count_pairs, encode, training_pairs
    from genrec.train.pooled_targets import PAIRS_PER_EXAMPLE, pool_counted, pool_examples

    vocab, path, net, targets = load_vocab(cfg), corpus_path(cfg, "train"), cfg.network, cfg.targets
    if way == "listed":
        rows = read_corpus(path)
        tokenizer = build_tokenizer(net.pretrained, [row.input_text for row in rows], net.text_vocab_size, vocab)
        encoded = encode(training_pairs(rows), tokenizer, net.max_input_length)
        return pool_examples(encoded.inputs, encoded.labels, PAIRS_PER_EXAMPLE, cfg.run.seed,
                             sharpening=targets.sharpening, paths_per_input=targets.paths_per_title)
    train = TrainingCorpus(read_training_playlists(path))
    tokenizer = build_tokenizer(net.pretrained, train.titles(), net.text_vocab_size, vocab)
    counted = count_pairs(train.playlists, tokenizer, vocab, net.max_input_length, None, None)
    return pool_counted(counted.by_input, counted.pairs, PAIRS_PER_EXAMPLE, cfg.run.seed,
                        sharpening=targets.sharpening, paths_per_input=targets.paths_per_title)


def digest(examples) -> str:
    h = hashlib.sha256()
    for field in (examples.inputs, examples.paths, examples.targets, examples.weights, examples.pairs):
        h.update(pickle.dumps(field))
    return h.hexdigest()[:16]


def main(cfg, extras) -> None:
    if cfg.corpus.target_mode != "single":
        sys.exit("bench/training_memory.py measures single mode's pairs: set corpus.target_mode single")
    if extras.get("way"):
        started = time.perf_counter()
        examples = pooled_examples(cfg, extras["way"])
        print(json.dumps({"examples": len(examples), "pairs": examples.pairs, "digest": digest(examples),
                          "work_seconds": round(time.perf_counter() - started, 1)}))
        return
    import scale  # bench/scale.py: one child process measured (wall time, peak resident memory)
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        for way in extras["ways"]:
            results[way] = scale.run_measured([sys.executable, __file__, *sys.argv[1:], "--way", way], 2**62,
                                              Path(folder) / "children.log")
            if results[way]["returncode"]:
                sys.exit(f"the {way} child failed: {(Path(folder) / 'children.log').read_text()[-2000:]}")
    first = next(iter(results.values()))["result"]
    print(f"{first['pairs']} (title, song) pairs -> {first['examples']} pooled examples")
    print(f"{'way':>8s} {'seconds':>8s} {'peak GB':>8s}")
    for way, result in results.items():
        print(f"{way:>8s} {result['seconds']:8.1f} {result['peak_gb']:8.3f}")
    if len(results) < len(WAYS):
        return
    listed, counted = results["listed"], results["counted"]
    print(f"counted / listed: time {counted['seconds'] / listed['seconds']:.2f}, "
          f"peak memory {counted['peak_gb'] / listed['peak_gb']:.2f}")
    print("same examples" if listed["result"]["digest"] == counted["result"]["digest"] else "DIFFERENT examples")


if __name__ == "__main__":
    sys.exit(run_script(main, __doc__, add_arguments))
