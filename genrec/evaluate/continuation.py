"""Playlist continuation: a title and seed songs in, the rest of the playlist out (the RecSys Challenge 2018 task).

Each held-out playlist is scored in every challenge category it is long enough for (:data:`CATEGORIES`: the title
alone; the title and its first 1, 5, 10, 25 or 100 songs, or 25 or 100 random ones; the first 5 or 10 without the
title). The seeds are given, the rest of the playlist is the ground truth (songs outside the catalogue kept: misses
for every system), and every system's list has the seeds removed before it is cut to ``n`` songs, so a seed is
never recommended back and never counted as a hit. A playlist enters a category when at least
:data:`MIN_HELD_OUT` songs are left after its seeds (the challenge also held categories to long-enough playlists).
Unlike the challenge, which put each playlist in one category, each playlist here is scored in every category it
fits, so the categories share playlists and the bootstrap resamples playlists for all categories at once.

Systems, all scored by genrec.evaluate.metrics:

- ``popularity``: the most popular training songs.
- ``title_knn``: the evaluated TF-IDF title kNN (tuned on validation); without a title, the popular songs.
- ``model``: the trained T5. A model trained with seeds (``targets.seeded_share``) reads each case's title (none in
  the no-title categories) and seeds; one trained without reads the title alone (without a title, the popular
  songs).
- ``cooccurrence_knn``: item-to-item kNN, a song's cosine similarity between its set of training playlists and
  each seed's, summed over the seeds (songs from playlists sharing the seeds).
- ``item2vec``: the catalogue songs nearest (cosine) to the mean of the seeds' song vectors (stage 0's item2vec
  vectors, ``data.song_vector_file``).
- ``walk``: one step of the co-occurrence walk (genrec.train.neighbour_targets.CooccurrenceWalk) from the seeds,
  mixed with the title's retrieved list (the model's retriever, or title kNN for a model without one); the title's
  share is tuned per category on the validation split.
- ``hybrid``: the model's ranking (title kNN's without a model) fused with the walk's
  (genrec.evaluate.baselines.tune_fusion: weight and constant tuned per category on the validation split).

Per category and overall (the mean of the categories' means, each category weighing the same, as the
challenge's equal-sized categories did; categories with fewer than :data:`MIN_CATEGORY_PLAYLISTS` test playlists are
left out of it): R-precision, NDCG@k, recommended-songs clicks, each with a 95% bootstrap
interval, the best seeded system minus the best baseline with a paired interval, and (with a model) per category the
model minus that category's best baseline with a paired interval.
"""

from __future__ import annotations

import logging
import zlib
from dataclasses import asdict, dataclass
from typing import Callable, NamedTuple, Sequence

import numpy as np
from scipy import sparse

from genrec.evaluate.baselines import PopularityBaseline, TitleKNN, fuse, tune_fusion
from genrec.evaluate.metrics import bootstrap_mean, ndcg_score, per_playlist, recommended_song_clicks
from genrec.evaluate.playlists import EvalPlaylists
from genrec.train.neighbour_targets import CooccurrenceWalk, stable_top

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Category:
    name: str
    seeds: int
    random: bool = False
    """Seeds drawn at random from the playlist (in playlist order) instead of its first songs."""
    title: bool = True


CATEGORIES = (Category("title only", 0), Category("title + first 1", 1), Category("title + first 5", 5),
              Category("first 5, no title", 5, title=False), Category("title + first 10", 10),
              Category("first 10, no title", 10, title=False), Category("title + first 25", 25),
              Category("title + random 25", 25, random=True), Category("title + first 100", 100),
              Category("title + random 100", 100, random=True))

MIN_HELD_OUT = 5
"""A playlist enters a category when at least this many songs are left after its seeds: with fewer, R-precision
and NDCG rest on one or two songs."""

MIN_CATEGORY_PLAYLISTS = 20
"""A category with fewer test playlists is reported but left out of the overall mean: a handful of playlists (KKBOX's
are short, few hold 100 songs) would weigh as much as hundreds and make the overall mostly noise."""

BASELINES = ("popularity", "title_knn", "cooccurrence_knn", "item2vec")
SEEDED_SYSTEMS = ("walk", "hybrid")
WALK_SONGS = 500
"""Songs kept from each list a seeded system ranks: enough for n songs after up to 100 seeds are removed."""


@dataclass
class Cases:
    """One category's playlists: the title (empty when the category hides it), the seeds and the held-out rest."""

    category: Category
    rows: list[int]
    """Index of each case's playlist among the evaluated playlists."""
    titles: list[str]
    seeds: list[list[str]]
    truths: list[list[str]]


