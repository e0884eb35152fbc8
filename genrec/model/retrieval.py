"""Retrieval augmentation: title kNN's top songs for a title, which the model may copy beside writing its own.

Title kNN (genrec.evaluate.baselines) is strong on playlist data because titles repeat, while a small
generative model struggles to memorise which of thousands of songs go with each title. With
``retrieval.songs = M`` the model also gets kNN's top M songs for the title, which a copy head
(genrec.model.copy_head) lets it write out ID token by ID token (reading them as encoder tokens instead
learnt no use for them: docs/experiments/), and learns which to keep, how to reorder them and what to add. With ``retrieval.walk_weight``
the list is kNN's after one step of the co-occurrence walk over the same training playlists
(genrec.train.neighbour_targets.walked_knn), which adds the songs kNN's songs share playlists with. With
``retrieval.vector_weight`` w, kNN's title similarity mixes in the title encoder's cosine
(``(1 - w) * TF-IDF + w * vectors``), so a title also finds playlists whose titles mean the same in other words.

A model that reads seed songs (genrec.model.seed_songs) copies, for an input with seeds, from the seeds' co-occurrence
walk mixed with the title's list instead (:meth:`SongRetriever.inputs`: the continuation evaluation's ``walk``
system, genrec.evaluate.continuation.SeededWalk), the seeds themselves left out: with seeds, that walk is the best
list measured (docs/results.md, "Continuation"). Its mix is tuned per challenge category on the validation playlists
when the retriever is set up for training, as the evaluation tunes the ``walk`` system's, and recorded with the
model (``seeded_mixes``); a case takes the nearest category's. Models recorded without it copy at :data:`SEEDED_MIX`.

No leakage: a training example must not find its own playlist's songs among its inputs, or the model
learns to copy lists that at test time do not hold the answer. Training playlists are split into
:data:`RETRIEVAL_FOLDS` folds by a hash of their id, and a title in fold f retrieves from a kNN
fitted on the other folds only (cross-fitting). Validation, test and the generator retrieve from
all training playlists. The kNN parameters are tuned on validation playlists, as the evaluated
``title_knn`` baseline's are.

``retrieval.json`` in the model folder records what inference needs, so a model folder generates on
its own: ``{"songs": M, "title_knn": {"k", "alpha", "length_norm", "vector_weight"}, "walk": {"weight", "songs"},
"seeded_mixes": [{"seeds", "title", "random", <the walk's mix>}, ...]}`` (empty for a model that reads no seeds),
and beside it ``retrieval_playlists.npz`` the training playlists the index is fitted on (genrec.data.playlists_file;
files of earlier versions held them in retrieval.json as ``"playlists": {"ids", "titles", "songs"}``, still read;
files without ``walk`` or ``vector_weight`` predate them and retrieve without them; a non-zero ``vector_weight``
needs the model's title encoder, whose vectors of those titles the model folder keeps beside it,
genrec.model.loaded.TITLE_VECTORS_FILE).
"""

from __future__ import annotations

import json
import logging
import zlib
from dataclasses import asdict, dataclass
from functools import cached_property
from itertools import chain
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Sequence

from genrec.artifacts import write_json
from genrec.data.playlists_file import read_playlists, write_playlists
from genrec.evaluate.baselines import KnnParams, TitleKNN, TitleVectors, TrainingPlaylists, knn_tuned_on
from genrec.evaluate.metrics import ndcg_score
from genrec.decode.constrained import id_token_ids
from genrec.errors import ArtifactError, ConfigError
from genrec.corpus.id_tokens import SemanticIdVocab
from genrec.train.neighbour_targets import CooccurrenceWalk, walked_knn, walked_knn_scores
from genrec.model.title_vectors import TitleVectorEncoder

if TYPE_CHECKING:  # types only: the generator imports this module and never needs transformers or pandas
    from transformers import PreTrainedTokenizerBase

    from genrec.corpus.build import CorpusRow
    from genrec.evaluate.playlists import EvalPlaylists

log = logging.getLogger(__name__)

RETRIEVAL_FOLDS = 5
"""Training playlists are split into this many folds for cross-fitted retrieval (each title retrieves from the
others: more folds change nothing measurable, docs/experiments/)."""

RETRIEVAL_FILE = "retrieval.json"
RETRIEVAL_PLAYLISTS_FILE = "retrieval_playlists.npz"


