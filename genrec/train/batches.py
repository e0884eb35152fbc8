"""The examples the T5 trains on: titles and targets tokenized once, padded per batch, pooled per title.

Examples are tokenized once up front and padded per batch (titles are short, targets of single mode
are one ID plus </s>), with no dataloader workers: on a CPU the model step is the cost, not input.
In single mode the (title, song) pairs become pooled examples (genrec.train.pooled_targets), shaped by the
``targets`` group (neighbour votes and the co-occurrence walk, genrec.train.neighbour_targets; continuation examples
with seed songs, genrec.train.seeded_examples); with
``retrieval.songs`` every example also carries title kNN's songs for its title (genrec.model.retrieval).
"""

from __future__ import annotations

import logging
import random
import sys
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass
from typing import Iterator, Sequence

import torch
from transformers import PreTrainedTokenizerBase

from config import Config

from genrec.corpus.build import CorpusRow
from genrec.corpus.id_tokens import TOKEN_PATTERN, SemanticIdVocab
from genrec.evaluate.baselines import TrainingPlaylists
from genrec.evaluate.playlists import EvalPlaylists, split_playlists
from genrec.evaluate.systems import tuned_title_knn
from genrec.model.retrieval import (RETRIEVAL_FOLDS, KnownLists, Retrieved, RetrievalSetup, WalkParams,
                                    song_token_ids, vector_mix)
from genrec.model.title_vectors import TitleVectorEncoder
from genrec.train.neighbour_targets import NEIGHBOUR_SONGS, CooccurrenceWalk, NeighbourVotes, neighbour_paths
from genrec.model.seed_songs import kept_seeds
from genrec.train.pooled_targets import (PAIRS_PER_EXAMPLE, PooledCollator, PooledDataset, PooledExamples,
                                         pool_counted, pool_examples, with_extra_inputs)
from genrec.train.seeded_examples import SeededRows, seeded_rows

log = logging.getLogger(__name__)


@dataclass
class Encoded:
    """Token ids of examples, ready for the collator."""

    inputs: list[list[int]]
    labels: list[list[int]]
    truncated_titles: int
    vectors: list[torch.Tensor] | None = None
    """Title vectors (genrec.model.title_vectors) when the model reads them."""
    retrieved: list[Retrieved] | None = None
    """Retrieved songs' ID token ids (genrec.model.retrieval) when the model reads them."""
    seeds: list[tuple[tuple[int, ...], ...]] | None = None
    """Seed songs' ID token ids (genrec.model.seed_songs) when the model reads them; () for a title alone."""

    def target_tokens(self) -> int:
        return sum(map(len, self.labels))


@dataclass
class TrainingCorpus:
    """train.tsv as training reads it: its playlists, and in sequence mode its rows (one a playlist).

    Single mode's file has a row per (playlist, song) pair, tens of millions at a million playlists: it is read
    row by row into its playlists (genrec.evaluate.baselines.read_training_playlists) and its pairs are counted
    per model input (:func:`count_pairs`), never listed, in every process of a torchrun."""
    playlists: TrainingPlaylists
    rows: list[CorpusRow] | None = None

    def titles(self) -> Iterator[str]:
        """The title of every row, in file order (what the title tokenizer learns from)."""
        if self.rows is not None:
            return (row.input_text for row in self.rows)
        return (title for title, songs in zip(self.playlists.titles, self.playlists.songs) for _ in songs)

    def __len__(self) -> int:
        return len(self.rows) if self.rows is not None else sum(map(len, self.playlists.songs))


@dataclass
class CountedPairs:
    """Single mode's (title, song) pairs as :func:`genrec.train.pooled_targets.pool_counted` takes them."""
    by_input: dict[tuple, Counter]
    vector_of: dict[tuple[int, ...], torch.Tensor] | None
    pairs: int
    target_tokens: int
    truncated_titles: int
    retrieved: dict[tuple, tuple] | None = None
    """What each (title, fold, seeds) key copies from (RetrievalSetup.cross_fitted), the continuation examples'
    keys included; None without retrieval."""