def category_cases(playlists: EvalPlaylists, category: Category, seed: int) -> Cases:
    """The playlists long enough for ``category``, each split into its seeds and its held-out songs."""
    rows, titles, seeds, truths = [], [], [], []
    for row, (pid, title, songs) in enumerate(zip(playlists.ids, playlists.titles, playlists.truths)):
        if len(songs) < category.seeds + MIN_HELD_OUT:
            continue
        if category.random:
            # A stable draw per playlist and run seed, whatever else is evaluated.
            rng = np.random.default_rng([seed, zlib.crc32(pid.encode("utf-8"))])
            chosen = set(rng.choice(len(songs), category.seeds, replace=False).tolist())
        else:
            chosen = set(range(category.seeds))
        rows.append(row)
        titles.append(title if category.title else "")
        seeds.append([song for i, song in enumerate(songs) if i in chosen])
        truths.append([song for i, song in enumerate(songs) if i not in chosen])
    return Cases(category, rows, titles, seeds, truths)


def continued(ranking: Sequence[str], seeds: Sequence[str], fill: Sequence[str], n: int) -> list[str]:
    """A system's ranking as a continuation: the seeds removed, topped up from ``fill``, cut to ``n`` songs."""
    given = set(seeds)
    return [song for song in dict.fromkeys([*ranking, *fill]) if song not in given][:n]


def top_songs(scores: dict[str, float], rank: dict[str, int], n: int) -> list[str]:
    """The ``n`` best-scored songs, ties (and songs unknown to ``rank``) after by popularity rank."""
    last = len(rank)
    return sorted(scores, key=lambda song: (-scores[song], rank.get(song, last)))[:n]


class ItemCooccurrence:
    """Item-to-item kNN over the training playlists: a song scores the sum over the seeds of the cosine between its
    playlists and the seed's (co-occurrences / sqrt(playlists of each))."""

    def __init__(self, knn: TitleKNN):
        self.songs = knn.songs
        self.index = {song: i for i, song in enumerate(knn.songs)}
        self.members = (knn.members > 0).astype(np.float32).tocsr()  # playlists x songs
        self.norm = 1.0 / np.sqrt(np.maximum(np.asarray(self.members.sum(axis=0)).ravel(), 1.0))

    def seed_matrix(self, seeds: Sequence[Sequence[str]], weights: np.ndarray | None = None) -> sparse.csr_matrix:
        """Cases x songs: each case's known seeds (once each) at their ``weights`` entry (1 without)."""
        rows, cols = [], []
        for row, songs in enumerate(seeds):
            known = [self.index[s] for s in dict.fromkeys(songs) if s in self.index]
            rows += [row] * len(known)
            cols += known
        values = np.ones(len(cols), dtype=np.float32) if weights is None else weights[cols]
        return sparse.csr_matrix((values, (rows, cols)), shape=(len(seeds), len(self.songs)))

    def scored(self, seeds: Sequence[Sequence[str]], n: int) -> list[dict[str, float]]:
        given = self.seed_matrix(seeds, self.norm)
        scores = ((given @ self.members.T) @ self.members).multiply(self.norm[None, :]).tocsr()
        return [_top_of_row(scores.getrow(i), self.songs, n) for i in range(len(seeds))]


NEIGHBOUR_PLAYLISTS = 100
"""How many of the playlists most like the seeds vote (:class:`PlaylistNeighbours`), and ``NEIGHBOUR_SHARPNESS`` the
power of their similarity: chosen on the MPD slice's validation playlists, where this pair was at or near the best
of 25-400 playlists and powers 1-2 in every seeded category (docs/experiments/continuation.md)."""
NEIGHBOUR_SHARPNESS = 2.0


