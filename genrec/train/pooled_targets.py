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
from collections import Counter, defaultdict
from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class PooledExamples:
    inputs: list[list[int]]
    paths: list[list[int]]
    """The sampled ID path (target tokens then </s>): teacher forcing runs along it."""
    targets: list[list[tuple[list[int], list[float]]]]
    """Per position: the next tokens seen after this prefix for this title, and their shares."""
    weights: list[float]
    """Pairs each example stands for."""
    pairs: int
    vectors: list[torch.Tensor] | None = None
    """Each example's title vector (genrec.model.title_vectors), when the model reads one."""
    retrieved: list[tuple[tuple[int, ...], ...]] | None = None
    """Each example's retrieved songs' ID token ids (genrec.model.retrieval), when the model reads them."""
    seeds: list[tuple[tuple[int, ...], ...]] | None = None
    """Each example's seed songs' ID token ids (genrec.model.seed_songs; none for a title-only example), when the
    model reads seeds."""

    def __len__(self) -> int:
        return len(self.inputs)

    def followed_by(self, other: "PooledExamples") -> "PooledExamples":
        """These examples, then ``other``'s (title-only examples, then continuation examples with seeds)."""
        def joined(name: str, empty):
            mine, theirs = getattr(self, name), getattr(other, name)
            if mine is None and theirs is None:
                return None
            return [*(mine if mine is not None else [empty] * len(self)),
                    *(theirs if theirs is not None else [empty] * len(other))]

        return PooledExamples(self.inputs + other.inputs, self.paths + other.paths, self.targets + other.targets,
                              self.weights + other.weights, self.pairs + other.pairs, joined("vectors", None),
                              joined("retrieved", ()), joined("seeds", ()))


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
    out = PooledExamples([], [], [], [], pairs, [] if vector_of is not None else None, [] if with_retrieved else None,
                         [] if with_seeds else None)
    for key in sorted(by_input):
        title, songs = key[:2]
        total = sum(by_input[key].values())
        counts = Counter(by_input[key])
        if extra is not None:
            counts.update(extra.get(title, {}))
        paths = {path: count ** sharpening for path, count in counts.items()}
        following: dict[tuple[int, ...], Counter] = defaultdict(Counter)
        for path, count in paths.items():
            for j, token in enumerate(path):
                following[path[:j]][token] += count
        if paths_per_input:
            walked = sorted(paths, key=lambda p: (-paths[p], p))[:paths_per_input]
        else:
            population = sorted(paths)
            walked = rng.choices(population, [paths[p] for p in population],
                                 k=math.ceil(total / pairs_per_example))
        shares = PrefixShares(following)
        for path in walked:
            out.inputs.append(list(title))
            out.paths.append(list(path))
            out.targets.append([shares[path[:j]] for j in range(len(path))])
            out.weights.append(total / len(walked))
            if vector_of is not None:
                out.vectors.append(vector_of[title])
            if with_retrieved:
                out.retrieved.append(songs)
            if with_seeds:
                out.seeds.append(key[2])
    return out


class PrefixShares(dict):
    """Next-token shares per ID prefix, computed when an example first passes the prefix and then shared
    (a title's first level is in all its examples; prefixes no walked path passes are never computed)."""

    def __init__(self, following: dict[tuple[int, ...], Counter]):
        super().__init__()
        self.following = following

    def __missing__(self, prefix: tuple[int, ...]) -> tuple[list[int], list[float]]:
        self[prefix] = _shares(self.following[prefix])
        return self[prefix]


def _shares(counts: Counter) -> tuple[list[int], list[float]]:
    total = sum(counts.values())
    tokens = sorted(counts)
    return tokens, [counts[t] / total for t in tokens]


class PooledDataset(torch.utils.data.Dataset):
    def __init__(self, examples: PooledExamples):
        self.examples = examples

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, i: int) -> dict:
        e = self.examples
        item = {"input_ids": e.inputs[i], "labels": e.paths[i], "targets": e.targets[i], "weight": e.weights[i]}
        if e.vectors is not None:
            item["title_vector"] = e.vectors[i]
        if e.retrieved is not None:
            item["retrieved_ids"] = e.retrieved[i]
        if e.seeds is not None:
            item["seed_ids"] = e.seeds[i]
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
        id_length = len(next(seeds[0] for seeds in (b["seed_ids"] for b in batch) if seeds))
        seed_ids = np.full((len(batch), most, id_length), pad_id, dtype=np.int64)
        for i, b in enumerate(batch):
            if b["seed_ids"]:
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
