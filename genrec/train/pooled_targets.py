"""Pooled soft targets for single mode: the same objective as one example per (title, song), far cheaper.

Single mode's loss is, for every (title, song) pair, the negative log-likelihood of the song's ID
tokens. Titles repeat (on MPD most titles are shared by several playlists, docs/experiments/),
and every pair of one title shares the encoder input, so the loss pools into, for each distinct
title and each ID prefix, a cross-entropy against the distribution of next tokens among that
title's songs. An example here is one ID path sampled in proportion to its count, with that
distribution as a soft target at every position: an unbiased, much lower-variance estimate of the
pairs' gradient. Each title gets one example per :data:`PAIRS_PER_EXAMPLE` of its pairs (at least one),
weighted so that titles keep their share of the original loss.

Validation keeps the plain pairs, so validation loss means the same with or without pooling.
"""

from __future__ import annotations

import math
import random
from array import array
from collections import Counter, defaultdict
from dataclasses import dataclass, fields

import numpy as np
import torch


@dataclass
class Ragged:
    """Rows of different lengths in one flat array: row ``i`` is ``values[ends[i - 1]:ends[i]]``, as ``width``-wide
    rows when ``width`` is set (songs' ID token ids: a row is a list of songs). Flat arrays keep millions of examples
    in a few arrays, not millions of Python lists, and a torchrun rank maps them from a file (genrec.train.shared_
    examples) instead of holding its own copy."""

    values: np.ndarray
    ends: np.ndarray
    width: int = 0

    def __len__(self) -> int:
        return len(self.ends)

    def span(self, i: int) -> slice:
        """Row ``i``'s place in ``values`` (and in any array aligned with it)."""
        return slice(int(self.ends[i - 1]) if i else 0, int(self.ends[i]))

    def __getitem__(self, i: int) -> np.ndarray:
        row = self.values[self.span(i)]
        return row.reshape(-1, self.width) if self.width else row

    def followed_by(self, other: "Ragged") -> "Ragged":
        if self.width and other.width and self.width != other.width:
            raise ValueError(f"rows of {self.width} and {other.width} token ids cannot be joined")
        return Ragged(np.concatenate([self.values, other.values]),
                      np.concatenate([self.ends, other.ends + len(self.values)]), self.width or other.width)

    @staticmethod
    def empty_rows(rows: int) -> "Ragged":
        return Ragged(np.zeros(0, dtype=np.int32), np.zeros(rows, dtype=np.int64))


class RaggedBuilder:
    """Appends rows to flat typed arrays (about 4 bytes a token, against a Python list's 36)."""

    def __init__(self, typecode: str = "i"):
        self.values, self.ends, self.width = array(typecode), array("q"), 0

    def add(self, row) -> None:
        self.values.extend(row)
        self.ends.append(len(self.values))

    def add_ids(self, ids: tuple[tuple[int, ...], ...]) -> None:
        """A row of songs' ID token ids (equal lengths)."""
        for song in ids:
            self.width = len(song)
            self.values.extend(song)
        self.ends.append(len(self.values))

    def build(self) -> Ragged:
        return Ragged(np.asarray(self.values), np.asarray(self.ends, dtype=np.int64), self.width)