class PlaylistNeighbours:
    """Playlist-to-playlist kNN over the training playlists: the ``neighbours`` playlists most like the seeds (cosine
    between the seeds' set and each playlist's: shared songs / sqrt(the playlist's length)) vote for their songs with
    their similarity to the power ``sharpness``. Where the walk spreads a seed over every playlist holding it, this
    keeps the few playlists that hold many of the seeds together, which says more once several seeds are given."""

    def __init__(self, cooccurrence: ItemCooccurrence, neighbours: int = NEIGHBOUR_PLAYLISTS,
                 sharpness: float = NEIGHBOUR_SHARPNESS):
        self.cooccurrence, self.songs, self.members = cooccurrence, cooccurrence.songs, cooccurrence.members
        self.neighbours, self.sharpness = neighbours, sharpness
        self.norm = 1.0 / np.sqrt(np.maximum(np.asarray(self.members.sum(axis=1)).ravel(), 1.0))

    def scored(self, seeds: Sequence[Sequence[str]], n: int) -> list[dict[str, float]]:
        shared = (self.cooccurrence.seed_matrix(seeds) @ self.members.T).tocsr()  # cases x playlists
        weights_rows, weights_cols, weights = [], [], []
        for row in range(len(seeds)):
            start, end = shared.indptr[row], shared.indptr[row + 1]
            playlists = shared.indices[start:end]
            similarity = shared.data[start:end] * self.norm[playlists]
            top = stable_top(similarity, self.neighbours)
            weights_rows += [row] * len(top)
            weights_cols += playlists[top].tolist()
            weights += (similarity[top] ** self.sharpness).tolist()
        voted = sparse.csr_matrix((np.asarray(weights, dtype=np.float32), (weights_rows, weights_cols)),
                                  shape=(len(seeds), self.members.shape[0])) @ self.members
        return [_top_of_row(voted.getrow(i), self.songs, n) for i in range(len(seeds))]


class ItemVectors:
    """The catalogue songs nearest (cosine) to the mean of the seeds' normalised song vectors."""

    def __init__(self, ids: Sequence[str], vectors: np.ndarray, catalogue: set[str] | dict):
        keep = [i for i, song in enumerate(ids) if song in catalogue]
        self.songs = [ids[i] for i in keep]
        self.index = {song: i for i, song in enumerate(self.songs)}
        chosen = vectors[keep].astype(np.float32)
        self.vectors = chosen / np.maximum(np.linalg.norm(chosen, axis=1, keepdims=True), 1e-12)

    def scored(self, seeds: Sequence[Sequence[str]], n: int) -> list[dict[str, float]]:
        out = []
        for songs in seeds:
            known = [self.index[s] for s in songs if s in self.index]
            if not known:
                out.append({})
                continue
            cosine = self.vectors @ self.vectors[known].mean(axis=0)
            top = np.argpartition(-cosine, min(n, len(cosine) - 1))[:n]
            out.append({self.songs[i]: float(cosine[i]) for i in top})
        return out


def _top_of_row(row: sparse.csr_matrix, names: Sequence[str], n: int) -> dict[str, float]:
    order = np.argsort(-row.data, kind="stable")[:n]
    return {names[row.indices[i]]: float(row.data[i]) for i in order if row.data[i] > 0}


TitleScores = Callable[[Sequence[str], int], list[list[tuple[str, float]]]]
"""Titles -> each title's retrieved songs with their scores, best first (SongRetriever.scored, TitleKNN.scored)."""


def shares(scores: dict[str, float]) -> dict[str, float]:
    """Scores as shares of their total (an empty or all-zero dict stays as it is)."""
    total = sum(scores.values())
    return {song: value / total for song, value in scores.items()} if total else scores


class WalkParts(NamedTuple):
    """One case's parts of the seeded walk, each as shares of its total (empty when absent)."""

    title: dict[str, float]
    """The title's retrieved list."""
    walked: dict[str, float]
    """The seeds' co-occurrence walk."""
    cosines: dict[str, float]
    """The seeds' item co-occurrence cosines (:class:`ItemCooccurrence`)."""
    playlists: dict[str, float]
    """The votes of the playlists most like the seeds (:class:`PlaylistNeighbours`)."""