def count_pairs(playlists: TrainingPlaylists, tokenizer: PreTrainedTokenizerBase, vocab: SemanticIdVocab,
                max_input_length: int, title_encoder: TitleVectorEncoder | None,
                retrieval: RetrievalSetup | None, seeded_keys: Sequence[tuple] = ()) -> CountedPairs:
    """Each playlist's (title, song) pairs counted under its model input (title token ids, and the songs its title
    retrieves from outside its fold), in file order: what pooling counted from the listed pairs, without the list.
    ``seeded_keys`` (the continuation examples' retrieval keys) are cross-fitted in the same pass, so each fold's
    kNN is fitted once."""
    titles, cut = encode_titles(tokenizer, playlists.titles, max_input_length)
    labels = {song: (*ids, tokenizer.eos_token_id) for song, ids in song_token_ids(vocab, tokenizer).items()}
    folds = [retrieval.fold(pid) for pid in playlists.ids] if retrieval else []
    retrieved = retrieval.cross_fitted([*((title, fold, ()) for title, fold in zip(playlists.titles, folds)),
                                        *seeded_keys]) if retrieval else None
    by_input: dict[tuple, Counter] = defaultdict(Counter)
    pairs = tokens = 0
    for i, (title, songs) in enumerate(zip(playlists.titles, playlists.songs)):
        counts = by_input[(tuple(titles[title]), retrieved[title, folds[i], ()] if retrieved is not None else ())]
        for song in songs:
            label = labels[song]
            counts[label] += 1
            tokens += len(label)
        pairs += len(songs)
    vector_of = None
    if title_encoder:
        # Titles cut to equal token ids share the vector of the last such playlist, as the listed pairs' did.
        vectors = dict(zip(playlists.titles, title_encoder.vectors(playlists.titles)))
        vector_of = {tuple(titles[title]): vectors[title] for title in playlists.titles}
    return CountedPairs(by_input, vector_of, pairs, tokens, cut, retrieved)


class ExampleDataset(torch.utils.data.Dataset):
    def __init__(self, encoded: Encoded):
        self.encoded = encoded

    def __len__(self) -> int:
        return len(self.encoded.inputs)

    def __getitem__(self, i: int) -> dict:
        item = {"input_ids": self.encoded.inputs[i], "labels": self.encoded.labels[i]}
        if self.encoded.vectors is not None:
            item["title_vector"] = self.encoded.vectors[i]
        if self.encoded.retrieved is not None:
            item["retrieved_ids"] = self.encoded.retrieved[i]
        if self.encoded.seeds is not None:
            item["seed_ids"] = self.encoded.seeds[i]
        return item


class PadCollator:
    """Pad each batch to its own longest title and target (labels padded with -100, ignored by the loss).

    Batches of pooled examples (training in single mode, see genrec.train.pooled_targets) go to their own collator.
    """

    def __init__(self, pad_id: int):
        self.pad_id = pad_id
        self.pooled = PooledCollator(pad_id)

    def __call__(self, batch: list[dict]) -> dict:
        if "targets" in batch[0]:
            return self.pooled(batch)
        return with_extra_inputs({"input_ids": pad([b["input_ids"] for b in batch], self.pad_id),
                                   "attention_mask": pad([[1] * len(b["input_ids"]) for b in batch], 0),
                                   "labels": pad([b["labels"] for b in batch], -100)}, batch, self.pad_id)


def pad(rows: list[list[int]], value: int) -> torch.Tensor:
    out = torch.full((len(rows), max(map(len, rows))), value, dtype=torch.long)
    for i, row in enumerate(rows):
        out[i, :len(row)] = torch.tensor(row, dtype=torch.long)
    return out


def encode_titles(tokenizer: PreTrainedTokenizerBase, titles: list[str], max_length: int) -> tuple[dict, int]:
    """Token ids per distinct title, cut to max_length with </s> kept last; and how many were cut."""
    unique = sorted(set(titles))
    ids = tokenizer(unique)["input_ids"] if unique else []
    cut = sum(len(row) > max_length for row in ids)
    return {t: row if len(row) <= max_length else row[:max_length - 1] + [tokenizer.eos_token_id]
            for t, row in zip(unique, ids)}, cut


def titles_merged_by_cutting(tokenizer: PreTrainedTokenizerBase, titles: list[str], max_length: int) -> int:
    """How many distinct titles cutting to max_length makes identical to another title (folding aside)."""
    full, _ = encode_titles(tokenizer, titles, sys.maxsize)
    cut, _ = encode_titles(tokenizer, titles, max_length)
    return len(set(map(tuple, full.values()))) - len(set(map(tuple, cut.values())))