@dataclass
class PooledExamples:
    """The pooled examples in flat arrays: a table of model inputs (title, and retrieved and seed songs when the
    model reads them), a table of soft targets (the next tokens after an ID prefix for one input, and their
    shares), and the examples, each an input, an ID path and the target of every position of the path.

    The list-valued properties (:attr:`inputs`, :attr:`paths`, :attr:`targets`, ...) rebuild the examples as
    Python lists, for inspection and tests; training reads the arrays (:class:`PooledDataset`)."""

    titles: Ragged
    """Per input: its title token ids."""
    title_vectors: np.ndarray | None
    """Per input: its title vector (genrec.model.title_vectors), when the model reads one."""
    retrieved_ids: Ragged | None
    """Per input: its retrieved songs' ID token ids (genrec.model.retrieval), when the model reads them."""
    seed_ids: Ragged | None
    """Per input: its seed songs' ID token ids (genrec.model.seed_songs; none for a title-only input), when the
    model reads seeds."""
    share_tokens: Ragged
    """Per soft target: the next tokens seen after one prefix for one input..."""
    share_values: np.ndarray
    """...and their shares (float32, aligned with ``share_tokens.values``)."""
    example_input: np.ndarray
    """Per example: its input's row."""
    path_tokens: Ragged
    """Per example: the sampled ID path (target tokens then </s>): teacher forcing runs along it."""
    path_targets: np.ndarray
    """Per path token (aligned with ``path_tokens.values``): the soft target at that position."""
    example_weights: np.ndarray
    """Per example: the pairs it stands for."""
    pairs: int

    def __len__(self) -> int:
        return len(self.example_input)

    def target(self, row: int) -> tuple[np.ndarray, np.ndarray]:
        """Soft target ``row``: (next tokens, their shares)."""
        return self.share_tokens[row], self.share_values[self.share_tokens.span(row)]

    def example_targets(self, i: int) -> list[tuple[np.ndarray, np.ndarray]]:
        return [self.target(int(row)) for row in self.path_targets[self.path_tokens.span(i)]]

    def distinct_titles(self) -> int:
        return len({tuple(self.titles[k].tolist()) for k in range(len(self.titles))})

    @property
    def inputs(self) -> list[list[int]]:
        return [self.titles[k].tolist() for k in self.example_input]

    @property
    def paths(self) -> list[list[int]]:
        return [self.path_tokens[i].tolist() for i in range(len(self))]

    @property
    def targets(self) -> list[list[tuple[list[int], list[float]]]]:
        return [[(tokens.tolist(), shares.tolist()) for tokens, shares in self.example_targets(i)]
                for i in range(len(self))]

    @property
    def weights(self) -> list[float]:
        return self.example_weights.tolist()

    @property
    def vectors(self) -> list[torch.Tensor] | None:
        return None if self.title_vectors is None else [torch.from_numpy(self.title_vectors[k].copy())
                                                        for k in self.example_input]

    @property
    def retrieved(self) -> list[tuple[tuple[int, ...], ...]] | None:
        return self._song_rows(self.retrieved_ids)

    @property
    def seeds(self) -> list[tuple[tuple[int, ...], ...]] | None:
        return self._song_rows(self.seed_ids)

    def _song_rows(self, table: Ragged | None) -> list[tuple[tuple[int, ...], ...]] | None:
        return None if table is None else [tuple(map(tuple, table[k].tolist())) for k in self.example_input]

    def followed_by(self, other: "PooledExamples") -> "PooledExamples":
        """These examples, then ``other``'s (title-only examples, then continuation examples with seeds)."""
        def joined_rows(name: str) -> Ragged | None:
            mine, theirs = getattr(self, name), getattr(other, name)
            if mine is None and theirs is None:
                return None
            mine = mine if mine is not None else Ragged.empty_rows(len(self.titles))
            return mine.followed_by(theirs if theirs is not None else Ragged.empty_rows(len(other.titles)))

        if (self.title_vectors is None) != (other.title_vectors is None):
            raise ValueError("examples with title vectors cannot be joined to examples without")
        return PooledExamples(
            self.titles.followed_by(other.titles),
            None if self.title_vectors is None else np.concatenate([self.title_vectors, other.title_vectors]),
            joined_rows("retrieved_ids"), joined_rows("seed_ids"),
            self.share_tokens.followed_by(other.share_tokens),
            np.concatenate([self.share_values, other.share_values]),
            np.concatenate([self.example_input, other.example_input + len(self.titles)]),
            self.path_tokens.followed_by(other.path_tokens),
            np.concatenate([self.path_targets, other.path_targets + len(self.share_tokens)]),
            np.concatenate([self.example_weights, other.example_weights]), self.pairs + other.pairs)

    def to_tensors(self) -> dict:
        """Every array as a tensor (no copies), for ``torch.save``; :meth:`from_tensors` reads them back."""
        out = {"pairs": self.pairs}
        for field in fields(self):
            value = getattr(self, field.name)
            if isinstance(value, Ragged):
                out[field.name] = {"values": torch.from_numpy(value.values), "ends": torch.from_numpy(value.ends),
                                   "width": value.width}
            elif isinstance(value, np.ndarray):
                out[field.name] = torch.from_numpy(value)
        return out

    @classmethod
    def from_tensors(cls, saved: dict) -> "PooledExamples":
        def array_of(value):
            if value is None:
                return None
            if isinstance(value, dict):
                return Ragged(value["values"].numpy(), value["ends"].numpy(), value["width"])
            return value.numpy()

        return cls(**{field.name: saved["pairs"] if field.name == "pairs" else array_of(saved.get(field.name))
                      for field in fields(cls)})