class SeededWalk:
    """The co-occurrence walk from the seeds, blended with item co-occurrence and the playlists most like the seeds,
    and mixed with the title's retrieved list. Per case, as shares of each part's total: the seeds' walk (each known
    seed starting at 1 / seeds; its scores divided by each song's training playlists to the power
    ``popularity_penalty``, the RP3beta walk of Paudel et al. 2016) times (1 - ``cooccurrence_share``) plus
    :class:`ItemCooccurrence`'s cosines times ``cooccurrence_share``; that times (1 - ``playlist_share``) plus
    :class:`PlaylistNeighbours`' votes times ``playlist_share``; all times (1 - ``title_share``), plus the title's
    retrieved scores times ``title_share``. Without seeds the title's list alone, without a title the seeds' part
    alone. A mix without ``playlist_share`` (a bundle exported before it) reads it as 0."""

    def __init__(self, walk: CooccurrenceWalk, title_scores: TitleScores, cooccurrence: ItemCooccurrence,
                 neighbours: PlaylistNeighbours | None = None):
        self.walk, self.title_scores, self.cooccurrence = walk, title_scores, cooccurrence
        self.neighbours = neighbours

    def parts(self, cases: Cases) -> list[WalkParts]:
        """Per case: the title's list, the seeds' walk, their co-occurrence cosines and their similar playlists'
        votes (the last empty without :attr:`neighbours`)."""
        titled = [i for i, t in enumerate(cases.titles) if t]
        retrieved = self.title_scores([cases.titles[i] for i in titled], WALK_SONGS) if titled else []
        title_part: list[dict[str, float]] = [{} for _ in cases.titles]
        for i, scored in zip(titled, retrieved):
            title_part[i] = shares(dict(scored))
        starts = []
        for songs in cases.seeds:
            known = [s for s in dict.fromkeys(songs) if s in self.walk.index]
            starts.append({s: 1.0 / len(known) for s in known})
        walked = self.walk(starts, WALK_SONGS) if starts else []
        cosines = [shares(c) for c in self.cooccurrence.scored(cases.seeds, WALK_SONGS)] if starts else []
        voted = ([shares(v) for v in self.neighbours.scored(cases.seeds, WALK_SONGS)] if starts and self.neighbours
                 else [{} for _ in starts])
        return [WalkParts(*part) for part in zip(title_part, walked, cosines, voted)]

    @staticmethod
    def mixed(part: WalkParts, mix: dict[str, float], popularity: dict[str, int]) -> dict[str, float]:
        """One case's scores from its :meth:`parts` and the mix (``title_share``, ``popularity_penalty``,
        ``cooccurrence_share``, ``playlist_share``)."""
        walked = part.walked
        beta = mix["popularity_penalty"]
        if beta and walked:
            walked = shares({song: share / max(popularity.get(song, 1), 1) ** beta for song, share in walked.items()})
        seeded = blend(walked, part.cosines, mix["cooccurrence_share"])
        seeded = blend(seeded, part.playlists, mix.get("playlist_share", 0.0))
        return blend(seeded, part.title, mix["title_share"])


def blend(first: dict[str, float], second: dict[str, float], share: float) -> dict[str, float]:
    """``(1 - share) * first + share * second``; either alone when the other is empty."""
    if not first or not second:
        return first or second
    out = {song: (1.0 - share) * value for song, value in first.items()}
    for song, value in second.items():
        out[song] = out.get(song, 0.0) + share * value
    return out


MIX_GRIDS = (("title_share", (0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0)), ("popularity_penalty", (0.0, 0.25, 0.5)),
             ("cooccurrence_share", (0.0, 0.25, 0.5, 0.75, 1.0)), ("playlist_share", (0.0, 0.25, 0.5, 0.75, 1.0)))
"""The seeded walk's parameters, tuned one after the other in this order (each grid's first value is where the
later ones start)."""


def tune_walk_mix(walk_lists: Callable[[dict], list[list[str]]], truths: Sequence[Sequence[str]],
                  score: Callable) -> tuple[dict, list[dict]]:
    """The seeded walk's mix (:data:`MIX_GRIDS`, one parameter after another) that ``score``s ``walk_lists(mix)``
    best against ``truths``, and every trial."""
    mix = {name: grid[0] for name, grid in MIX_GRIDS}
    trials = []
    for name, grid in MIX_GRIDS:
        scored = [{**mix, name: value, "score": score(walk_lists({**mix, name: value}), truths)} for value in grid]
        trials += scored
        # Ties (a share the category cannot use: no title, no seeds) go to the grid's first value.
        mix[name] = max(scored, key=lambda t: t["score"])[name]
    return mix, trials


def nearest_mix(rows: Sequence[dict], seeds: int, titled: bool) -> dict:
    """Of mixes tuned per category (each with the category's ``seeds``, ``title`` and ``random``), the one for the
    category nearest a request: same title use, nearest seed count (first-songs categories before random ones)."""
    same = [r for r in rows if r["title"] == titled and r["seeds"]] or [r for r in rows if r["seeds"]] or rows
    return min(same, key=lambda r: (abs(r["seeds"] - seeds), r.get("random", False), r["seeds"]))


