"""Faiss RQ-KMeans against the same algorithm on scikit-learn's KMeans: wall time and quality.

    python bench/rq_kmeans.py                       # 20,000 x 100 synthetic clustered vectors
    python bench/rq_kmeans.py --config data/spotify_mpd/config.yaml --songs 0   # real song vectors

Prints one table: seconds, Average Cosine Similarity and MSE for each, and the time ratio.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.cluster import KMeans

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from genrec.quantize import rq_kmeans  # noqa: E402
from genrec.cli import parse_config  # noqa: E402
from genrec.data.files import load_song_vectors  # noqa: E402
from genrec.quantize.report import average_cosine  # noqa: E402


def sklearn_rq_kmeans(vectors: np.ndarray, levels: int, vocab_size: int, niter: int, seed: int) -> np.ndarray:
    residual = vectors.copy()
    reconstruction = np.zeros_like(vectors)
    for level in range(levels):
        km = KMeans(vocab_size, max_iter=niter, n_init=1, random_state=seed + level).fit(residual)
        step = km.cluster_centers_[km.labels_].astype(np.float32)
        reconstruction += step
        residual -= step
    return reconstruction


def synthetic(n: int, dim: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(200, dim))
    return (centres[rng.integers(0, 200, n)] + 0.5 * rng.normal(size=(n, dim))).astype(np.float32)


def main() -> None:
    bench_args = argparse.ArgumentParser(add_help=False)
    bench_args.add_argument("--songs", type=int, default=20000, help="synthetic songs (0: read data.song_vector_file)")
    known, rest = bench_args.parse_known_args()
    cfg, _ = parse_config(rest, description=__doc__)
    vectors = synthetic(known.songs, cfg.data.input_dim, cfg.run.seed) if known.songs else \
        load_song_vectors(cfg.data).vectors
    q = rq_kmeans.RQKMeansSettings.from_config(cfg.ids, cfg.rqkmeans, cfg.run.device)
    print(f"{len(vectors)} vectors x {vectors.shape[1]} dims, {q.levels} levels x {q.vocab_size} codes, "
          f"{q.niter} iterations")
    start = time.perf_counter()
    codebooks = rq_kmeans.train_rq_kmeans(vectors, q, cfg.run.seed)
    faiss_recon = rq_kmeans.decode(rq_kmeans.encode(vectors, codebooks), codebooks)
    faiss_seconds = time.perf_counter() - start
    start = time.perf_counter()
    sk_recon = sklearn_rq_kmeans(vectors, q.levels, q.vocab_size, q.niter, cfg.run.seed)
    sk_seconds = time.perf_counter() - start
    print(f"{'implementation':16s}{'seconds':>10s}{'avg cosine':>12s}{'MSE':>10s}")
    for name, seconds, recon in (("faiss", faiss_seconds, faiss_recon), ("scikit-learn", sk_seconds, sk_recon)):
        print(f"{name:16s}{seconds:10.2f}{average_cosine(vectors, recon):12.4f}"
              f"{float(np.mean((vectors - recon) ** 2)):10.4f}")
    print(f"scikit-learn / faiss wall time: {sk_seconds / faiss_seconds:.1f}x")


if __name__ == "__main__":
    main()
