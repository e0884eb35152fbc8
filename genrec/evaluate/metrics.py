"""Song-level and sequence metrics, one code path for the model and every baseline.

Song level (per playlist, then averaged over playlists with at least one ground-truth song):
- R-precision: |truth ∩ top-R| / R with R = |truth| (track matches only), and, where the songs' artists are
  known, ``r_precision_artist``: the RecSys Challenge 2018's version, which also credits 0.25 for each top-R
  song that misses but whose artist is among the playlist's and not credited before (each artist once).
- Recall@K: |truth ∩ top-K| / |truth|.
- NDCG@K: binary relevance, DCG = sum 1/log2(rank + 1) over hits in the top K, ideal DCG over
  min(K, |truth|) hits.
- hit@10: 1 if any ground-truth song is in the top 10.
Ground truth keeps songs outside the catalogue: no system can recommend them, so they are misses
for every system alike (the evaluation reports their share).

Sequence metrics (the original's, on semantic-ID tokens): the top-R songs' IDs against the
ground truth's catalogue songs' IDs in playlist order: ROUGE-L F1 and BLEU-4 over ID tokens, and
semantic-ID F1 over the sets of whole IDs.
"""

from __future__ import annotations

import math
import warnings
from typing import Sequence

import numpy as np



def ranking_metrics(ranked: Sequence[str], truth: Sequence[str], ks: Sequence[int],
                    artists: dict[str, str] | None = None) -> dict[str, float]:
    """Metrics of one ranked list against one playlist's ground truth (non-empty); with ``artists`` (song id ->
    artist) also ``r_precision_artist``."""
    relevant = set(truth)
    hits = [song in relevant for song in _distinct(ranked)]
    r = len(relevant)
    out = {"r_precision": sum(hits[:r]) / r}
    for k in ks:
        top = hits[:k]
        out[f"recall@{k}"] = sum(top) / r
        dcg = sum(1.0 / math.log2(rank + 2) for rank, hit in enumerate(top) if hit)
        ideal = sum(1.0 / math.log2(rank + 2) for rank in range(min(k, r)))
        out[f"ndcg@{k}"] = dcg / ideal
    out["hit@10"] = float(any(hits[:10]))
    if artists is not None:
        out["r_precision_artist"] = artist_r_precision(ranked, truth, artists)
    return out


def artist_r_precision(ranked: Sequence[str], truth: Sequence[str], artists: dict[str, str]) -> float:
    """R-precision with the Challenge's artist credit (see the module docstring); songs without an artist
    (absent from ``artists`` or empty) earn none."""
    relevant = set(truth)
    truth_artists = {artists[song] for song in relevant if artists.get(song)}
    credited: set[str] = set()
    score = 0.0
    for song in _distinct(ranked)[:len(relevant)]:
        artist = artists.get(song)
        if song in relevant:
            score += 1.0
        elif artist and artist in truth_artists and artist not in credited:
            credited.add(artist)
            score += 0.25
    return score / len(relevant)


def _distinct(ranked: Sequence[str]) -> list[str]:
    """A ranking counts each song once (a repeat earns nothing)."""
    return list(dict.fromkeys(ranked))


def per_playlist(rankings: Sequence[Sequence[str]], truths: Sequence[Sequence[str]],
                 ks: Sequence[int], artists: dict[str, str] | None = None) -> dict[str, np.ndarray]:
    """Each metric as an array over playlists (playlists without ground truth are NaN); with ``artists``
    (song id -> artist) also ``r_precision_artist``."""
    rows = [ranking_metrics(ranked, truth, ks, artists) if truth else None for ranked, truth in zip(rankings, truths)]
    names = next((list(r) for r in rows if r), ["r_precision"])
    return {name: np.array([r[name] if r else np.nan for r in rows]) for name in names}


