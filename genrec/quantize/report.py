"""How good a set of semantic IDs is, the same figures for every quantizer.

Report keys (``outputs/quantizer_report_<method>.json``): ``avg_cosine`` (mean cosine between a
song's vector and its reconstruction, the original's decision metric), ``mse``, ``usage`` and
``perplexity`` (one per level; usage = fraction of codes used), ``unique_fraction`` (share of songs
whose ID no other song has), ``max_group`` (most songs sharing one ID), ``neighbour_share`` (share
of a sampled song's 10 nearest neighbours by vector that share its first-level code) and
``neighbour_chance`` (the same share expected if codes were assigned at random with these sizes).
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from pathlib import Path

import faiss
import numpy as np

from genrec.artifacts import write_json

log = logging.getLogger(__name__)

METHODS = ("rq_kmeans", "rqvae")
NEIGHBOURS = 10


def report_path(output_dir: str, method: str) -> Path:
    return Path(output_dir) / f"quantizer_report_{method}.json"


def average_cosine(original: np.ndarray, reconstructed: np.ndarray) -> float:
    dot = np.sum(original * reconstructed, axis=1)
    norms = np.linalg.norm(original, axis=1) * np.linalg.norm(reconstructed, axis=1)
    return float(np.mean(dot / np.maximum(norms, 1e-12)))


def level_usage_and_perplexity(codes: np.ndarray, vocab_size: int) -> tuple[list[float], list[float]]:
    usage, perplexity = [], []
    for level in range(codes.shape[1]):
        counts = np.bincount(codes[:, level], minlength=vocab_size)
        p = counts[counts > 0] / counts.sum()
        usage.append(float(np.count_nonzero(counts) / vocab_size))
        perplexity.append(float(np.exp(-np.sum(p * np.log(p)))))
    return usage, perplexity


def collision_stats(codes: np.ndarray) -> tuple[float, int]:
    groups = Counter(map(tuple, codes.tolist()))
    unique = sum(1 for size in groups.values() if size == 1)
    return unique / len(codes), max(groups.values())


def neighbour_check(vectors: np.ndarray, first_codes: np.ndarray, sample: int, seed: int) -> tuple[float, float]:
    """Share of sampled songs' nearest neighbours (cosine) with the same first-level code, and chance."""
    n = len(vectors)
    k = min(NEIGHBOURS, n - 1)
    if k < 1:
        return float("nan"), float("nan")
    normed = np.ascontiguousarray(vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12),
                                  dtype=np.float32)
    picked = np.random.default_rng(seed).choice(n, size=min(sample, n), replace=False)
    index = faiss.IndexFlatIP(normed.shape[1])
    index.add(normed)
    _, neighbours = index.search(normed[picked], k + 1)
    shares = []
    for row, song in zip(neighbours, picked):
        others = [j for j in row if j != song][:k]
        shares.append(np.mean(first_codes[others] == first_codes[song]))
    sizes = np.bincount(first_codes)
    chance = np.mean((sizes[first_codes[picked]] - 1) / (n - 1))
    return float(np.mean(shares)), float(chance)


def quantizer_report(vectors: np.ndarray, reconstructed: np.ndarray, codes: np.ndarray, vocab_size: int,
                     seed: int, sample: int = 1000) -> dict:
    usage, perplexity = level_usage_and_perplexity(codes, vocab_size)
    unique_fraction, max_group = collision_stats(codes)
    share, chance = neighbour_check(vectors, codes[:, 0], sample, seed)
    return {
        "avg_cosine": average_cosine(vectors, reconstructed),
        "mse": float(np.mean((vectors - reconstructed) ** 2)),
        "usage": usage,
        "perplexity": perplexity,
        "unique_fraction": unique_fraction,
        "max_group": int(max_group),
        "neighbour_share": share,
        "neighbour_chance": chance,
        "songs": int(len(codes)),
        "levels": int(codes.shape[1]),
        "vocab_size": int(vocab_size),
    }


def format_report(method: str, report: dict) -> str:
    levels = ", ".join(f"L{i + 1} {u:.0%} / {p:.1f}" for i, (u, p) in
                       enumerate(zip(report["usage"], report["perplexity"])))
    return "\n".join([
        f"Quantizer: {method} ({report['songs']} songs, {report['levels']} levels x {report['vocab_size']} codes)",
        f"Average Cosine Similarity: {report['avg_cosine']:.4f}",
        f"Reconstruction MSE: {report['mse']:.5f}",
        f"Codebook usage / perplexity per level: {levels}",
        f"Songs with a unique ID: {report['unique_fraction']:.1%} (largest group sharing one ID: {report['max_group']})",
        f"Nearest-{NEIGHBOURS} neighbours sharing the first-level code: {report['neighbour_share']:.1%} "
        f"(chance: {report['neighbour_chance']:.1%})",
    ])


def save_report(output_dir: str, method: str, report: dict) -> Path:
    path = report_path(output_dir, method)
    write_json(path, report)
    return path


def side_by_side(output_dir: str, current_method: str | None) -> str | None:
    """A table of both methods' reports with a recommendation, or None unless both exist."""
    reports = {}
    for method in METHODS:
        path = report_path(output_dir, method)
        if not path.exists():
            return None
        reports[method] = json.loads(path.read_text(encoding="utf-8"))
    rows = [("Average Cosine Similarity", "avg_cosine", "{:.4f}"), ("Reconstruction MSE", "mse", "{:.5f}"),
            ("min codebook usage", "usage", "{:.0%}"), ("min perplexity", "perplexity", "{:.1f}"),
            ("unique-ID fraction", "unique_fraction", "{:.1%}"), ("largest ID group", "max_group", "{}"),
            ("neighbour share", "neighbour_share", "{:.1%}")]
    lines = [f"{'':28s}{'rq_kmeans':>12s}{'rqvae':>12s}"]
    for label, key, fmt in rows:
        cells = [reports[m][key] for m in METHODS]
        cells = [min(c) if isinstance(c, list) else c for c in cells]
        lines.append(f"{label:28s}" + "".join(f"{fmt.format(c):>12s}" for c in cells))
    best = max(METHODS, key=lambda m: reports[m]["avg_cosine"])
    other = [m for m in METHODS if m != best][0]
    advice = ("its IDs are in song_semantic_ids.jsonl now" if current_method == best
              else f"rerun train_{best}.py so song_semantic_ids.jsonl holds its IDs")
    lines.append(f"Recommendation: use {best} (Average Cosine Similarity {reports[best]['avg_cosine']:.4f} vs "
                 f"{reports[other]['avg_cosine']:.4f} for {other}); {advice}.")
    return "\n".join(lines)
