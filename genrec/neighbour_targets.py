"""Neighbour-smoothed targets: each training title also learns the songs of similarly titled playlists.

Pooled targets (genrec.pooled_targets) teach a title the songs of its own playlists. A model that
fitted them perfectly would rank a title's songs by their count among the training playlists with
that title, popularity after. On MPD that ranking scores what the trained model scores (NDCG@100
0.074 against the model's 0.0745; ``bench/target_ceiling.py``) and far below title kNN (0.091), which
also votes with the playlists of the most similar titles: the model fits its targets, the targets are
the limit. With ``tiger.neighbour_weight = beta`` a training title's score for a song becomes

    (its count among the title's own playlists) + beta * (title kNN's vote from the k most similar
    training playlists with another normalised title: similarity ** alpha / length ** length_norm each)

with the kNN of the ``title_knn`` baseline (same fit, parameters tuned on the validation playlists
as evaluate_tiger.py tunes them), and the top ``tiger.neighbour_songs`` neighbour songs kept per title. ``tiger.target_sharpening`` then
applies to the whole score. A title keeps its weight in the loss (its own pair count): the
neighbours change what it is taught, not how much.

Neighbours never include the title's own playlists, so the weights do not count them twice; at test
time nothing is retrieved: the model carries what it learnt.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Sequence

import numpy as np
from scipy import sparse

from .baselines import PopularityBaseline, TitleKNN, TrainingPlaylists, normalise_title

log = logging.getLogger(__name__)


class NeighbourVotes:
    """Title kNN's votes for a title's songs from playlists of other (normalised) titles."""

    def __init__(self, knn: TitleKNN, playlists: TrainingPlaylists):
        self.knn = knn
        self.playlist_titles = np.array([normalise_title(t) for t in playlists.titles], dtype=object)
        self.title_counts = Counter(self.playlist_titles.tolist())

    def __call__(self, titles: Sequence[str], songs: int) -> list[dict[str, float]]:
        """Per title: its top ``songs`` songs by vote, song id -> vote."""
        if not titles:
            return []
        names = [normalise_title(t) for t in titles]
        k = self.knn.params.k
        indices, sims = self.knn.neighbours(list(titles), k + max(self.title_counts[n] for n in names))
        other = self.playlist_titles[indices] != np.array(names, dtype=object)[:, None]
        votes = self.knn.votes(indices, sims, keep=other & (np.cumsum(other, axis=1) <= k))
        return [self._top(votes.getrow(i), songs) for i in range(len(titles))]

    def _top(self, row: sparse.csr_matrix, songs: int) -> dict[str, float]:
        order = np.argsort(-row.data, kind="stable")[:songs]
        return {self.knn.songs[row.indices[i]]: float(row.data[i]) for i in order if row.data[i] > 0}


def own_counts(playlists: TrainingPlaylists, titles: Sequence[str]) -> list[Counter]:
    """Per title: how many training playlists with its normalised title hold each song."""
    by_title: dict[str, Counter] = {}
    for title, songs in zip(playlists.titles, playlists.songs):
        by_title.setdefault(normalise_title(title), Counter()).update(set(songs))
    return [by_title.get(normalise_title(t), Counter()) for t in titles]


def smoothed_scores(own: Counter, votes: dict[str, float], weight: float) -> dict[str, float]:
    """A title's target score per song: own count + weight * neighbour vote (weight 0: own songs only)."""
    scores = {song: float(count) for song, count in own.items()}
    for song, vote in votes.items() if weight else ():
        scores[song] = scores.get(song, 0.0) + weight * vote
    return scores


def target_ranking(scores: dict[str, float], popularity: PopularityBaseline, n: int) -> list[str]:
    """What a model that fitted these target scores perfectly would recommend: top ``n`` by score, popularity after."""
    top = sorted(scores, key=lambda s: (-scores[s], popularity.rank[s]))[:n]
    taken = set(top)
    return top + [s for s in popularity.ranking[:2 * n] if s not in taken][:n - len(top)]


def neighbour_paths(votes: NeighbourVotes, title_ids: dict[str, list[int]], song_paths: dict[str, tuple[int, ...]],
                    weight: float, songs: int) -> dict[tuple[int, ...], dict[tuple[int, ...], float]]:
    """What pool_examples adds to each title's counts: title token ids -> {ID path: weight * vote}.

    ``title_ids`` maps each training title to its token ids; titles with equal ids (an equal folded
    title) are pooled as one, so one of them stands for all.
    """
    representative: dict[tuple[int, ...], str] = {}
    for title in sorted(title_ids):
        representative.setdefault(tuple(title_ids[title]), title)
    keys = sorted(representative)
    out: dict[tuple[int, ...], dict[tuple[int, ...], float]] = {}
    for key, ranked in zip(keys, votes([representative[k] for k in keys], songs)):
        paths: dict[tuple[int, ...], float] = {}
        for song, vote in ranked.items():
            path = song_paths[song]
            paths[path] = paths.get(path, 0.0) + weight * vote
        out[key] = paths
    log.info("neighbour targets: %d titles, up to %d neighbour songs each, weight %g, kNN %s",
             len(out), songs, weight, votes.knn.params)
    return out