PAIRS_PER_EXAMPLE = 16
"""Sampled paths: one training example per this many (title, song) pairs of a title (at least one)."""


def pool_examples(inputs: list[list[int]], labels: list[list[int]], pairs_per_example: int, seed: int,
                  vectors: list[torch.Tensor] | None = None,
                  retrieved: list[tuple[tuple[int, ...], ...]] | None = None, sharpening: float = 1.0,
                  extra: dict[tuple[int, ...], dict[tuple[int, ...], float]] | None = None,
                  paths_per_input: int = 0, seeds: list[tuple[tuple[int, ...], ...]] | None = None) -> PooledExamples:
    """Group (title ids, label ids) pairs by model input and sample pooled examples (deterministic for a seed).

    The model input is the title, plus its retrieved songs when given: one title retrieves different
    songs in different cross-fitting folds (genrec.model.retrieval), and each such input is pooled on its own; so
    are its seed songs when given (``seeds``, one per pair: a continuation example's, genrec.train.seeded_examples).
    ``sharpening`` raises each song's count under an input to that power before the shares are taken
    (1: the exact pair objective; above 1 the targets concentrate on the songs that an input's
    playlists agree on, the top of the ranking, at the expense of songs seen once). An input keeps
    its weight either way. ``extra`` (title token ids -> {ID path: count}, genrec.train.neighbour_targets)
    adds to an input's counts before sharpening, again leaving its weight and example count alone.

    ``paths_per_input`` > 0 replaces the sampling: each input walks the paths of its that many
    top-scored songs once, its weight split evenly among them. Soft targets are unchanged (so is the
    optimum); what changes is which prefixes get trained. A path's deepest tokens are learnt only
    when the path is walked, and sampled in proportion to its share an input's lesser songs are
    walked less than once in a whole training run (docs/experiments/mpd.md, "What the model does not
    learn"), so the model learnt their first ID level and guessed the rest.
    """
    keys = [(tuple(title), retrieved[i] if retrieved is not None else (), *((seeds[i],) if seeds is not None else ()))
            for i, title in enumerate(inputs)]
    by_input: dict[tuple, Counter] = defaultdict(Counter)
    for key, label in zip(keys, labels):
        by_input[key][tuple(label)] += 1
    # Equal token ids mean an equal folded title, and so an equal title vector.
    vector_of = dict(zip(map(tuple, inputs), vectors)) if vectors is not None else None
    return pool_counted(by_input, len(labels), pairs_per_example, seed, vector_of, retrieved is not None, sharpening,
                        extra, paths_per_input, seeds is not None)