def seeded_category_mixes(walk: "SeededWalk", val: EvalPlaylists, popularity: PopularityBaseline, n: int,
                          score: Callable, seed: int) -> list[dict]:
    """Per challenge category with seeds that ``val`` has playlists for: the walk's mix tuned on them
    (:func:`tune_walk_mix`), as ``{"seeds", "title", "random", **mix}`` rows for :func:`nearest_mix`."""
    out = []
    for category in CATEGORIES:
        cases = category_cases(val, category, seed)
        if not category.seeds or not cases.rows:
            continue
        parts = walk.parts(cases)
        fill = popularity.ranking[:n + category.seeds]

        def walk_lists(mix: dict) -> list[list[str]]:
            return [continued(top_songs(SeededWalk.mixed(part, mix, popularity.counts), popularity.rank, WALK_SONGS),
                              seeds, fill, n) for part, seeds in zip(parts, cases.seeds)]

        mix, _ = tune_walk_mix(walk_lists, cases.truths, score)
        out.append({"seeds": category.seeds, "title": category.title, "random": category.random, **mix})
        log.info("seeded copy lists: %s, %d validation playlists, mix %s", category.name, len(cases.rows), mix)
    return out


@dataclass
class ContinuationSystems:
    """What every system of the continuation evaluation reads."""

    popularity: PopularityBaseline
    knn: TitleKNN
    cooccurrence: ItemCooccurrence
    vectors: ItemVectors
    walk: SeededWalk
    model: dict[str, list[str]] | None
    """Each evaluated playlist's model ranking for its title, by playlist id (None: no model evaluated)."""
    seeded_model: Callable[[Cases], list[list[str]]] | None = None
    """A model that reads seeds: each case's ranking for its title and seeds (replaces ``model``)."""

    def rankings(self, cases: Cases, ids: Sequence[str], n: int, val: "tuple[Cases, Sequence[str]] | None" = None,
                 score: Callable | None = None) -> tuple[dict[str, list[list[str]]], dict]:
        """Every system's continuation of every case (seeds removed, ``n`` songs), and the walk's and the hybrid's
        parameters, tuned on ``val`` (validation cases and their playlists' ids) with ``score``."""
        # Deep enough to fill n songs after any case's seeds (of this category or its validation cases) are removed.
        fill = self.popularity.ranking[:n + max((len(s) for s in (*cases.seeds, *(val[0].seeds if val else ()))),
                                               default=0)]
        rank = self.popularity.rank

        def cont(lists: Sequence[Sequence[str]], which: Cases) -> list[list[str]]:
            return [continued(r, seeds, fill, n) for r, seeds in zip(lists, which.seeds)]

        def knn_lists(which: Cases) -> list[Sequence[str]]:
            """Title kNN's ranking per case; the popular songs without a title."""
            titled = [t for t in which.titles if t]
            knn = iter(self.knn.recommend(titled, len(fill)) if titled else [])
            return [next(knn) if title else fill for title in which.titles]

        def title_ranking(which: Cases, which_ids: Sequence[str]) -> list[list[str]]:
            """The model's ranking (title kNN's without a model); the popular songs without a title, unless the model
            reads seeds."""
            if self.seeded_model is not None:
                return cont(self.seeded_model(which), which)
            if self.model is None:
                return cont(knn_lists(which), which)
            return cont([self.model[which_ids[row]] if title else fill
                         for title, row in zip(which.titles, which.rows)], which)

        def walk_lists(which: Cases, mix: dict[str, float]) -> list[list[str]]:
            return cont([top_songs(SeededWalk.mixed(part, mix, self.popularity.counts), rank, WALK_SONGS)
                         for part in parts[id(which)]], which)

        parts = {id(cases): self.walk.parts(cases)}
        tuning: dict = {}
        mix = {name: grid[0] for name, grid in MIX_GRIDS}
        mix["title_share"] = 0.5
        fusion = {"weight": 0.5, "c": 60.0}
        if val is not None and val[0].rows:
            val_cases, val_ids = val
            parts[id(val_cases)] = self.walk.parts(val_cases)
            mix, trials = tune_walk_mix(lambda t: walk_lists(val_cases, t), val_cases.truths, score)
            fusion, _ = tune_fusion(title_ranking(val_cases, val_ids), {"walk": walk_lists(val_cases, mix)},
                                    val_cases.truths, n, score)
            tuning = {"walk": dict(mix), "hybrid": {k: float(v) if k != "partner" else v for k, v in fusion.items()},
                      "walk_trials": trials}

        out = {"popularity": cont([fill] * len(cases.rows), cases),
               "title_knn": cont(knn_lists(cases), cases),
               "cooccurrence_knn": cont([top_songs(s, rank, n + len(seeds)) for s, seeds in
                                         zip(self.cooccurrence.scored(cases.seeds, n + WALK_SONGS), cases.seeds)],
                                        cases),
               "item2vec": cont([top_songs(s, rank, n + len(seeds)) for s, seeds in
                                 zip(self.vectors.scored(cases.seeds, n + WALK_SONGS), cases.seeds)], cases)}
        if self.model is not None or self.seeded_model is not None:
            out["model"] = title_ranking(cases, ids)
        out["walk"] = walk_lists(cases, mix)
        out["hybrid"] = [fuse(m, w, n, fusion["weight"], fusion["c"])
                         for m, w in zip(title_ranking(cases, ids), out["walk"])]
        return out, tuning


