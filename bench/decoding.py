"""Decoding speed with and without the trie constraint: playlists per second, greedy and beam.

    python bench/decoding.py [--config ...] [--playlists 64]     # after train_tiger.py

Titles are the first ``--playlists`` test titles. Each setting is decoded once to warm up, then timed
``--repeats`` times, constrained and plain interleaved, keeping the fastest of each (robust to other
load on the machine); the ratio is constrained / unconstrained throughput in this same run (1.0 = no cost).
Greedy: one song per title in single mode (beam search is how single mode returns several songs),
a whole playlist in sequence mode. Beam: ``decode.num_beams`` (single) or ``eval.sequence_num_beams``
beams for ``eval.num_songs`` songs, as the evaluation decodes.
"""

from __future__ import annotations

import sys
import time
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from genrec.cli import run_script  # noqa: E402
from genrec.corpus.build import corpus_path, read_corpus, vocab_path  # noqa: E402
from genrec.decode.decoding import DecodingSettings  # noqa: E402
from genrec.decode.decoding import decode  # noqa: E402
from genrec.model.t5 import load_tiger, resolve_device, tiger_final_dir  # noqa: E402


def add_arguments(parser) -> None:
    parser.add_argument("--playlists", type=int, default=64, help="test titles decoded per measurement")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per setting (the fastest counts)")


def seconds_and_invalid(bundle, titles, settings, constrained: bool) -> tuple[float, float]:
    started = time.perf_counter()
    decoded = decode(bundle, titles, settings, constrained)
    seconds = time.perf_counter() - started
    return seconds, sum(d.invalid for d in decoded) / max(sum(d.generated for d in decoded), 1)


def compare(bundle, titles, settings, repeats: int) -> tuple[float, float, float]:
    """Fastest constrained and plain throughput (playlists/s), and the plain invalid-ID share."""
    for constrained in (True, False):
        decode(bundle, titles[:settings.batch_size], settings, constrained)  # warm-up (and trie build)
    best = {True: float("inf"), False: float("inf")}
    invalid = 0.0
    for _ in range(repeats):
        for constrained in (True, False):
            seconds, share = seconds_and_invalid(bundle, titles, settings, constrained)
            best[constrained] = min(best[constrained], seconds)
            invalid = share if not constrained else invalid
    return len(titles) / best[True], len(titles) / best[False], invalid


def main(cfg, extras) -> None:
    device = resolve_device(cfg.run.device)
    bundle = load_tiger(tiger_final_dir(cfg), device, vocab_path(cfg))
    titles = [row.input_text for row in read_corpus(corpus_path(cfg, "test"))][:extras["playlists"]]
    beam = DecodingSettings.from_config(cfg.decode, cfg.eval.num_songs)
    single = bundle.target_mode == "single"
    greedy = replace(beam, num_beams=1, num_songs=1 if single else beam.num_songs)
    print(f"{len(titles)} titles, {bundle.target_mode} mode, {device}, {len(bundle.vocab.by_tokens)} IDs")
    print(f"{'setting':<34}{'constrained/s':>15}{'plain/s':>10}{'ratio':>8}{'plain invalid':>15}")
    for name, settings in (("greedy", greedy), ("beam", beam)):
        label = f"{name} ({settings.num_songs} songs, {settings.num_beams} beams)"
        fast, plain, invalid = compare(bundle, titles, settings, extras["repeats"])
        print(f"{label:<34}{fast:15.2f}{plain:10.2f}{fast / plain:8.2f}{100 * invalid:14.1f}%")


if __name__ == "__main__":
    sys.exit(run_script(main, __doc__, extra=add_arguments))