def encode(pairs: list[tuple[str, str]], tokenizer: PreTrainedTokenizerBase, max_input_length: int,
           title_encoder: TitleVectorEncoder | None = None,
           retrieved: list[Retrieved] | None = None) -> Encoded:
    """(title, target token string) pairs to ids (and title vectors; ``retrieved`` is passed through, one per
    pair); target tokens map one-to-one, then </s>."""
    titles, cut = encode_titles(tokenizer, [title for title, _ in pairs], max_input_length)
    token_ids: dict[str, int] = {}
    labels = []
    for _, target in pairs:
        row = [token_ids.setdefault(t, tokenizer.convert_tokens_to_ids(t)) for t in TOKEN_PATTERN.findall(target)]
        labels.append(row + [tokenizer.eos_token_id])
    vectors = title_encoder.vectors([title for title, _ in pairs]) if title_encoder else None
    return Encoded([titles[title] for title, _ in pairs], labels, cut, vectors, retrieved)


def training_pairs(rows: list[CorpusRow]) -> list[tuple[str, str]]:
    return [(row.input_text, row.target_text) for row in rows]


def validation_pairs(rows: list[CorpusRow], vocab: SemanticIdVocab, target_mode: str, limit: int,
                     seed: int, seeded_share: float = 0.0) -> list[tuple[str, str, tuple[str, ...]]]:
    """The val examples in the shape training sees, as (title, target, seeds); a seeded sample of at most ``limit``.
    A model that reads seeds (``seeded_share``) is validated on continuation pairs as well, drawn from the val
    playlists as training draws them from its own, so its best checkpoint is chosen for every category."""
    if target_mode == "single":
        pairs = [(row.input_text, "".join(vocab.songs[s]), ()) for row in rows for s in row.song_ids]
        if seeded_share:
            continuation = seeded_rows(TrainingPlaylists.from_corpus(rows), seeded_share, seed,
                                       lambda song: vocab.target_string([song]))
            pairs += [(row.input_text, row.target_text, seeds)
                      for row, seeds in zip(continuation.rows, continuation.seeds)]
    else:
        pairs = [(title, target, ()) for title, target in training_pairs(rows)]
    if len(pairs) > limit:
        pairs = random.Random(seed).sample(pairs, limit)
    return pairs


def neighbour_extra(cfg: Config, playlists: TrainingPlaylists, tokenizer: PreTrainedTokenizerBase,
                    vocab: SemanticIdVocab) -> tuple[dict, dict]:
    """Neighbour songs to add to each training title's pooled counts (genrec.train.neighbour_targets) from the kNN
    that evaluate_tiger.py reports as ``title_knn`` (same fit, same tuning on val), and how it was set."""
    targets = cfg.targets
    val = split_playlists(cfg, "val", vocab.songs).head(cfg.eval.val_playlists)
    knn, _ = tuned_title_knn(cfg, playlists, val)
    title_ids, _ = encode_titles(tokenizer, playlists.titles, cfg.network.max_input_length)
    song_paths = {song: (*ids, tokenizer.eos_token_id) for song, ids in song_token_ids(vocab, tokenizer).items()}
    walk = CooccurrenceWalk(knn) if targets.cooccurrence_weight else None
    extra = neighbour_paths(NeighbourVotes(knn, playlists), title_ids, song_paths, targets.neighbour_weight,
                            NEIGHBOUR_SONGS, walk, targets.cooccurrence_weight)
    return extra, {"weight": targets.neighbour_weight, "songs": NEIGHBOUR_SONGS,
                   "cooccurrence_weight": targets.cooccurrence_weight, "title_knn": asdict(knn.params)}


@dataclass
class TrainingData:
    train: torch.utils.data.Dataset  # pooled examples in single mode, one example per playlist in sequence mode
    val: ExampleDataset
    pairs: int  # training pairs before pooling: (title, song) pairs in single mode, playlists in sequence mode
    target_tokens: int  # their target tokens
    truncated_titles: int  # distinct training titles cut to network.max_input_length
    title_encoder: TitleVectorEncoder | None
    retrieval: RetrievalSetup | None
    neighbour_setup: dict | None
    seeded: dict | None = None
    """The continuation examples' share and playlists per category (None: the model reads no seeds)."""
    retrieval_summary: dict | None = None
    """How the retrieved songs were set (songs, folds, the tuned kNN, the walk), for the training summary."""
    probe_lists: KnownLists | None = None
    """The retriever's lists for the generation probe's titles (genrec.train.loop.probe_lists)."""