def case_metrics(rankings: Sequence[Sequence[str]], truths: Sequence[Sequence[str]],
                 ks: Sequence[int]) -> dict[str, np.ndarray]:
    """Per case: R-precision, NDCG@k for ``ks`` and recommended-songs clicks (genrec.evaluate.metrics)."""
    names = ("r_precision", *[f"ndcg@{k}" for k in ks])
    if not truths:  # a category no playlist is long enough for
        return {name: np.array([]) for name in (*names, "clicks")}
    per = per_playlist(rankings, truths, ks)
    chosen = {name: per[name] for name in names}
    chosen["clicks"] = np.array([recommended_song_clicks(r, t) for r, t in zip(rankings, truths)])
    return chosen


def evaluate_continuation(systems: ContinuationSystems, test: EvalPlaylists, val: EvalPlaylists, n: int,
                          ks: Sequence[int], seed: int, categories: Sequence[Category] = CATEGORIES) -> dict:
    """Every system in every category on ``test`` (parameters tuned on ``val``): per category and overall, each
    metric's mean and 95% bootstrap interval, and the best seeded system minus the best baseline."""
    score = ndcg_score(max(ks))
    metrics = ["r_precision", f"ndcg@{max(ks)}", "clicks"]
    # values[system][metric]: (test playlists, categories), NaN where a playlist is not in a category.
    values: dict[str, dict[str, np.ndarray]] = {}
    described, tuning = [], {}
    for column, category in enumerate(categories):
        cases = category_cases(test, category, seed)
        val_cases = category_cases(val, category, seed)
        rankings, tuning[category.name] = systems.rankings(cases, test.ids, n, (val_cases, val.ids), score)
        described.append({**asdict(category), "playlists": len(cases.rows), "validation_playlists": len(val_cases.rows)})
        chosen = {k: v for k, v in tuning[category.name].items() if k != "walk_trials"}
        log.info("continuation: %s, %d test playlists, tuned %s", category.name, len(cases.rows), chosen)
        for system, ranked in rankings.items():
            per = case_metrics(ranked, cases.truths, ks)
            for metric in metrics:
                table = values.setdefault(system, {}).setdefault(metric, np.full((len(test.ids), len(categories)),
                                                                                 np.nan))
                table[cases.rows, column] = per[metric]
    counted = [c for c, d in enumerate(described) if d["playlists"] >= MIN_CATEGORY_PLAYLISTS]
    summary = {system: {metric: {**{category.name: bootstrap_mean(table[:, [c]], seed=seed)
                                    for c, category in enumerate(categories)},
                                 "overall": bootstrap_mean(table[:, counted], seed=seed)}
                        for metric, table in by_metric.items()}
               for system, by_metric in values.items()}
    top = f"ndcg@{max(ks)}"
    baseline = best_baseline(values, summary, top, "overall")
    best = max((s for s in SEEDED_SYSTEMS if s in values), key=lambda s: summary[s][top]["overall"]["mean"])
    difference = bootstrap_mean((values[best][top] - values[baseline][top])[:, counted], seed=seed)
    result = {"categories": described, "systems": summary, "tuning": tuning,
              "versus_best_baseline": {"system": best, "baseline": baseline, "metric": top,
                                       "relative": difference["mean"] / summary[baseline][top]["overall"]["mean"],
                                       **difference},
              "overall_categories": [categories[c].name for c in counted],
              "definition": "per category: mean over the playlists long enough for it; overall: mean of the means of "
                            f"the categories with at least {MIN_CATEGORY_PLAYLISTS} test playlists; 95% bootstrap "
                            "intervals resample playlists (2000 samples)"}
    if "model" in values:
        result["model_versus_best_baseline"] = model_versus_best_baseline(values, summary, categories, counted, top,
                                                                          seed)
    return result


def best_baseline(values: dict, summary: dict, metric: str, name: str) -> str:
    """The baseline with the highest mean ``metric`` in category ``name`` (or "overall")."""
    return max((s for s in BASELINES if s in values), key=lambda s: summary[s][metric][name]["mean"])