def mean_over(per: dict[str, np.ndarray], mask: np.ndarray | None = None) -> dict[str, float]:
    """Average every metric over the playlists in ``mask`` (all by default), ignoring NaN."""
    out = {}
    for name, values in per.items():
        chosen = values if mask is None else values[mask]
        chosen = chosen[~np.isnan(chosen)]
        out[name] = float(chosen.mean()) if chosen.size else float("nan")
    return out


def paired_difference(first: np.ndarray, second: np.ndarray, samples: int = 2000, seed: int = 0) -> dict:
    """Mean per-playlist difference ``first - second`` and its 95% bootstrap interval.

    Playlists are resampled with replacement, each keeping both systems' values (a paired bootstrap),
    so the interval reflects how much the comparison depends on which playlists were drawn. NaN
    (no ground truth) on either side leaves the playlist out.
    """
    keep = ~(np.isnan(first) | np.isnan(second))
    out = bootstrap_mean((first[keep] - second[keep])[:, None], samples, seed)
    return {"difference": out["mean"], "ci95": out["ci95"]}


def bootstrap_mean(values: np.ndarray, samples: int = 2000, seed: int = 0) -> dict:
    """The mean over groups (columns) of each group's mean over playlists (rows, NaN where a playlist is not in the
    group), and its 95% bootstrap interval: playlists are resampled with replacement, all groups at once, so a
    playlist that is in several groups is drawn in all of them together."""
    counts = (~np.isnan(values)).sum(axis=0)
    if not values.size or not counts.all():
        return {"mean": float("nan"), "ci95": [float("nan"), float("nan")]}
    filled = np.nan_to_num(values)
    drawn = np.random.default_rng(seed).integers(0, len(values), size=(samples, len(values)))
    # Per sample and group: the sum over the drawn playlists in the group, over how many of them are in it.
    sums = np.stack([filled[row].sum(axis=0) for row in drawn])
    sizes = np.stack([(~np.isnan(values[row])).sum(axis=0) for row in drawn])
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a small group may be absent from a whole sample
        means = np.nanmean(sums / sizes, axis=1)
    low, high = np.nanpercentile(means, [2.5, 97.5])
    return {"mean": float(np.mean(filled.sum(axis=0) / counts)), "ci95": [float(low), float(high)]}


