"""Neighbour-smoothed targets: each training title also learns the songs of similarly titled playlists.

Pooled targets (genrec.train.pooled_targets) teach a title the songs of its own playlists. A model that
fitted them perfectly would rank a title's songs by their count among the training playlists with
that title, popularity after. On MPD that ranking scores about what the trained model scores, and
below title kNN, which also votes with the playlists of the most similar titles
(``bench/target_ceiling.py``, figures in docs/results.md): the model fits its targets, the targets
are the limit. With ``targets.neighbour_weight = beta`` a training title's score for a song becomes

    (its count among the title's own playlists) + beta * (title kNN's vote from the k most similar
    training playlists with another normalised title: similarity ** alpha / length ** length_norm each)

with the kNN of the ``title_knn`` baseline (same fit, parameters tuned on the validation playlists
as evaluate_tiger.py tunes them), and the top :data:`NEIGHBOUR_SONGS` neighbour songs kept per title. ``targets.sharpening``
then applies to the whole score. A title keeps its weight in the loss (its own pair count): the
neighbours change what it is taught, not how much.

Neighbours never include the title's own playlists, so the weights do not count them twice; at test
time nothing is retrieved: the model carries what it learnt.

With ``targets.cooccurrence_weight = gamma`` the title's scores (own counts + beta * votes, total Z)
then take one step of a song -> playlist -> song random walk over the training playlists
(:class:`CooccurrenceWalk`; the P^3 walk of Cooper et al. 2014): each scored song spreads its score
evenly over the training playlists that hold it, and each playlist splits what it got evenly among
its songs (what returns to the song it came from is dropped). A song's walk score thus grows with
how many of the title's songs share playlists with it, short playlists counting more than long
ones. The walk's top :data:`NEIGHBOUR_SONGS` songs are added at ``gamma * Z * (their share of the walk)``, so gamma is the walk's weight against the title's own
scores. Titles then also learn the songs their songs' playlists agree on, which neither the
title's own playlists nor title kNN lists (on the MPD subset this lifts the target ceiling above
title kNN on both splits; docs/experiments/mpd.md).
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Sequence

import numpy as np
from scipy import sparse

from genrec.evaluate.baselines import (CELL_COPIES, VOTES_PER_NEIGHBOUR, PopularityBaseline, TitleKNN,
                                      TrainingPlaylists, block_rows, normalise_title)

log = logging.getLogger(__name__)

NEIGHBOUR_SONGS = 200
"""Songs kept per title from the neighbour votes and from the co-occurrence walk (targets and retrieval)."""


class NeighbourVotes:
    """Title kNN's votes for a title's songs from playlists of other (normalised) titles."""

    def __init__(self, knn: TitleKNN, playlists: TrainingPlaylists):
        self.knn = knn
        self.playlists = playlists
        self.playlist_titles = np.array([normalise_title(t) for t in playlists.titles], dtype=object)
        self.title_counts = Counter(self.playlist_titles.tolist())

    def __call__(self, titles: Sequence[str], songs: int) -> list[dict[str, float]]:
        """Per title: its top ``songs`` songs by vote, song id -> vote."""
        if not titles:
            return []
        names = [normalise_title(t) for t in titles]
        k = self.knn.params.k
        # Every block takes the same number of neighbours, so a title's votes do not depend on its block; blocks
        # keep the (titles x neighbours) arrays small when a common title has thousands of playlists.
        width = k + max(self.title_counts[n] for n in names)
        batch = block_rows(len(titles), 2 * width)
        out = []
        for start in range(0, len(titles), batch):
            part = names[start:start + batch]
            indices, sims = self.knn.neighbours(list(titles[start:start + batch]), width)
            other = self.playlist_titles[indices] != np.array(part, dtype=object)[:, None]
            votes = self.knn.votes(indices, sims, keep=other & (np.cumsum(other, axis=1) <= k))
            out.extend(top_votes(votes.getrow(i), self.knn.songs, songs) for i in range(len(part)))
        return out


def top_votes(row: sparse.csr_matrix, names: Sequence[str], songs: int) -> dict[str, float]:
    """One title's top ``songs`` positive votes from a row of :meth:`TitleKNN.votes`: song id -> vote."""
    order = np.argsort(-row.data, kind="stable")[:songs]
    return {names[row.indices[i]]: float(row.data[i]) for i in order if row.data[i] > 0}