def training_data(cfg: Config, train: TrainingCorpus, val_rows: list[CorpusRow], vocab: SemanticIdVocab,
                  tokenizer: PreTrainedTokenizerBase) -> TrainingData:
    """The training and validation sets as the Trainer sees them (title vectors, retrieval, pooled targets)."""
    net, targets, ret, mode = cfg.network, cfg.targets, cfg.retrieval, cfg.corpus.target_mode
    title_encoder = TitleVectorEncoder(net.title_encoder) if net.title_encoder else None
    if ret.songs and ret.vector_weight and not title_encoder:
        # A preset that mixes in vectors must still run where the title encoder is turned off (non-English titles).
        log.warning("retrieval.vector_weight=%g needs network.title_encoder: the retriever's kNN uses TF-IDF alone",
                    ret.vector_weight)
    # A model that reads seeds copies, for an input with seeds, from the seeds' walk, mixed as validation says.
    seeded_val = seeded_validation(val_rows, cfg.eval.val_playlists) if targets.seeded_share else None
    retrieval = (RetrievalSetup(train.playlists, val_rows, ret.songs, RETRIEVAL_FOLDS, vocab, tokenizer,
                                max(cfg.eval.k_values), WalkParams(ret.walk_weight, NEIGHBOUR_SONGS),
                                *vector_mix(ret.vector_weight, title_encoder), seeded_val, cfg.run.seed)
                 if ret.songs else None)
    for name, what in (("walk_weight", "walks the retrieved songs"),
                       ("vector_weight", "mixes title vectors into the retriever's kNN"),
                       ("title_dropout", "leaves a model its retrieved songs alone")):
        if getattr(ret, name) and not ret.songs:
            log.warning("retrieval.%s=%g %s: ignored without retrieval.songs", name, getattr(ret, name), what)
    val_pairs = validation_pairs(val_rows, vocab, mode, cfg.train.val_loss_examples, cfg.run.seed, targets.seeded_share)
    pooled_mode = mode == "single"
    seeded = None
    if pooled_mode:
        if targets.seeded_share:
            seeded = seeded_rows(train.playlists, targets.seeded_share, cfg.run.seed,
                                 lambda song: vocab.target_string([song]))
        continuation_keys = seeded_keys(seeded, retrieval)
        counted = count_pairs(train.playlists, tokenizer, vocab, net.max_input_length, title_encoder, retrieval,
                              continuation_keys)
        pairs, target_tokens, truncated = counted.pairs, counted.target_tokens, counted.truncated_titles
    else:
        rows = train.rows if train.rows is not None else []
        keys = [(row.input_text, retrieval.fold(row.playlist_id), ()) for row in rows] if retrieval else []
        retrieved = retrieval.cross_fitted(keys) if retrieval else None
        train_set = encode(training_pairs(rows), tokenizer, net.max_input_length, title_encoder,
                           [retrieved[key] for key in keys] if retrieved is not None else None)
        pairs, target_tokens, truncated = len(train_set.inputs), train_set.target_tokens(), train_set.truncated_titles
    val_seeds = [seeds for _, _, seeds in val_pairs]
    val_set = encode([(title, target) for title, target, _ in val_pairs], tokenizer, net.max_input_length,
                     title_encoder,
                     retrieval.full.inputs([title for title, _, _ in val_pairs], val_seeds) if retrieval else None)
    if any(val_seeds):
        val_set.seeds = seed_token_ids(val_seeds, vocab, tokenizer)
    retrieval_summary = ({"songs": ret.songs, "folds": RETRIEVAL_FOLDS, "title_knn": asdict(retrieval.params),
                          "walk": asdict(retrieval.walk), "seeded_mixes": retrieval.seeded_mixes}
                         if retrieval else None)
    if truncated:
        log.warning("%d distinct training titles are longer than network.max_input_length=%d tokens and were cut",
                    truncated, net.max_input_length)
    merged = truncated and titles_merged_by_cutting(tokenizer, train.playlists.titles, net.max_input_length)
    smoothed = targets.neighbour_weight or targets.cooccurrence_weight
    if merged and pooled_mode and (title_encoder or smoothed):
        # Pooled examples key title vectors and neighbour targets by the title's token ids.
        log.warning("%d distinct training titles were cut to another title's tokens and share its title vector and "
                    "neighbour targets: raise network.max_input_length to keep them apart", merged)
    # The targets group shapes pooled targets only; a preset that sets it must still run sequence mode.
    for name in ("neighbour_weight", "cooccurrence_weight", "paths_per_title", "seeded_share"):
        if getattr(targets, name) and not pooled_mode:
            log.warning("targets.%s=%g shapes pooled single-mode targets only: ignored here", name,
                        getattr(targets, name))
    if not pooled_mode:
        return TrainingData(ExampleDataset(train_set), ExampleDataset(val_set), pairs, target_tokens, truncated,
                            title_encoder, retrieval, None, retrieval_summary=retrieval_summary)
    neighbours, neighbour_setup = (neighbour_extra(cfg, train.playlists, tokenizer, vocab)
                                   if smoothed else (None, None))
    pooled = pool_counted(counted.by_input, counted.pairs, PAIRS_PER_EXAMPLE, cfg.run.seed, counted.vector_of,
                          retrieval is not None, targets.sharpening, neighbours, targets.paths_per_title)
    if seeded:
        # Pooled on their own, so the title-only examples are the same whatever the share.
        pooled = pooled.followed_by(seeded_examples(seeded, cfg, vocab, tokenizer, title_encoder, counted.retrieved,
                                                    continuation_keys))
        log.info("continuation examples: %d (title, seeds, song) pairs from %s playlists by category",
                 len(seeded.rows), seeded.categories)
    log.info("pooled targets: %d (title, song) pairs of %d distinct titles become %d training examples",
             pooled.pairs, pooled.distinct_titles(), len(pooled))
    seeded_setup = {"share": targets.seeded_share, "playlists": seeded.categories} if seeded else None
    return TrainingData(PooledDataset(pooled), ExampleDataset(val_set), pairs, target_tokens, truncated,
                        title_encoder, retrieval, neighbour_setup, seeded_setup, retrieval_summary)