def recommended_song_clicks(ranked: Sequence[str], truth: Sequence[str], page: int = 10) -> float:
    """The RecSys Challenge 2018's "recommended songs clicks": how many more pages of ``page`` songs a listener
    must ask for before the first relevant song shows (0: one is on the first page); with none in the ranking,
    one more page than the ranking holds (the Challenge's 51 for 500 songs)."""
    relevant = set(truth)
    distinct = _distinct(ranked)
    first = next((rank for rank, song in enumerate(distinct) if song in relevant), None)
    return float(first // page if first is not None else len(distinct) // page + 1)


def ndcg_score(k: int):
    """Validation objective for tuning: mean NDCG@k."""
    def score(rankings, truths) -> float:
        return mean_over(per_playlist(rankings, truths, [k]))[f"ndcg@{k}"]
    return score


def reordered_by(order: Sequence[str], songs: Sequence[str]) -> list[str]:
    """``songs``, those that ``order`` holds first and in its order, then the rest in their own order: with a
    model's ranking and the list it read, the list in the model's order, or the model's picks in the list's
    (how much of a model's gain or loss over its list is ordering and how much is choice)."""
    kept = set(songs)
    first = [song for song in dict.fromkeys(order) if song in kept]
    taken = set(first)
    return first + [song for song in dict.fromkeys(songs) if song not in taken]


def coverage(rankings: Sequence[Sequence[str]], catalogue_size: int) -> float:
    """Share of the catalogue recommended to at least one playlist."""
    return len({song for ranked in rankings for song in ranked}) / max(catalogue_size, 1)


def duplicate_rate(rankings: Sequence[Sequence[str]]) -> float:
    total = sum(len(r) for r in rankings)
    return sum(len(r) - len(set(r)) for r in rankings) / total if total else 0.0


def lcs_length(a: Sequence, b: Sequence) -> int:
    """Longest common subsequence, bit-parallel (Hyyrö 2004): O(len(a)) big-integer operations."""
    if not a or not b:
        return 0
    masks: dict = {}
    for i, token in enumerate(b):
        masks[token] = masks.get(token, 0) | (1 << i)
    full = (1 << len(b)) - 1
    v = full
    for token in a:
        u = v & masks.get(token, 0)
        v = ((v + u) | (v - u)) & full
    return len(b) - bin(v).count("1")


def rouge_l(prediction: Sequence[str], reference: Sequence[str]) -> float:
    lcs = lcs_length(prediction, reference)
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(prediction), lcs / len(reference)
    return 2 * precision * recall / (precision + recall)


def bleu4(prediction: Sequence[str], reference: Sequence[str]) -> float:
    if not prediction or not reference:
        return 0.0
    # Imported here: the generator reads this module (NDCG) and need not pay for nltk at start.
    from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu

    return float(sentence_bleu([list(reference)], list(prediction), smoothing_function=SmoothingFunction().method1))


def id_f1(prediction: Sequence[tuple], reference: Sequence[tuple]) -> float:
    predicted, truth = set(prediction), set(reference)
    common = len(predicted & truth)
    if not common:
        return 0.0
    precision, recall = common / len(predicted), common / len(truth)
    return 2 * precision * recall / (precision + recall)


def sequence_metrics(rankings: Sequence[Sequence[str]], truths: Sequence[Sequence[str]],
                     song_ids: dict[str, tuple[str, ...]]) -> dict[str, float]:
    """ROUGE-L, BLEU-4 and semantic-ID F1 of each ranking's top-R songs, averaged over playlists."""
    scores: dict[str, list[float]] = {"rouge_l": [], "bleu4": [], "semantic_id_f1": []}
    for ranked, truth in zip(rankings, truths):
        reference_ids = [song_ids[s] for s in truth if s in song_ids]
        if not reference_ids:
            continue
        predicted_ids = [song_ids[s] for s in _distinct(ranked)[:len(reference_ids)] if s in song_ids]
        reference = [t for ids in reference_ids for t in ids]
        prediction = [t for ids in predicted_ids for t in ids]
        scores["rouge_l"].append(rouge_l(prediction, reference))
        scores["bleu4"].append(bleu4(prediction, reference))
        scores["semantic_id_f1"].append(id_f1(predicted_ids, reference_ids))
    return {name: float(np.mean(values)) if values else float("nan") for name, values in scores.items()}


def popularity_buckets(rankings: Sequence[Sequence[str]], truths: Sequence[Sequence[str]],
                       popularity_rank: dict[str, int], edges: Sequence[int] = (100, 1000)) -> dict[str, dict]:
    """Recall of ground-truth songs split by how popular they are in training (micro-averaged).

    Buckets: rank < 100 ("head"), 100 <= rank < 1000 ("mid"), the rest and unseen songs ("tail").
    """
    names = [f"top_{edges[0]}", f"top_{edges[0]}_{edges[1]}", "tail"]
    found = dict.fromkeys(names, 0)
    total = dict.fromkeys(names, 0)
    for ranked, truth in zip(rankings, truths):
        recommended = set(ranked)
        for song in set(truth):
            rank = popularity_rank.get(song, math.inf)
            name = names[0] if rank < edges[0] else names[1] if rank < edges[1] else names[2]
            total[name] += 1
            found[name] += song in recommended
    return {name: {"truth_songs": total[name], "recall": found[name] / total[name] if total[name] else float("nan")}
            for name in names}


def share_in(rankings: Sequence[Sequence[str]], songs: set[str]) -> float:
    """Share of all recommended songs that are in ``songs`` (e.g. the popularity top-100)."""
    total = sum(len(r) for r in rankings)
    return sum(song in songs for r in rankings for song in r) / total if total else 0.0