def pool_counted(by_input: dict[tuple, Counter], pairs: int, pairs_per_example: int, seed: int,
                 vector_of: dict[tuple[int, ...], torch.Tensor] | None = None, with_retrieved: bool = False,
                 sharpening: float = 1.0, extra: dict[tuple[int, ...], dict[tuple[int, ...], float]] | None = None,
                 paths_per_input: int = 0, with_seeds: bool = False) -> PooledExamples:
    """:func:`pool_examples` from pairs already counted: ``by_input`` maps (title token ids, retrieved songs or
    ``()``[, seed songs' token ids when ``with_seeds``]) to {label path: pairs}, in the order the pairs came (the
    float sums below follow it); ``vector_of`` maps title token ids to the title vector. Training counts a corpus's
    title-only pairs this way without listing them."""
    rng = random.Random(seed)
    titles, retrieved, seeds, paths = RaggedBuilder(), RaggedBuilder(), RaggedBuilder(), RaggedBuilder()
    share_tokens, share_values = RaggedBuilder(), array("f")
    example_input, path_targets, weights, vectors = array("i"), array("i"), array("d"), []
    for key in sorted(by_input):
        title, songs = key[:2]
        total = sum(by_input[key].values())
        counts = Counter(by_input[key])
        if extra is not None:
            counts.update(extra.get(title, {}))
        paths_of = {path: count ** sharpening for path, count in counts.items()}
        following: dict[tuple[int, ...], Counter] = defaultdict(Counter)
        for path, count in paths_of.items():
            for j, token in enumerate(path):
                following[path[:j]][token] += count
        if paths_per_input:
            walked = sorted(paths_of, key=lambda p: (-paths_of[p], p))[:paths_per_input]
        else:
            population = sorted(paths_of)
            walked = rng.choices(population, [paths_of[p] for p in population],
                                 k=math.ceil(total / pairs_per_example))
        row = len(titles.ends)
        titles.add(title)
        if vector_of is not None:
            vectors.append(vector_of[title])
        if with_retrieved:
            retrieved.add_ids(songs)
        if with_seeds:
            seeds.add_ids(key[2])
        shares = PrefixShares(following, share_tokens, share_values)
        for path in walked:
            example_input.append(row)
            paths.add(path)
            path_targets.extend(shares[path[:j]] for j in range(len(path)))
            weights.append(total / len(walked))
    title_vectors = None
    if vector_of is not None:
        title_vectors = (np.stack([np.asarray(v, dtype=np.float32) for v in vectors]) if vectors
                         else np.zeros((0, 0), dtype=np.float32))
    return PooledExamples(titles.build(), title_vectors, retrieved.build() if with_retrieved else None,
                          seeds.build() if with_seeds else None,
                          share_tokens.build(), np.asarray(share_values), np.asarray(example_input), paths.build(),
                          np.asarray(path_targets), np.asarray(weights), pairs)


class PrefixShares(dict):
    """Each ID prefix's soft target row for one input: the next tokens after it and their shares, written to the
    targets table when an example first passes the prefix and then shared (a title's first level is in all its
    examples; prefixes no walked path passes are never computed)."""

    def __init__(self, following: dict[tuple[int, ...], Counter], tokens: RaggedBuilder, shares: array):
        super().__init__()
        self.following, self.tokens, self.shares = following, tokens, shares

    def __missing__(self, prefix: tuple[int, ...]) -> int:
        counts = self.following[prefix]
        total = sum(counts.values())
        next_tokens = sorted(counts)
        self.tokens.add(next_tokens)
        self.shares.extend(counts[t] / total for t in next_tokens)
        self[prefix] = len(self.tokens.ends) - 1
        return self[prefix]


class PooledDataset(torch.utils.data.Dataset):
    def __init__(self, examples: PooledExamples):
        self.examples = examples

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, i: int) -> dict:
        e = self.examples
        k = int(e.example_input[i])
        item = {"input_ids": e.titles[k], "labels": e.path_tokens[i], "targets": e.example_targets(i),
                "weight": float(e.example_weights[i])}
        if e.title_vectors is not None:
            item["title_vector"] = torch.from_numpy(e.title_vectors[k].copy())
        if e.retrieved_ids is not None:
            item["retrieved_ids"] = e.retrieved_ids[k]
        if e.seed_ids is not None:
            item["seed_ids"] = e.seed_ids[k]
        return item


