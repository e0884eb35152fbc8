"""Training-batch assembly: batches per second from the training loader alone, without and with workers.

    python bench/batches.py                                   # after prepare_corpus.py (demo corpus)
    python bench/batches.py --config data/spotify_mpd/config.yaml --config presets/mpd_gpu.yaml --workers 2

Builds the training set as train_tiger.py does (pooled targets, title vectors, neighbour targets) and
times ``--batches`` batches (at most one epoch) of ``train.batch_size`` from a DataLoader with 0 workers and with
``--workers`` (after each loader's first batch, so worker start-up is not counted); no model runs. With
0 workers a training step can never take less than this time per batch (on a GPU the step itself takes
milliseconds). Training builds batches in its own loop (no workers): this bench shows whether that is the cost.

``--digest`` instead collates every example once, in order, in batches of ``train.batch_size``, and prints a digest
of every tensor (and the validation batches'): two checkouts that print the same digest train on the same batches,
so with one seed they train the same model (how a change to the examples' storage was checked, docs/scaling.md).
"""

from __future__ import annotations

import hashlib
import sys
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from genrec.cli import run_script  # noqa: E402
from genrec.model.tokenizer import build_tokenizer  # noqa: E402
from genrec.train.batches import PadCollator, training_data  # noqa: E402
from genrec.train.loop import check_corpus  # noqa: E402


def add_arguments(parser) -> None:
    parser.add_argument("--workers", type=int, default=2, help="loader workers compared with none")
    parser.add_argument("--batches", type=int, default=20, help="batches timed per loader")
    parser.add_argument("--digest", action="store_true", help="print a digest of every batch instead of timing")


def batches_digest(datasets, collate, batch_size: int) -> str:
    h = hashlib.sha256()
    for dataset in datasets:
        for start in range(0, len(dataset), batch_size):
            batch = collate([dataset[i] for i in range(start, min(start + batch_size, len(dataset)))])
            for name in sorted(batch):
                h.update(name.encode() + str(batch[name].dtype).encode() + batch[name].numpy().tobytes())
    return h.hexdigest()[:16]


def seconds_per_batch(dataset, collate, batch_size: int, workers: int, batches: int, seed: int) -> float:
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=workers, collate_fn=collate,
                        generator=torch.Generator().manual_seed(seed))
    batches = min(batches, len(loader) - 1)  # one epoch at most: a new epoch would restart the workers
    if batches < 1:
        sys.exit(f"the training set has too few batches of {batch_size} to time")
    stream = iter(loader)
    next(stream)  # workers start and the first batch arrives here, outside the timing
    started = time.perf_counter()
    for _ in range(batches):
        next(stream)
    return (time.perf_counter() - started) / batches


def main(cfg, extras) -> None:
    workers, batches = extras["workers"], extras["batches"]
    if workers < 1 or batches < 1:
        sys.exit("--workers and --batches must be at least 1")
    train, val_rows, vocab, _ = check_corpus(cfg)
    tokenizer = build_tokenizer(cfg.network.pretrained, train.titles(), cfg.network.text_vocab_size, vocab)
    data = training_data(cfg, train, val_rows, vocab, tokenizer)
    collate = PadCollator(tokenizer.pad_token_id)
    size = cfg.train.batch_size
    if extras["digest"]:
        print(f"{len(data.train)} training examples, {len(data.val)} validation examples, batch {size}: digest "
              f"{batches_digest((data.train, data.val), collate, size)}")
        return
    print(f"{len(data.train)} training examples ({type(data.train).__name__}), batch {size}, "
          f"{batches} batches per loader, {torch.get_num_threads()} torch threads")
    timed = {count: seconds_per_batch(data.train, collate, size, count, batches, cfg.run.seed) for count in (0, workers)}
    print(f"{'loader':>12s} {'s/batch':>9s} {'batches/s':>10s} {'vs 0':>6s}")
    for count, seconds in timed.items():
        print(f"{f'{count} workers':>12s} {seconds:9.4f} {1 / seconds:10.1f} {timed[0] / seconds:6.2f}")


if __name__ == "__main__":
    sys.exit(run_script(main, __doc__, add_arguments))