class KnownLists:
    """:meth:`SongRetriever.inputs` of known titles, computed once: what copies them where the retriever is not held
    (a torchrun rank other than the main one, genrec.train.shared_examples)."""

    def __init__(self, titles: Sequence[str], lists: Sequence[Retrieved]):
        self.lists = dict(zip(titles, lists))

    def inputs(self, titles: Sequence[str], seeds: Sequence[Sequence[str]] | None = None) -> list[Retrieved]:
        if seeds and any(seeds):
            raise ValueError("KnownLists holds title-only lists")
        return [self.lists[title] for title in titles]


def fold_of(playlist_id: str, folds: int) -> int:
    """A playlist's cross-fitting fold: stable across runs and machines."""
    return zlib.crc32(playlist_id.encode("utf-8")) % folds


SEEDED_MIX = {"title_share": 0.25, "popularity_penalty": 0.0, "cooccurrence_share": 0.0}
"""The seeds' walk mixed with the title's list at a quarter share: what a bundle serves seeds with before any
continuation evaluation (genrec.serve.seeds.DEFAULT_SEEDED), and what a model recorded without ``seeded_mixes``
copies from."""

Retrieved = tuple[tuple[int, ...], ...]
"""One title's retrieved songs: ``songs`` tuples of id_length ID token ids, best first."""


@dataclass(frozen=True)
class WalkParams:
    """The co-occurrence walk on kNN's list (``retrieval.walk_weight``; weight 0: kNN's list as it is)."""
    weight: float = 0.0
    songs: int = 200


class SongRetriever:
    """Title -> the ID token ids of kNN's top ``songs`` songs (walked, with a walk weight).

    Titles repeat (one row per (title, song) pair in single mode), so each distinct title's tuple is
    built once and shared by its rows: with many retrieved songs, copies would take gigabytes.
    """

    def __init__(self, knn: TitleKNN, songs: int, token_ids: dict[str, tuple[int, ...]],
                 walk: WalkParams = WalkParams(), seeded_mixes: Sequence[dict] = ()):
        self.knn, self.songs, self.token_ids, self.walk = knn, songs, token_ids, walk
        self.seeded_mixes = list(seeded_mixes)
        """The seeded walk's mix per category (genrec.evaluate.continuation.seeded_category_mixes); none: SEEDED_MIX."""
        self.cooccurrence = CooccurrenceWalk(knn) if walk.weight else None

    def rank(self, titles: Sequence[str]) -> list[list[str]]:
        """The retrieved song ids per title, best first."""
        if not titles:
            return []
        if self.cooccurrence is None:
            return self.knn.recommend(titles, self.songs)
        return walked_knn(self.knn, self.cooccurrence, titles, self.walk.weight, self.walk.songs, self.songs)

    def scored(self, titles: Sequence[str], n: int) -> list[list[tuple[str, float]]]:
        """Per title, at most ``n`` retrieved songs with the scores they are ranked by (kNN votes, walked), best
        first; no popularity fill."""
        if self.cooccurrence is None:
            return self.knn.scored(titles, n)
        walked = walked_knn_scores(self.knn, self.cooccurrence, titles, self.walk.weight, self.walk.songs)
        rank = self.knn.popularity.rank
        return [sorted(scores.items(), key=lambda pair: (-pair[1], rank[pair[0]]))[:n] for scores in walked]

    def __call__(self, titles: Sequence[str]) -> list[Retrieved]:
        distinct = sorted(set(titles))
        lists = {title: tuple(self.token_ids[song] for song in songs)
                 for title, songs in zip(distinct, self.rank(distinct))}
        return [lists[title] for title in titles]

    def inputs(self, titles: Sequence[str], seeds: Sequence[Sequence[str]] | None = None) -> list[Retrieved]:
        """What a model copies from: per title, its list (:meth:`__call__`), or with seeds the seeds' walk mixed
        with the title's list (see the module docstring), no seed in it, filled from the title's list and then the
        popular songs."""
        if not seeds or not any(seeds):
            return self(titles)
        from genrec.evaluate.continuation import WALK_SONGS, Cases, Category, SeededWalk, nearest_mix, top_songs

        queries = sorted({(title, tuple(given)) for title, given in zip(titles, seeds)})
        seeded = [q for q in queries if q[1]]
        cases = Cases(Category("model input", 0), list(range(len(seeded))), [t for t, _ in seeded],
                      [list(given) for _, given in seeded], [[] for _ in seeded])
        popularity = self.knn.popularity
        plain = dict(zip(sorted({t for t, _ in queries}), self.rank(sorted({t for t, _ in queries}))))
        lists = {}
        for (title, given), part in zip(seeded, self.seeded_walk.parts(cases)):
            mix = nearest_mix(self.seeded_mixes, len(given), bool(title)) if self.seeded_mixes else SEEDED_MIX
            walked = top_songs(SeededWalk.mixed(part, mix, popularity.counts), popularity.rank, WALK_SONGS)
            songs: dict[str, None] = {}
            for song in chain(walked, plain[title], popularity.ranking):  # the ranking only as deep as needed
                if song not in given:
                    songs[song] = None
                    if len(songs) == self.songs:
                        break
            lists[(title, given)] = tuple(self.token_ids[song] for song in songs)
        for title, given in queries:
            if not given:
                lists[(title, given)] = tuple(self.token_ids[song] for song in plain[title])
        return [lists[(title, tuple(given))] for title, given in zip(titles, seeds)]

    @cached_property
    def seeded_walk(self):
        return self.new_seeded_walk(neighbours=bool(self.seeded_mixes))

    def new_seeded_walk(self, neighbours: bool):
        """The seeds' walk mixed with this retriever's lists; ``neighbours``: with the playlists most like the seeds
        (which mixes tuned per category may weigh in; the fixed SEEDED_MIX does not)."""
        from genrec.evaluate.continuation import ItemCooccurrence, PlaylistNeighbours, SeededWalk

        walk = self.cooccurrence or CooccurrenceWalk(self.knn)
        cooccurrence = ItemCooccurrence(self.knn)
        return SeededWalk(walk, self.scored, cooccurrence, PlaylistNeighbours(cooccurrence) if neighbours else None)