class PooledCollator:
    """Pads titles, paths and soft targets; decoder inputs are the path shifted right after pad (T5's start)."""

    def __init__(self, pad_id: int):
        self.pad_id = pad_id

    def __call__(self, batch: list[dict]) -> dict:
        size, length = len(batch), max(len(b["labels"]) for b in batch)
        width = max(len(tokens) for b in batch for tokens, _ in b["targets"])
        title_len = max(len(b["input_ids"]) for b in batch)
        # Filled as numpy arrays: a slice assignment from a list costs far less there than a torch.tensor per
        # row, and on a GPU this loop, not the model, sets the pace (bench/batches.py).
        input_ids = np.full((size, title_len), self.pad_id, dtype=np.int64)
        attention = np.zeros((size, title_len), dtype=np.int64)
        decoder_ids = np.full((size, length), self.pad_id, dtype=np.int64)
        target_ids = np.zeros((size, length, width), dtype=np.int64)
        target_shares = np.zeros((size, length, width), dtype=np.float32)
        for i, b in enumerate(batch):
            input_ids[i, :len(b["input_ids"])] = b["input_ids"]
            attention[i, :len(b["input_ids"])] = 1
            decoder_ids[i, 1:len(b["labels"])] = b["labels"][:-1]
            for j, (tokens, shares) in enumerate(b["targets"]):
                target_ids[i, j, :len(tokens)] = tokens
                target_shares[i, j, :len(tokens)] = shares
        arrays = {"input_ids": input_ids, "attention_mask": attention, "decoder_input_ids": decoder_ids,
                  "target_ids": target_ids, "target_shares": target_shares}
        out = {name: torch.from_numpy(array) for name, array in arrays.items()}
        out["weight"] = torch.tensor([b["weight"] for b in batch])
        return with_extra_inputs(out, batch, self.pad_id)


def with_extra_inputs(out: dict, batch: list[dict], pad_id: int) -> dict:
    """Add the batch's title vectors, retrieved songs and seed songs (padded with ``pad_id`` to the batch's most
    seeds; left out when no example has any) (see TigerT5) when its examples carry them."""
    if "title_vector" in batch[0]:
        out["title_vectors"] = torch.stack([b["title_vector"] for b in batch])
    if "retrieved_ids" in batch[0]:
        out["retrieved_ids"] = torch.from_numpy(np.array([b["retrieved_ids"] for b in batch], dtype=np.int64))
    most = max((len(b["seed_ids"]) for b in batch if "seed_ids" in b), default=0)
    if most:
        id_length = len(next(seeds[0] for seeds in (b["seed_ids"] for b in batch) if len(seeds)))
        seed_ids = np.full((len(batch), most, id_length), pad_id, dtype=np.int64)
        for i, b in enumerate(batch):
            if len(b["seed_ids"]):
                seed_ids[i, :len(b["seed_ids"])] = b["seed_ids"]
        out["seed_ids"] = torch.from_numpy(seed_ids)
    return out


def pooled_loss(model, batch: dict) -> torch.Tensor:
    """Weighted soft cross-entropy, averaged over target positions like the plain token loss."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                   decoder_input_ids=batch["decoder_input_ids"], title_vectors=batch.get("title_vectors"),
                   retrieved_ids=batch.get("retrieved_ids"), seed_ids=batch.get("seed_ids")).logits
    log_probs = logits.float().log_softmax(dim=-1).gather(-1, batch["target_ids"])
    per_position = -(log_probs * batch["target_shares"]).sum(dim=-1)
    positions = (batch["target_shares"].sum(dim=-1) > 0).sum(dim=-1).clamp(min=1)
    per_example = per_position.sum(dim=-1) / positions
    return (per_example * batch["weight"]).sum() / batch["weight"].sum()
