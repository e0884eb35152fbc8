"""The systems the model has to beat, and the hybrid that fuses the model with one of them.

- :class:`PopularityBaseline`: the songs in most training playlists, the same list for every title.
- :class:`TitleKNN`: TF-IDF over the normalised title's character n-grams and words; a song's score
  is the sum over the ``k`` most similar training playlists that contain it of
  ``similarity ** alpha / len(playlist) ** length_norm``; popularity fills the rest (and breaks ties).
  ``k``, ``alpha`` and ``length_norm`` are chosen on the validation split (:func:`tune_knn`), never test.
  With ``vector_weight`` w (and a title-vector function), the similarity is ``(1 - w) * TF-IDF cosine
  + w * the title vectors' cosine``, so "gym" also finds "workout" (the evaluated baseline keeps w = 0,
  TF-IDF alone; a retrieving model's list may use it, ``retrieval.vector_weight``).
- :func:`fuse`: weighted reciprocal rank fusion of two rankings (``weight`` on the first,
  ``1 - weight`` on the second, ``1 / (c + rank)`` each); :func:`tune_fusion` picks the partner
  ranking fused with the model's (title kNN's, or the list a retrieval model reads), ``weight`` and
  ``c`` on the validation split. The evaluation saves the chosen parameters in ``hybrid.json``
  (``{"title_knn": {"k", "alpha", "length_norm"}, "fusion": {"partner", "weight", "c"}}``; files
  without ``partner`` fuse with title kNN); :func:`load_hybrid` gives the generator the same hybrid.
"""

from __future__ import annotations

import copy
import itertools
import json
import logging
import re
import unicodedata
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Sequence

import numpy as np
from scipy import sparse
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.preprocessing import normalize

from config import Config

from genrec.artifacts import require_fresh, write_json, write_manifest
from config import config_as_dict
from genrec.errors import ArtifactError, ConfigError
from genrec.evaluate.metrics import ndcg_score

if TYPE_CHECKING:  # a type only: the generator imports this module, and the corpus module imports pandas
    from genrec.corpus.build import CorpusRow

log = logging.getLogger(__name__)

_NOT_WORD = re.compile(r"[^\w]+|_")
_SPACES = re.compile(r"\s+")

KNN_GRID = {"k": (10, 25, 50, 100, 250), "alpha": (1.0, 2.0, 4.0), "length_norm": (0.0, 0.5)}
HYBRID_FILE = "hybrid.json"
DENSE_BLOCK_BYTES = 256 * 2**20
"""The most memory a block of (titles x training playlists) float64 similarities, or of title votes, may take:
titles are scored this many rows at a time, so memory stays flat however many playlists there are (rows are
scored independently, so the block size changes no result)."""
FUSION_GRID = {"weight": tuple(round(w, 2) for w in np.linspace(0, 1, 11)), "c": (10.0, 60.0)}


def normalise_title(title: str) -> str:
    """Lowercase, NFKC, punctuation and emoji replaced by spaces: "Chill Vibes!! 🌊" -> "chill vibes"."""
    text = unicodedata.normalize("NFKC", title).lower()
    return _SPACES.sub(" ", _NOT_WORD.sub(" ", text)).strip()


def char_text(title: str) -> str:
    """What the character n-grams see: the normalised title, or the lowercased title when nothing
    is left (an emoji-only title still matches other titles made of the same emoji)."""
    return normalise_title(title) or _SPACES.sub(" ", title.lower()).strip()


@dataclass
class TrainingPlaylists:
    titles: list[str]
    songs: list[list[str]]
    ids: list[str]

    @classmethod
    def from_corpus(cls, rows: Iterable[CorpusRow]) -> "TrainingPlaylists":
        """Group corpus rows by playlist (single mode has one row per song), keeping song order. ``rows`` is read
        once, so it may be a file's rows one at a time (:func:`read_training_playlists`)."""
        titles: dict[str, str] = {}
        songs: dict[str, dict[str, None]] = defaultdict(dict)
        shared: dict[str, str] = {}  # one string object per song id, however many playlists name it
        for row in rows:
            titles.setdefault(row.playlist_id, row.input_text)
            songs[row.playlist_id].update(dict.fromkeys(shared.setdefault(s, s) for s in row.song_ids))
        return cls(list(titles.values()), [list(songs.pop(pid)) for pid in titles], list(titles))

    def subset(self, keep: Sequence[int]) -> "TrainingPlaylists":
        return TrainingPlaylists([self.titles[i] for i in keep], [self.songs[i] for i in keep],
                                 [self.ids[i] for i in keep])