WALK_PLAYLISTS_PER_SONG = 1000
"""A song spreads its score over at most this many of its playlists: a uniform sample of them, drawn once (seeded),
an unbiased estimate of the step over all of them. A title's walk then costs at most its songs x this x playlist
length, whatever the data's size; over every playlist, the popular songs of a million playlists (each in tens of
thousands) made the walk's cost grow with the square of the data (docs/scaling.md). It is above every song's count
in the shipped datasets, where the walk is the exact one."""


def sample_holders(song_playlists: sparse.csr_matrix, most: int, seed: int = 0) -> sparse.csr_matrix:
    """``song_playlists`` (songs x playlists) with each row cut to a uniform sample of ``most`` of its entries."""
    counts = np.diff(song_playlists.indptr)
    heavy = np.flatnonzero(counts > most)
    if not len(heavy):
        return song_playlists
    keep = np.ones(song_playlists.nnz, dtype=bool)
    rng = np.random.default_rng(seed)
    for song in heavy:
        start, held = song_playlists.indptr[song], counts[song]
        keep[start + rng.choice(held, size=held - most, replace=False)] = False
    rows = np.repeat(np.arange(song_playlists.shape[0]), counts)[keep]
    return sparse.csr_matrix((song_playlists.data[keep], (rows, song_playlists.indices[keep])),
                             shape=song_playlists.shape)


def stable_top(values: np.ndarray, k: int) -> np.ndarray:
    """``np.argsort(-values, kind="stable")[:k]`` without sorting every value: a walk's row holds most of the
    catalogue, and only its top ``k`` are kept. The candidates are every value at least the k-th largest (ties
    included, in index order), so the stable order among them is the full sort's."""
    if k >= len(values):
        return np.argsort(-values, kind="stable")[:k]
    kth = -np.partition(-values, k - 1)[k - 1]
    candidates = np.flatnonzero(values >= kth)
    return candidates[np.argsort(-values[candidates], kind="stable")][:k]


class CooccurrenceWalk:
    """One step of a song -> playlist -> song walk over title kNN's training playlists (see the module docstring)."""

    def __init__(self, knn: TitleKNN):
        self.songs = knn.songs
        self.index = {song: i for i, song in enumerate(knn.songs)}
        members = (knn.members > 0).astype(np.float32).tocsr()  # playlists x songs
        held = sample_holders(members.T.tocsr(), WALK_PLAYLISTS_PER_SONG)  # songs x the playlists they spread over
        holders = np.maximum(np.asarray(held.sum(axis=1)).ravel(), 1.0)
        lengths = np.maximum(np.asarray(members.sum(axis=1)).ravel(), 1.0)
        self.spread = (sparse.diags(1.0 / holders) @ held).tocsr()  # song -> its playlists
        self.split = (sparse.diags(1.0 / lengths) @ members).tocsr()  # playlist -> its songs
        # The share of a song's score that the walk brings straight back to it.
        self.returns = np.asarray(self.spread.multiply(self.split.T).sum(axis=1)).ravel()

    def __call__(self, scores: Sequence[dict[str, float]], songs: int, batch: int = 256) -> list[dict[str, float]]:
        """Per title: its top ``songs`` songs by walk score, each as its share of the title's whole walk score.
        At most ``batch`` titles at a time, fewer where a block of their walk would pass DENSE_BLOCK_BYTES: a title's
        row is held as titles x training playlists after the first step and several times as titles x songs after
        the second (dense at worst)."""
        batch = block_rows(batch, CELL_COPIES * sum(self.split.shape))
        out = []
        for start in range(0, len(scores), batch):
            part = scores[start:start + batch]
            rows = [i for i, row in enumerate(part) for _ in row]
            cols = [self.index[song] for row in part for song in row]
            values = [value for row in part for value in row.values()]
            given = sparse.csr_matrix((np.asarray(values, dtype=np.float32), (rows, cols)),
                                      shape=(len(part), len(self.songs)))
            # What the walk brings straight back to a song is its own score again, not the company it keeps.
            walked = ((given @ self.spread) @ self.split - given.multiply(self.returns[None, :])).tocsr()
            out.extend(self._top(walked.getrow(i), songs) for i in range(len(part)))
        return out

    def _top(self, row: sparse.csr_matrix, songs: int) -> dict[str, float]:
        data = np.clip(row.data, 0.0, None)
        total = data.sum()
        order = stable_top(data, songs)
        return {self.songs[row.indices[i]]: float(data[i] / total) for i in order if data[i] > 0}


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


def walked_scores(scores: dict[str, float], walk_shares: dict[str, float], weight: float) -> dict[str, float]:
    """A title's scores plus ``weight`` times their total, spread over the walk's songs by their shares."""
    total = sum(scores.values())
    out = dict(scores)
    for song, share in walk_shares.items() if weight else ():  # weight 0 adds no zero-scored songs
        out[song] = out.get(song, 0.0) + weight * total * share
    return out