def model_versus_best_baseline(values: dict[str, dict[str, np.ndarray]], summary: dict, categories: Sequence[Category],
                               counted: Sequence[int], metric: str, seed: int) -> dict[str, dict]:
    """Per category (and overall, over the ``counted`` categories), the model minus the best baseline there (by
    mean) on the same playlists, with a paired 95% interval: whether the model at least matches a baseline."""
    out = {}
    for name, columns in [*((c.name, [i]) for i, c in enumerate(categories)), ("overall", list(counted))]:
        baseline = best_baseline(values, summary, metric, name)
        difference = bootstrap_mean((values["model"][metric] - values[baseline][metric])[:, columns], seed=seed)
        out[name] = {"baseline": baseline, "metric": metric, **difference}
    return out


def format_tables(result: dict) -> str:
    """Markdown: one table per metric, a row per category (and overall), a column per system, mean [95%]."""
    systems = list(result["systems"])
    names = [c["name"] for c in result["categories"]]
    sizes = {c["name"]: c["playlists"] for c in result["categories"]}

    def label(name: str) -> str:
        if name not in sizes:
            return "**overall**"
        counted = "" if name in result["overall_categories"] else ", not in the overall"
        return f"{name} ({sizes[name]}){counted}"

    lines = []
    for metric in next(iter(result["systems"].values())):
        lines += [f"{metric}, mean [95% interval]:", "",
                  "| category (test playlists) | " + " | ".join(systems) + " |",
                  "|---" * (len(systems) + 1) + "|"]
        digits = 2 if metric == "clicks" else 4
        for name in [*names, "overall"]:
            cells = []
            for system in systems:
                value = result["systems"][system][metric][name]
                cells.append(f"{value['mean']:.{digits}f} [{value['ci95'][0]:.{digits}f}, {value['ci95'][1]:.{digits}f}]")
            lines.append(f"| {label(name)} | " + " | ".join(cells) + " |")
        lines.append("")
    if "model_versus_best_baseline" in result:
        lines += ["model minus each category's best baseline, same playlists, mean [95% paired interval]:", "",
                  "| category (test playlists) | best baseline | model minus it |", "|---|---|---|"]
        for name, v in result["model_versus_best_baseline"].items():
            if sizes.get(name, 1):
                lines.append(f"| {label(name)} | {v['baseline']} | "
                             f"{v['mean']:+.4f} [{v['ci95'][0]:+.4f}, {v['ci95'][1]:+.4f}] |")
        lines.append("")
    v = result["versus_best_baseline"]
    lines.append(f"{v['system']} minus {v['baseline']} (the best baseline), {v['metric']} overall: "
                 f"{v['mean']:+.4f} [{v['ci95'][0]:+.4f}, {v['ci95'][1]:+.4f}] ({100 * v['relative']:+.1f}%)")
    return "\n".join(lines)


CONTINUATION_FILE = "continuation_metrics.json"
MODEL_RANKINGS_FILE = "continuation_model_rankings.json"


def continuation_stage(cfg, use_model: bool = True) -> dict:
    """evaluate_continuation.py: build every system from the run's artifacts, evaluate, write
    ``<run.output_dir>/continuation_metrics.json`` and print the tables."""
    from pathlib import Path

    from config import config_as_dict
    from genrec.artifacts import manifest_path, require_fresh, write_json, write_manifest
    from genrec.corpus.build import corpus_path, read_corpus, vocab_path
    from genrec.corpus.id_tokens import SemanticIdVocab
    from genrec.data.files import load_song_vectors
    from genrec.evaluate.baselines import TrainingPlaylists
    from genrec.evaluate.playlists import split_playlists
    from genrec.evaluate.systems import tuned_title_knn

    ecfg = cfg.eval
    train_path = corpus_path(cfg, "train")
    require_fresh(train_path, "prepare_corpus.py")
    require_fresh(vocab_path(cfg), "prepare_corpus.py")
    training = TrainingPlaylists.from_corpus(read_corpus(train_path))
    catalogue = SemanticIdVocab.load(vocab_path(cfg)).songs
    test = split_playlists(cfg, "test", catalogue).head(ecfg.max_playlists)
    val = split_playlists(cfg, "val", catalogue).head(ecfg.val_playlists)
    popularity = PopularityBaseline(training.songs)
    knn, _ = tuned_title_knn(cfg, training, val, popularity)
    song_vectors = load_song_vectors(cfg.data)
    inputs = [train_path, corpus_path(cfg, "test"), Path(cfg.data.song_vector_file)]
    model, seeded_model, title_scores = None, None, knn.scored
    if use_model:
        model, seeded_model, retriever = _model_rankings(cfg, test, val, popularity)
        title_scores = retriever.scored if retriever is not None else knn.scored
        from genrec.model.t5 import tiger_final_dir
        inputs.append(manifest_path(tiger_final_dir(cfg)))
    cooccurrence = ItemCooccurrence(knn)
    systems = ContinuationSystems(popularity, knn, cooccurrence,
                                  ItemVectors(song_vectors.ids, song_vectors.vectors, catalogue),
                                  SeededWalk(CooccurrenceWalk(knn), title_scores, cooccurrence,
                                             PlaylistNeighbours(cooccurrence)), model, seeded_model)
    result = evaluate_continuation(systems, test, val, ecfg.num_songs, ecfg.k_values, cfg.run.seed)
    result["model"] = use_model
    result["data"] = {"source": test.source, **test.report, "validation_playlists": len(val.ids),
                      "training_playlists": len(training.titles), "catalogue_songs": len(catalogue)}
    path = Path(cfg.run.output_dir) / CONTINUATION_FILE
    write_json(path, {**result, "config": config_as_dict(cfg)})
    write_manifest(path, inputs, config_as_dict(cfg, ["data", "eval", "decode", "run"]))
    print(format_tables(result))
    print(f"\n{len(test.ids)} test playlists of {test.source}; written to {path}")
    return result