def read_training_playlists(path: str | Path) -> TrainingPlaylists:
    """The playlists of a corpus file (train.tsv), read row by row: never every row in memory at once."""
    from genrec.corpus.build import iter_corpus  # here: the corpus module imports pandas, which serving never needs

    return TrainingPlaylists.from_corpus(iter_corpus(path))


class PopularityBaseline:
    """The most frequent training songs (in most playlists), ties broken by song id for stability."""

    def __init__(self, playlists: Sequence[Sequence[str]]):
        counts = Counter(song for songs in playlists for song in set(songs))
        self.counts = dict(counts)
        self.ranking = sorted(counts, key=lambda s: (-counts[s], s))
        self.rank = {song: i for i, song in enumerate(self.ranking)}

    def recommend(self, titles: Sequence[str], n: int) -> list[list[str]]:
        return [self.ranking[:n] for _ in titles]

    def top(self, n: int) -> set[str]:
        return set(self.ranking[:n])


@dataclass
class KnnParams:
    k: int = 50
    alpha: float = 1.0
    length_norm: float = 0.0
    vector_weight: float = 0.0


TitleVectors = Callable[[Sequence[str]], np.ndarray]
"""Titles -> one L2-normalised vector per title (rows), e.g. genrec.model.title_vectors.TitleVectorEncoder.array."""