def target_ranking(scores: dict[str, float], popularity: PopularityBaseline, n: int) -> list[str]:
    """What a model that fitted these target scores perfectly would recommend: top ``n`` by score, popularity after."""
    top = sorted(scores, key=lambda s: (-scores[s], popularity.rank[s]))[:n]
    taken = set(top)
    return top + [s for s in popularity.ranking[:2 * n] if s not in taken][:n - len(top)]


def title_scores(votes: NeighbourVotes, titles: Sequence[str], own: Sequence[Counter], weight: float, songs: int,
                 walk: CooccurrenceWalk | None = None, walk_weight: float = 0.0) -> list[dict[str, float]]:
    """Each title's target score per song: its own playlists' counts (``own``, from :func:`own_counts`), neighbour
    votes, then the co-occurrence walk."""
    neighbour_votes = votes(titles, songs) if weight else [{} for _ in titles]
    scores = [smoothed_scores(o, v, weight) for o, v in zip(own, neighbour_votes)]
    if walk is None or not walk_weight:
        return scores
    return [walked_scores(s, shares, walk_weight) for s, shares in zip(scores, walk(scores, songs))]


def walked_knn(knn: TitleKNN, walk: CooccurrenceWalk, titles: Sequence[str], weight: float, songs: int,
               n: int) -> list[list[str]]:
    """Title kNN's ranking after one step of the co-occurrence walk: each title's top ``songs`` kNN votes plus
    ``weight`` times their total spread over the walk's top ``songs`` songs; top ``n``, popularity after."""
    return [target_ranking(scores, knn.popularity, n) for scores in walked_knn_scores(knn, walk, titles, weight, songs)]


def walked_knn_scores(knn: TitleKNN, walk: CooccurrenceWalk, titles: Sequence[str], weight: float,
                      songs: int) -> list[dict[str, float]]:
    """Per title, the scores :func:`walked_knn` ranks by: song id -> kNN vote plus its walked share."""
    if not titles:
        return []
    distinct = list(dict.fromkeys(titles))
    if len(distinct) < len(titles):  # a repeated title's walk is the same: walked once, then copied
        found = dict(zip(distinct, walked_knn_scores(knn, walk, distinct, weight, songs)))
        return [dict(found[title]) for title in titles]
    indices, sims = knn.neighbours(list(titles), knn.params.k)
    scores = []
    batch = block_rows(len(titles), knn.params.k * VOTES_PER_NEIGHBOUR)
    for start in range(0, len(titles), batch):
        votes = knn.votes(indices[start:start + batch], sims[start:start + batch])
        scores.extend(top_votes(votes.getrow(i), knn.songs, songs) for i in range(votes.shape[0]))
    return [walked_scores(s, shares, weight) for s, shares in zip(scores, walk(scores, songs))]


def neighbour_paths(votes: NeighbourVotes, title_ids: dict[str, list[int]], song_paths: dict[str, tuple[int, ...]],
                    weight: float, songs: int, walk: CooccurrenceWalk | None = None,
                    walk_weight: float = 0.0) -> dict[tuple[int, ...], dict[tuple[int, ...], float]]:
    """What pool_examples adds to each title's own counts: title token ids -> {ID path: added score}.

    ``title_ids`` maps each training title to its token ids; titles with equal ids (an equal folded
    title) are pooled as one, so one of them stands for all.
    """
    representative: dict[tuple[int, ...], str] = {}
    for title in sorted(title_ids):
        representative.setdefault(tuple(title_ids[title]), title)
    keys = sorted(representative)
    titles = [representative[k] for k in keys]
    out: dict[tuple[int, ...], dict[tuple[int, ...], float]] = {}
    own = own_counts(votes.playlists, titles)
    for key, counts, scores in zip(keys, own, title_scores(votes, titles, own, weight, songs, walk, walk_weight)):
        paths: dict[tuple[int, ...], float] = {}
        for song, score in scores.items():
            added = score - counts.get(song, 0)  # pool_examples counts the own pairs itself
            if added > 0:
                paths[song_paths[song]] = paths.get(song_paths[song], 0.0) + added
        out[key] = paths
    log.info("neighbour targets: %d titles, up to %d neighbour and %d walked songs each, weights %g and %g, kNN %s",
             len(out), songs if weight else 0, songs if walk_weight else 0, weight, walk_weight, votes.knn.params)
    return out
