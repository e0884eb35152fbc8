"""Continuation examples (``targets.seeded_share``): a training playlist's title and seed songs in, its other songs out.

The model learns to continue a playlist as the continuation evaluation asks it to (genrec.evaluate.continuation):
a seeded draw per training playlist (the run's seed and the playlist's id) picks a :data:`SHARE` of the playlists,
and for each one of the RecSys Challenge categories with seeds (:data:`SEEDED_CATEGORIES`: the first 1, 5, 10, 25
or 100 songs, 25 or 100 at random, the first 5 or 10 without the title) that it is long enough for, with at least
:data:`genrec.evaluate.continuation.MIN_HELD_OUT` songs left, as the evaluation requires. Its seeds are the model's
extra input (genrec.model.seed_songs), its other songs the targets, pooled like a title's songs
(genrec.train.pooled_targets): one pooled input per playlist, since no two playlists share title and seeds.

The examples are corpus rows of their own, one per target song (the playlist's id, the title or '' without one, the
song's target text), beside each row's seeds: they go through the encoding, cross-fitted retrieval (a playlist in
fold f retrieves from the other folds, its own songs never among its inputs) and pooling that training rows go
through. The title-only rows stay as they are: the 0-seed category is still the title-only model's.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Callable

import numpy as np

from genrec.corpus.build import CorpusRow
from genrec.evaluate.baselines import TrainingPlaylists
from genrec.evaluate.continuation import CATEGORIES, MIN_HELD_OUT

SEEDED_CATEGORIES = tuple(c for c in CATEGORIES if c.seeds)
"""The challenge's categories with seeds; a playlist's category is drawn evenly from those it is long enough for."""


@dataclass
class SeededRows:
    """Continuation examples as corpus rows (one per target song) and each row's seed songs, in playlist order."""

    rows: list[CorpusRow]
    seeds: list[tuple[str, ...]]
    categories: dict[str, int]
    """Playlists drawn into each category (by name), for the training log."""


def seeded_rows(playlists: TrainingPlaylists, share: float, seed: int,
                target_text: Callable[[str], str]) -> SeededRows:
    """Continuation examples from a ``share`` of the training playlists (``target_text``: a song's ID tokens as
    corpus text); deterministic for a seed, and a playlist drawn at one share is drawn at every larger one."""
    out = SeededRows([], [], {})
    for pid, title, songs in zip(playlists.ids, playlists.titles, playlists.songs):
        rng = np.random.default_rng([seed, zlib.crc32(pid.encode("utf-8"))])
        if rng.random() >= share:
            continue
        fits = [c for c in SEEDED_CATEGORIES if len(songs) >= c.seeds + MIN_HELD_OUT]
        if not fits:
            continue
        category = fits[int(rng.integers(len(fits)))]
        chosen = (sorted(rng.choice(len(songs), category.seeds, replace=False).tolist()) if category.random
                  else range(category.seeds))
        seeds = tuple(songs[i] for i in chosen)
        given_title = title if category.title else ""
        out.categories[category.name] = out.categories.get(category.name, 0) + 1
        for song in songs:
            if song not in seeds:  # a song a playlist holds twice is never both seed and target
                out.rows.append(CorpusRow(pid, given_title, target_text(song), [song]))
                out.seeds.append(seeds)
    return out
