"""Item2vec song vectors: gensim Word2Vec (skip-gram, negative sampling) over training playlists.

Each training playlist is a "sentence" of song ids; songs that share playlists end up close. Only
training playlists are used, so nothing about val/test playlists leaks into the vectors.

The quality check looks at what the vectors learned without any title or model: the nearest
neighbours of the most popular songs, and how often a song's nearest neighbours share its singer,
against the share a random pick would give.
"""

from __future__ import annotations

import logging
import os

import numpy as np
from gensim.models import Word2Vec
from gensim.models.callbacks import CallbackAny2Vec
from tqdm import tqdm

from config import PrepareConfig

from genrec.data.files import SongVectors

log = logging.getLogger(__name__)


class PlaylistSentences:
    """Restartable iterable of playlists as lists of song ids (Word2Vec reads it once per epoch)."""

    def __init__(self, playlists: list[np.ndarray], song_ids: list[str]) -> None:
        self.playlists = playlists
        self.song_ids = song_ids

    def __iter__(self):
        for codes in self.playlists:
            yield [self.song_ids[c] for c in codes]


class _EpochProgress(CallbackAny2Vec):
    def __init__(self, epochs: int) -> None:
        self.bar = tqdm(total=epochs, desc="item2vec", unit="epoch")

    def on_epoch_end(self, model) -> None:
        self.bar.update(1)

    def on_train_end(self, model) -> None:
        self.bar.close()


WINDOW = 10
"""Skip-gram window (songs either side)."""
EPOCHS = 10
"""Passes over the training playlists, for corpora under a tenth of ``TRAINING_WORDS``."""
TRAINING_WORDS = 100_000_000
"""Song occurrences item2vec reads in all, at most: a larger corpus gets fewer passes, no fewer than one.
A song in a large corpus already appears in many playlists per pass (word2vec itself was trained in one
pass over its corpus); more passes would make the import's time grow with rows x epochs (docs/scaling.md)."""


def epochs_for(words: int) -> int:
    """Passes over a corpus of ``words`` song occurrences: ``EPOCHS``, fewer past ``TRAINING_WORDS``."""
    return max(1, min(EPOCHS, TRAINING_WORDS // max(words, 1)))
NEGATIVE = 5
"""Negative samples per positive."""


def train_item2vec(playlists: list[np.ndarray], song_ids: list[str], dim: int, cfg: PrepareConfig,
                   seed: int) -> tuple[SongVectors, int]:
    """Vectors for the songs of ``playlists`` (every song of a kept playlist gets one), and the epochs run.

    Bit-identical reruns need ``item2vec_workers=1``: with several threads, gensim's updates
    interleave differently from run to run (results stay statistically the same).
    """
    workers = cfg.item2vec_workers or os.cpu_count() or 1
    sentences = PlaylistSentences([p for p in playlists if len(p) > 1], song_ids)
    epochs = epochs_for(sum(len(p) for p in sentences.playlists))
    log.info("item2vec: %d training playlists, dim %d, window %d, %d epochs, %d negatives, %d workers",
             len(sentences.playlists), dim, WINDOW, epochs, NEGATIVE, workers)
    model = Word2Vec(vector_size=dim, window=WINDOW, min_count=1, sg=1, negative=NEGATIVE, workers=workers, seed=seed)
    model.build_vocab(sentences)
    model.train(sentences, total_examples=model.corpus_count, epochs=epochs, callbacks=[_EpochProgress(epochs)])
    # Keep the catalogue's own order, not gensim's frequency order.
    keyed = model.wv
    kept = [s for s in song_ids if s in keyed.key_to_index]
    vectors = np.stack([keyed[s] for s in kept]).astype(np.float32) if kept else np.zeros((0, dim), np.float32)
    return SongVectors(kept, vectors), epochs


NEIGHBOUR_BLOCK_BYTES = 256 * 2**20


def _unit_rows(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def _nearest(unit: np.ndarray, rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-k cosine neighbours (excluding the song itself) of ``rows``, best first."""
    sims = unit[rows] @ unit.T
    sims[np.arange(len(rows)), rows] = -np.inf
    k = min(k, unit.shape[0] - 1)
    top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(sims, top, axis=1), axis=1)
    top = np.take_along_axis(top, order, axis=1)
    return top, np.take_along_axis(sims, top, axis=1)


def describe(name: str, singer: str, song_id: str) -> str:
    if not name:
        return song_id
    return f"{name} - {singer}" if singer else name


def quality_check(vectors: SongVectors, names: list[str], singers: list[str], popularity: np.ndarray,
                  seed: int, top_songs: int = 5, shown: int = 5, k: int = 10, sample: int = 2000) -> dict:
    """Neighbours of the most popular songs, and the same-singer share of top-k neighbours vs chance.

    ``names``, ``singers`` and ``popularity`` (training playlists per song) follow ``vectors.ids``.
    """
    n = len(vectors.ids)
    if n < 2:
        return {"songs": n}
    unit = _unit_rows(vectors.vectors)
    popular = np.argsort(-popularity, kind="stable")[:top_songs]
    neighbours, sims = _nearest(unit, popular, shown)
    examples = [{"song": describe(names[i], singers[i], vectors.ids[i]), "playlists": int(popularity[i]),
                 "neighbours": [{"song": describe(names[j], singers[j], vectors.ids[j]), "cosine": round(float(s), 3)}
                                for j, s in zip(row, sim)]}
                for i, row, sim in zip(popular, neighbours, sims)]
    report = {"songs": n, "popular_song_neighbours": examples}

    _, singer_code = np.unique(np.asarray(singers, dtype=object), return_inverse=True)
    known = np.flatnonzero(np.asarray(singers, dtype=object) != "")
    if len(known) == 0:
        report["same_singer"] = None  # no singer information (e.g. kkbox)
        return report
    rng = np.random.default_rng(seed)
    picked = rng.choice(known, size=min(sample, len(known)), replace=False)
    same = 0
    # Each chunk's rows x catalogue similarities, their negation and argpartition's int64 indices (16 bytes a
    # cell) stay within NEIGHBOUR_BLOCK_BYTES: a few hundred rows against a million songs would take gigabytes.
    rows = max(1, min(256, NEIGHBOUR_BLOCK_BYTES // (16 * n)))
    for chunk in np.array_split(picked, max(1, len(picked) // rows)):
        top, _ = _nearest(unit, chunk, k)
        same += int((singer_code[top] == singer_code[chunk][:, None]).sum())
    songs_per_singer = np.bincount(singer_code)
    share = same / (len(picked) * min(k, n - 1))
    chance = float(np.mean((songs_per_singer[singer_code[picked]] - 1) / (n - 1)))
    report["same_singer"] = {"k": k, "sampled_songs": len(picked), "share": round(share, 4),
                             "chance": round(chance, 4), "lift": round(share / chance, 1) if chance else None}
    return report


def format_quality(report: dict) -> str:
    """The quality check as readable lines for the console and the log."""
    lines = []
    for example in report.get("popular_song_neighbours", []):
        lines.append(f"{example['song']} (in {example['playlists']} training playlists):")
        lines.extend(f"    {n['cosine']:.3f}  {n['song']}" for n in example["neighbours"])
    same = report.get("same_singer")
    if same:
        lines.append(f"same singer among {same['k']} nearest neighbours: {same['share']:.1%} "
                     f"(chance {same['chance']:.2%}, {same['lift']}x) over {same['sampled_songs']} songs")
    elif "same_singer" in report:
        lines.append("same-singer check skipped: the data has no singer names")
    return "\n".join(lines)