def seeded_validation(val_rows: list[CorpusRow], limit: int) -> EvalPlaylists:
    """The first ``limit`` validation playlists (0: all) with their catalogue songs, for seeded tuning."""
    playlists = TrainingPlaylists.from_corpus(val_rows)
    return EvalPlaylists(playlists.ids, playlists.titles, playlists.songs, "validation corpus").head(limit)


def seeded_keys(seeded: SeededRows | None, retrieval: RetrievalSetup | None) -> list[tuple]:
    """Each continuation pair's (title, fold, seeds) retrieval key; none without retrieval or continuation pairs."""
    if seeded is None or retrieval is None:
        return []
    return [(row.input_text, retrieval.fold(row.playlist_id), seeds) for row, seeds in zip(seeded.rows, seeded.seeds)]


def seeded_examples(seeded: SeededRows, cfg: Config, vocab: SemanticIdVocab, tokenizer: PreTrainedTokenizerBase,
                    title_encoder: TitleVectorEncoder | None, retrieved: dict[tuple, tuple] | None,
                    keys: Sequence[tuple]) -> PooledExamples:
    """The continuation examples, pooled per playlist (its title and seeds are the input; no two playlists share
    both), with what each copies from (``retrieved`` at ``keys``, cross-fitted like a title's list by
    :func:`count_pairs`, genrec.model.retrieval)."""
    encoded = encode(training_pairs(seeded.rows), tokenizer, cfg.network.max_input_length, title_encoder,
                     [retrieved[key] for key in keys] if retrieved is not None else None)
    return pool_examples(encoded.inputs, encoded.labels, PAIRS_PER_EXAMPLE, cfg.run.seed, encoded.vectors,
                         encoded.retrieved, cfg.targets.sharpening, None, cfg.targets.paths_per_title,
                         seed_token_ids(seeded.seeds, vocab, tokenizer))


def seed_token_ids(seeds: Sequence[tuple[str, ...]], vocab: SemanticIdVocab,
                   tokenizer: PreTrainedTokenizerBase) -> list[tuple[tuple[int, ...], ...]]:
    """Each pair's seeds as the model reads them (genrec.model.seed_songs.kept_seeds); () for none."""
    token_ids = song_token_ids(vocab, tokenizer)
    as_ids = {given: tuple(token_ids[song] for song in kept_seeds(given, token_ids)) for given in set(seeds)}
    return [as_ids[given] for given in seeds]