def vector_mix(weight: float, title_encoder: TitleVectorEncoder | None) -> tuple[float, TitleVectors | None]:
    """The retriever's title-vector weight and vectors (``retrieval.vector_weight``): without a title
    encoder, TF-IDF alone (0, None), so a preset that mixes in vectors still runs with the encoder off."""
    if not (weight and title_encoder):
        return 0.0, None
    return weight, title_encoder.array


def song_token_ids(vocab: SemanticIdVocab, tokenizer: PreTrainedTokenizerBase) -> dict[str, tuple[int, ...]]:
    token_ids = id_token_ids(vocab, tokenizer)
    return {song: tuple(token_ids[token] for token in tokens) for song, tokens in vocab.songs.items()}


def check_enough_songs(playlists: TrainingPlaylists, songs: int) -> None:
    """A kNN over these playlists must always fill ``songs`` slots (else a clear error)."""
    distinct = len({song for ranked in playlists.songs for song in ranked})
    if distinct < songs:
        raise ConfigError(f"retrieval.songs={songs} is more than the {distinct} distinct songs of "
                          f"{len(playlists.titles)} training playlists to retrieve from")


def fitted_knn(playlists: TrainingPlaylists, params: KnnParams, songs: int,
               title_vectors: TitleVectors | None = None) -> TitleKNN:
    check_enough_songs(playlists, songs)
    return TitleKNN(params, title_vectors).fit(playlists.titles, playlists.songs)