class TitleKNN:
    """Songs of the training playlists whose titles are most similar (see the module docstring)."""

    def __init__(self, params: KnnParams | None = None, title_vectors: TitleVectors | None = None):
        self.params = params or KnnParams()
        if self.params.vector_weight and title_vectors is None:
            raise ConfigError(f"title kNN with vector_weight={self.params.vector_weight:g} needs title vectors "
                              "(network.title_encoder)")
        self.title_vectors = title_vectors if self.params.vector_weight else None

    def fit(self, titles: Sequence[str], playlists: Sequence[Sequence[str]],
            popularity: PopularityBaseline | None = None) -> "TitleKNN":
        self.popularity = popularity or PopularityBaseline(playlists)
        self.songs = list(self.popularity.ranking)
        index = {song: i for i, song in enumerate(self.songs)}
        self.chars = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), sublinear_tf=True, min_df=1)
        self.words = TfidfVectorizer(analyzer="word", ngram_range=(1, 2), sublinear_tf=True, min_df=1,
                                     token_pattern=r"\S+")
        self.chars.fit([char_text(t) for t in titles])
        words = [normalise_title(t) for t in titles]
        self.has_words = any(words)
        if self.has_words:
            self.words.fit(words)
        # Playlists that share a title share its row: products run over the distinct titles (the MPD has about one
        # per ten playlists), then each playlist takes its title's column. A duplicate's column is computed exactly
        # as its own row's would be, so neighbours and their ties are those of the product over every playlist.
        distinct = list(dict.fromkeys(titles))
        position = {title: i for i, title in enumerate(distinct)}
        self.title_of = np.fromiter((position[t] for t in titles), dtype=np.int64, count=len(titles))
        self.matrix_t = self._vectorise(distinct).T.tocsr()  # what every product with the training titles reads
        self.vectors = self.title_vectors(distinct) if self.title_vectors else None
        sizes = np.fromiter(map(len, playlists), dtype=np.int64, count=len(playlists))
        rows = np.repeat(np.arange(len(playlists)), sizes)
        cols = np.fromiter((index[s] for songs in playlists for s in songs), dtype=np.int64, count=int(sizes.sum()))
        self.members = sparse.csr_matrix((np.ones(len(cols), dtype=np.float32), (rows, cols)),
                                         shape=(len(playlists), len(self.songs)))
        self.lengths = np.maximum(np.asarray(self.members.sum(axis=1)).ravel(), 1.0)
        # Tie-break and fill by popularity: a tiny bonus that never outweighs a neighbour's vote.
        self.prior = 1e-6 * (1.0 - np.arange(len(self.songs)) / max(len(self.songs), 1))
        return self

    def _vectorise(self, titles: Sequence[str]) -> sparse.csr_matrix:
        parts = [normalize(self.chars.transform([char_text(t) for t in titles]))]
        if self.has_words:
            parts.append(normalize(self.words.transform([normalise_title(t) for t in titles])))
        return normalize(sparse.hstack(parts).tocsr())

    def neighbours(self, titles: Sequence[str], k: int, batch: int = 1024) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` most similar training playlists per title: (indices, similarities), best first; at most
        ``batch`` titles at a time, fewer where their block of similarities would pass DENSE_BLOCK_BYTES."""
        distinct = list(dict.fromkeys(titles))
        if len(distinct) < len(titles):  # a repeated title's row is the same: scored once, then copied
            found_indices, found_sims = self.neighbours(distinct, k, batch)
            row = {title: i for i, title in enumerate(distinct)}
            rows = np.fromiter((row[t] for t in titles), dtype=np.int64, count=len(titles))
            return found_indices[rows], found_sims[rows]
        playlists = len(self.title_of)
        k = min(k, playlists)
        # A cell of the block is held about five times at once: the distinct titles' product and its dense copy (at
        # most one playlist wide), the copy per playlist and its negation (8 bytes each) and argpartition's indices.
        batch = block_rows(batch, CELL_COPIES * playlists)
        indices, sims = [], []
        for start in range(0, len(titles), batch):
            dense = self.similarities(titles[start:start + batch])
            top = np.argpartition(-dense, k - 1, axis=1)[:, :k]
            top_sims = np.take_along_axis(dense, top, axis=1)
            order = np.argsort(-top_sims, axis=1, kind="stable")
            indices.append(np.take_along_axis(top, order, axis=1))
            sims.append(np.take_along_axis(top_sims, order, axis=1))
        return np.vstack(indices), np.vstack(sims)

    def similarities(self, titles: Sequence[str]) -> np.ndarray:
        """(titles, training playlists) title similarities: TF-IDF cosine, mixed with the title vectors' cosine."""
        tfidf = (self._vectorise(titles) @ self.matrix_t).toarray()
        if self.vectors is not None:
            weight = self.params.vector_weight
            tfidf = (1.0 - weight) * tfidf + weight * (self.title_vectors(titles) @ self.vectors.T)
        return tfidf[:, self.title_of]

    def recommend(self, titles: Sequence[str], n: int, found: tuple[np.ndarray, np.ndarray] | None = None,
                  params: KnnParams | None = None) -> list[list[str]]:
        """Top ``n`` songs per title; ``found`` reuses neighbours computed for a larger ``k``."""
        params = params or self.params
        indices, sims = found if found is not None else self.neighbours(titles, params.k)
        indices, sims = indices[:, :params.k], sims[:, :params.k]
        out = []
        # A block of titles at a time: all titles' votes at once would hold titles x k x playlist length entries.
        batch = block_rows(len(indices), params.k * VOTES_PER_NEIGHBOUR)
        for start in range(0, len(indices), batch):
            votes = self.votes(indices[start:start + batch], sims[start:start + batch], params)
            out.extend(self._top(votes.getrow(i), n) for i in range(votes.shape[0]))
        return out

    def votes(self, indices: np.ndarray, sims: np.ndarray, params: KnnParams | None = None,
              keep: np.ndarray | None = None) -> sparse.csr_matrix:
        """Per title, each song's summed vote from these neighbours (``keep``: a mask of those that count)."""
        params = params or self.params
        weights = np.clip(sims, 0, None) ** params.alpha / self.lengths[indices] ** params.length_norm
        if keep is not None:
            weights = np.where(keep, weights, 0.0)
        rows = np.repeat(np.arange(len(indices)), indices.shape[1])
        return sparse.csr_matrix((weights.ravel(), (rows, indices.ravel())),
                                 shape=(len(indices), self.members.shape[0])) @ self.members

    def scored(self, titles: Sequence[str], n: int) -> list[list[tuple[str, float]]]:
        """Per title, the songs the neighbours vote for (at most ``n``) with their votes, best first; no
        popularity fill (a caller that needs exactly ``n`` songs fills and labels them itself)."""
        votes = self.votes(*self.neighbours(titles, self.params.k))
        out = []
        for i in range(len(titles)):
            row = votes.getrow(i)
            order = np.argsort(-(row.data + self.prior[row.indices]), kind="stable")[:n]
            out.append([(self.songs[row.indices[j]], float(row.data[j])) for j in order if row.data[j] > 0])
        return out

    def best_similarity(self, titles: Sequence[str]) -> np.ndarray:
        """Each title's highest TF-IDF similarity to a training title (0: no shared word or character n-gram)."""
        if not len(titles):
            return np.zeros(0)
        return (self._vectorise(titles) @ self.matrix_t).max(axis=1).toarray().ravel()

    def with_params(self, params: KnnParams) -> "TitleKNN":
        """This fitted kNN with other parameters, sharing its matrices (no refit); vector_weight must stay 0 or
        keep the vectors this one has."""
        other = copy.copy(self)
        other.params = params
        if not params.vector_weight:
            other.title_vectors, other.vectors = None, None
        elif self.vectors is None:
            raise ConfigError("with_params: vector_weight needs a kNN fitted with title vectors")
        return other

    def _top(self, row: sparse.csr_matrix, n: int) -> list[str]:
        scores = row.data + self.prior[row.indices]
        chosen = row.indices[np.argsort(-scores, kind="stable")[:n]].tolist()
        if len(chosen) < n:
            taken = set(chosen)
            chosen += [i for i in range(min(len(self.songs), n + len(chosen))) if i not in taken][:n - len(chosen)]
        return [self.songs[i] for i in chosen]


CELL_COPIES = 5
"""Float64-sized copies of each (title, training playlist) similarity held while neighbours are selected."""
VOTES_PER_NEIGHBOUR = 250
"""Songs a neighbour playlist is taken to bring when sizing a block of votes (the MPD's longest playlists)."""


def block_rows(rows: int, width: int) -> int:
    """How many of ``rows`` rows of ``width`` float64 values fit in DENSE_BLOCK_BYTES (at least one)."""
    return max(1, min(rows, DENSE_BLOCK_BYTES // (8 * max(width, 1))))


def tune_knn(knn: TitleKNN, titles: Sequence[str], truths: Sequence[Sequence[str]], n: int,
             score: Callable[[list[list[str]], Sequence[Sequence[str]]], float]) -> tuple[KnnParams, list[dict]]:
    """Grid-search k, alpha and length_norm on validation playlists; set and return the best."""
    found = knn.neighbours(titles, max(KNN_GRID["k"]))
    trials = []
    for k, alpha, length_norm in itertools.product(*KNN_GRID.values()):
        params = replace(knn.params, k=k, alpha=alpha, length_norm=length_norm)
        trials.append({**asdict(params), "score": score(knn.recommend(titles, n, found, params), truths)})
    best = max(trials, key=lambda t: t["score"])
    knn.params = replace(knn.params, k=best["k"], alpha=best["alpha"], length_norm=best["length_norm"])
    log.info("title kNN tuned on %d validation playlists: %s (score %.4f)", len(titles), knn.params, best["score"])
    return knn.params, trials


def knn_tuned_on(playlists: TrainingPlaylists, val_rows: Sequence[CorpusRow], cutoff: int,
                 vector_weight: float = 0.0, title_vectors: TitleVectors | None = None) -> TitleKNN:
    """Title kNN over these playlists, tuned for NDCG@cutoff on the validation playlists' catalogue songs
    (what training-time users of the kNN need; evaluation tunes on the full ground truth)."""
    knn = TitleKNN(KnnParams(vector_weight=vector_weight), title_vectors).fit(playlists.titles, playlists.songs)
    val = TrainingPlaylists.from_corpus(val_rows)
    tune_knn(knn, val.titles, val.songs, cutoff, ndcg_score(cutoff))
    return knn


def fused_scores(first: Sequence[str], second: Sequence[str], weight: float, c: float = 60.0) -> list[tuple[str, float]]:
    """Weighted reciprocal rank fusion: ``weight / (c + rank)`` from ``first``, the rest from ``second``; every
    song of either ranking with its fused score, best first."""
    scores: dict[str, float] = defaultdict(float)
    for share, ranking in ((weight, first), (1.0 - weight, second)):
        for rank, song in enumerate(dict.fromkeys(ranking), start=1):
            scores[song] += share / (c + rank)
    # Stable order: equal scores keep the first ranking's order, then the second's.
    order = list(dict.fromkeys([*first, *second]))
    return sorted(((song, scores[song]) for song in order), key=lambda pair: -pair[1])


def fuse(first: Sequence[str], second: Sequence[str], n: int, weight: float, c: float = 60.0) -> list[str]:
    """The top ``n`` songs of :func:`fused_scores`."""
    return [song for song, _ in fused_scores(first, second, weight, c)[:n]]


def tune_fusion(model: Sequence[Sequence[str]], partners: dict[str, Sequence[Sequence[str]]],
                truths: Sequence[Sequence[str]], n: int,
                score: Callable[[list[list[str]], Sequence[Sequence[str]]], float]) -> tuple[dict, list[dict]]:
    """Pick the partner ranking, fusion weight and constant on validation playlists. Ties go to the weight nearest
    0.5, then to the first partner (at weight 1 every partner gives the model's ranking alone)."""
    trials = []
    for partner, rankings in partners.items():
        for weight, c in itertools.product(*FUSION_GRID.values()):
            fused = [fuse(a, b, n, weight, c) for a, b in zip(model, rankings)]
            trials.append({"partner": partner, "weight": weight, "c": c, "score": score(fused, truths)})
    best = max(trials, key=lambda t: (t["score"], -abs(t["weight"] - 0.5)))
    log.info("hybrid tuned on %d validation playlists: the model fused with %s, weight %.2f on the model, c=%g "
             "(score %.4f)", len(truths), best["partner"], best["weight"], best["c"], best["score"])
    return {k: best[k] for k in ("partner", "weight", "c")}, trials


def hybrid_path(cfg: Config) -> Path:
    return Path(cfg.run.output_dir) / HYBRID_FILE


def save_hybrid(cfg: Config, knn_params: KnnParams, fusion: dict, inputs: list[Path], validation: dict[str, float],
                objective: str) -> None:
    """Record the tuned kNN and fusion parameters, tied to the training corpus and model they were tuned for, and
    each system's validation score (``objective``), from which the bundle picks the system it serves."""
    path = hybrid_path(cfg)
    write_json(path, {"title_knn": asdict(knn_params), "fusion": fusion, "validation": validation,
                      "objective": objective})
    write_manifest(path, inputs, config_as_dict(cfg, ["decode", "eval", "run"]))


class Hybrid:
    """The model's ranking fused with a partner's (title kNN's or the retrieved list), the evaluated way."""

    def __init__(self, partner: Callable[[Sequence[str], int], list[list[str]]], fusion: dict):
        self.partner = partner
        self.fusion = fusion

    def rank(self, titles: Sequence[str], model_rankings: Sequence[Sequence[str]], n: int) -> list[list[str]]:
        weight, c = self.fusion["weight"], self.fusion["c"]
        return [fuse(m, p, n, weight, c) for m, p in zip(model_rankings, self.partner(titles, n))]


def load_hybrid(cfg: Config, training: Callable[[], TrainingPlaylists],
                retrieved: Callable[[Sequence[str]], list[list[str]]] | None) -> Hybrid:
    """The hybrid evaluate_tiger.py tuned: title kNN refitted on the training playlists (seconds), or the model's
    own retrieved list (``retrieved``: the model folder's retriever)."""
    payload = read_hybrid(cfg)
    fusion = {"partner": "title_knn", **payload["fusion"]}
    if fusion["partner"] == "retrieved" and retrieved is None:
        raise ArtifactError(f"{hybrid_path(cfg)}: the hybrid was tuned with the model's retrieved songs, but the "
                            "model retrieves none: rerun evaluate_tiger.py for this model")
    playlists = training()
    if fusion["partner"] == "retrieved":
        popular = PopularityBaseline(playlists.songs).ranking
        return Hybrid(lambda titles, n: filled(retrieved(titles), popular[:n], n), fusion)
    return Hybrid(tuned_title_knn_of(payload, playlists).recommend, fusion)


def read_hybrid(cfg: Config) -> dict:
    """hybrid.json as evaluate_tiger.py wrote it: the tuned kNN's parameters and the fusion's."""
    path = hybrid_path(cfg)
    require_fresh(path, "evaluate_tiger.py")
    return json.loads(path.read_text(encoding="utf-8"))


def tuned_title_knn_of(payload: dict, playlists: TrainingPlaylists) -> TitleKNN:
    """Title kNN with the parameters evaluate_tiger.py chose on validation (``read_hybrid``), refitted (seconds)."""
    return TitleKNN(KnnParams(**payload["title_knn"])).fit(playlists.titles, playlists.songs)


def filled(rankings: Sequence[Sequence[str]], fill: Sequence[str], n: int) -> list[list[str]]:
    """Each ranking topped up to n songs from ``fill`` (the most popular songs, as kNN's fallback is)."""
    return [list(dict.fromkeys([*ranking, *fill]))[:n] for ranking in rankings]