def query_key(title: str, seeds: Sequence[str]) -> str:
    """A (title, seeds) model query's key in ``continuation_model_rankings.json`` (a title-only query: the title)."""
    import json
    return json.dumps([title, list(seeds)], ensure_ascii=False) if seeds else title


def _model_rankings(cfg, test: EvalPlaylists, val: EvalPlaylists, popularity: PopularityBaseline):
    """The trained model's rankings and its retriever (None without one): for a title-only model, each playlist's
    title's ranking by playlist id (each distinct title decoded once; no seeded model); for a model that reads
    seeds, no title rankings and the seeded model (each case of every category, test and validation, decoded once
    with its title and seeds). The rankings are kept in ``continuation_model_rankings.json`` and reused while the
    model, the corpus and the decoding settings are unchanged: decoding is most of the time."""
    import json
    from pathlib import Path

    from config import config_as_dict
    from genrec.artifacts import manifest_path, require_fresh, write_json, write_manifest
    from genrec.corpus.build import corpus_path, vocab_path
    from genrec.decode.decoding import DecodingSettings, decode
    from genrec.errors import ArtifactError
    from genrec.model.t5 import load_tiger, resolve_device, tiger_final_dir

    bundle = load_tiger(tiger_final_dir(cfg), resolve_device(cfg.run.device), vocab_path(cfg))
    settings = DecodingSettings.from_config(cfg.decode, cfg.eval.num_songs)
    cache = Path(cfg.run.output_dir) / MODEL_RANKINGS_FILE
    settings_record = config_as_dict(cfg, ["decode", "eval"])
    by_title: dict[str, list[str]] = {}
    try:
        manifest = require_fresh(cache, "evaluate_continuation.py")
        if manifest.get("config") == settings_record:
            by_title = json.loads(cache.read_text(encoding="utf-8"))
    except ArtifactError:
        pass
    if bundle.seed_songs:
        every = [category_cases(playlists, category, cfg.run.seed) for playlists in (test, val) for category in CATEGORIES]
        queries = {(title, tuple(seeds)) for cases in every for title, seeds in zip(cases.titles, cases.seeds)}
    else:
        queries = {(title, ()) for title in (*test.titles, *val.titles)}
    # Fewest seeds first: a batch decodes as many extra beams as its longest seed list.
    missing = sorted((q for q in queries if query_key(*q) not in by_title), key=lambda q: (len(q[1]), q))
    if missing:
        decoded = decode(bundle, [title for title, _ in missing], settings, True, popularity.counts, progress=True,
                         seeds=[list(seeds) for _, seeds in missing] if bundle.seed_songs else None)
        by_title.update({query_key(*q): [song for song, _ in d.songs] for q, d in zip(missing, decoded)})
        write_json(cache, by_title)
        write_manifest(cache, [manifest_path(tiger_final_dir(cfg)), corpus_path(cfg, "test"), corpus_path(cfg, "val")],
                       settings_record)
    if bundle.seed_songs:
        return None, lambda cases: [by_title[query_key(t, s)] for t, s in zip(cases.titles, cases.seeds)], bundle.retriever
    return ({pid: by_title[title] for pid, title in zip([*test.ids, *val.ids], [*test.titles, *val.titles])}, None,
            bundle.retriever)