class RetrievalSetup:
    """What training needs: kNN parameters tuned on validation, full and cross-fitted retrieval."""

    def __init__(self, playlists: TrainingPlaylists, val_rows: Sequence[CorpusRow], songs: int, folds: int,
                 vocab: SemanticIdVocab, tokenizer: PreTrainedTokenizerBase, tuning_cutoff: int,
                 walk: WalkParams = WalkParams(), vector_weight: float = 0.0,
                 title_vectors: TitleVectors | None = None, seeded_val: EvalPlaylists | None = None, seed: int = 0):
        """``seeded_val``: for a model that reads seeds, the validation playlists its copy lists' walk mix is tuned
        on per category (random seeds drawn with ``seed``, as the continuation evaluation draws them)."""
        self.playlists = playlists
        self.songs, self.folds, self.walk, self.title_vectors = songs, folds, walk, title_vectors
        self.token_ids = song_token_ids(vocab, tokenizer)
        check_enough_songs(self.playlists, songs)
        knn = knn_tuned_on(self.playlists, val_rows, tuning_cutoff, vector_weight, title_vectors)
        self.params = knn.params
        self.full = SongRetriever(knn, songs, self.token_ids, walk)
        self.seeded_mixes: list[dict] = []
        if seeded_val is not None:
            from genrec.evaluate.continuation import seeded_category_mixes

            seeded_walk = self.full.new_seeded_walk(neighbours=True)
            self.seeded_mixes = seeded_category_mixes(seeded_walk, seeded_val, knn.popularity, tuning_cutoff,
                                                      ndcg_score(tuning_cutoff), seed)
            # The full retriever copies with these mixes through the walk they were tuned on (not built again).
            self.full.seeded_mixes, self.full.seeded_walk = self.seeded_mixes, seeded_walk

    def fold(self, playlist_id: str) -> int:
        return fold_of(playlist_id, self.folds)

    def cross_fitted(self, keys: Iterable[tuple[str, int, tuple[str, ...]]]) -> dict[tuple, Retrieved]:
        """What each (title, fold, seeds) asked copies from (a training playlist's title, its :meth:`fold`, and the
        seed songs of a continuation example, or ``()``): :meth:`SongRetriever.inputs` from the training playlists
        outside that fold (the walk too). Keyed, not listed per pair: titles repeat."""
        playlist_folds = [fold_of(pid, self.folds) for pid in self.playlists.ids]
        by_fold: dict[int, list[tuple[str, tuple[str, ...]]]] = {}
        for title, fold, seeds in dict.fromkeys(keys):
            by_fold.setdefault(fold, []).append((title, seeds))
        out: dict[tuple, Retrieved] = {}
        for fold in sorted(by_fold):
            others = [i for i, f in enumerate(playlist_folds) if f != fold]
            if not others:
                raise ConfigError(f"every training playlist falls in one of tiger.retrieval_folds={self.folds} "
                                  "folds, leaving none to retrieve from: add playlists")
            knn = fitted_knn(self.playlists.subset(others), self.params, self.songs, self.title_vectors)
            asked = by_fold[fold]
            retriever = SongRetriever(knn, self.songs, self.token_ids, self.walk, self.seeded_mixes)
            lists = retriever.inputs([title for title, _ in asked], [seeds for _, seeds in asked])
            out.update(((title, fold, seeds), songs) for (title, seeds), songs in zip(asked, lists))
        log.info("retrieval: %d songs per title, kNN %s, walk %s, %d cross-fitting folds", self.songs, self.params,
                 self.walk, self.folds)
        return out

    def save(self, folder: Path) -> None:
        write_playlists(folder / RETRIEVAL_PLAYLISTS_FILE, self.playlists)
        write_json(folder / RETRIEVAL_FILE, {"songs": self.songs, "title_knn": asdict(self.params),
                                             "walk": asdict(self.walk), "seeded_mixes": self.seeded_mixes})


def read_retrieval_file(folder: Path) -> tuple[dict, TrainingPlaylists]:
    """A model folder's ``retrieval.json`` and the training playlists it was fitted on (from
    ``retrieval_playlists.npz``, or inside retrieval.json as earlier versions wrote them)."""
    path = folder / RETRIEVAL_FILE
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
        inline = payload.pop("playlists", None)
        playlists = (TrainingPlaylists(**inline) if inline is not None
                     else read_playlists(folder / RETRIEVAL_PLAYLISTS_FILE, "rerun train_tiger.py"))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        raise ArtifactError(f"{path} is missing or unreadable ({err}): rerun train_tiger.py") from None
    return payload, playlists


def load_retriever(folder: Path, vocab: SemanticIdVocab, tokenizer: PreTrainedTokenizerBase,
                   title_vectors: TitleVectors | None = None) -> SongRetriever:
    """The retriever a model folder was trained with, fitted on its recorded training playlists
    (``title_vectors``: the model's title encoder, which a non-zero vector weight needs)."""
    path = folder / RETRIEVAL_FILE
    payload, playlists = read_retrieval_file(folder)
    try:
        params, songs = KnnParams(**payload["title_knn"]), int(payload["songs"])
        walk = WalkParams(**payload.get("walk", {}))
        seeded_mixes = [dict(row) for row in payload.get("seeded_mixes", [])]
    except (ValueError, KeyError, TypeError) as err:
        raise ArtifactError(f"{path} is unreadable ({err}): rerun train_tiger.py") from None
    unknown = {song for ranked in playlists.songs for song in ranked if song not in vocab.songs}
    if unknown:
        raise ArtifactError(f"{path} names {len(unknown)} songs without a semantic ID: rerun train_tiger.py")
    if params.vector_weight and title_vectors is None:
        raise ArtifactError(f"{path}: the retriever mixes in title vectors (vector_weight {params.vector_weight:g}) "
                            "but the model has no title encoder: rerun train_tiger.py")
    return SongRetriever(fitted_knn(playlists, params, songs, title_vectors), songs, song_token_ids(vocab, tokenizer),
                         walk, seeded_mixes)
