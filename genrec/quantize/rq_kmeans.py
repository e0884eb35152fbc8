"""Stage 1, method B: residual k-means (RQ-KMeans) with faiss.

Per level: k-means on the current residuals, assign each song its nearest centroid, subtract it.
A song's semantic ID is its tuple of per-level centroid indices; its reconstruction is the sum of
those centroids. Codebooks are saved as ``models/rq_kmeans_codebooks.npy``, shape (levels, vocab, dim).
"""

from __future__ import annotations

import logging
import math

import faiss
import numpy as np
from tqdm import tqdm

from dataclasses import asdict, dataclass

from config import IdsConfig, RQKMeansConfig

from genrec.errors import ConfigError

log = logging.getLogger(__name__)

FAISS_MIN_POINTS_PER_CENTROID = 39  # below this faiss warns that k-means is poorly determined


def gpu_available() -> bool:
    return hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0


def check_codebook_size(n_points: int, vocab_size: int, vocab_field: str = "ids.codebook_size") -> None:
    """Fail clearly when k-means cannot run; warn when it runs on too little data to be reliable."""
    if n_points < vocab_size:
        raise ConfigError(f"only {n_points} songs for {vocab_size} codes per level: lower {vocab_field} "
                          f"to at most {n_points} (about {max(1, n_points // FAISS_MIN_POINTS_PER_CENTROID)} "
                          "gives reliable centroids)")
    if n_points < FAISS_MIN_POINTS_PER_CENTROID * vocab_size:
        log.warning("%d songs for %d codes per level: k-means wants about %d points per code "
                    "(%d songs); codes will be noisy. Consider %s=%d", n_points, vocab_size,
                    FAISS_MIN_POINTS_PER_CENTROID, FAISS_MIN_POINTS_PER_CENTROID * vocab_size, vocab_field,
                    max(1, n_points // FAISS_MIN_POINTS_PER_CENTROID))


@dataclass
class RQKMeansSettings(RQKMeansConfig):
    """What one RQ-KMeans fit needs: the ``rqkmeans`` group, the ID shape (``ids`` group) and where to run."""

    levels: int = 3
    vocab_size: int = 32
    use_gpu: bool = True
    """GPU faiss when it is installed and a GPU is present."""

    @classmethod
    def from_config(cls, ids: IdsConfig, kmeans: RQKMeansConfig, device: str) -> "RQKMeansSettings":
        return cls(**asdict(kmeans), levels=ids.levels, vocab_size=ids.codebook_size, use_gpu=device != "cpu")


def train_rq_kmeans(vectors: np.ndarray, cfg: RQKMeansSettings, seed: int,
                    vocab_field: str = "ids.codebook_size") -> np.ndarray:
    """Fit ``cfg.levels`` codebooks of ``cfg.vocab_size`` centroids on successive residuals.

    ``vocab_field`` names the setting to change in messages (RQ-VAE reuses this for its initialisation).
    """
    data = np.ascontiguousarray(vectors, dtype=np.float32)
    n, dim = data.shape
    check_codebook_size(n, cfg.vocab_size, vocab_field)
    use_gpu = cfg.use_gpu and gpu_available()
    log.info("RQ-KMeans: %d songs x %d dims, %d levels x %d codes, %s faiss", n, dim, cfg.levels,
             cfg.vocab_size, "GPU" if use_gpu else "CPU")
    residual = data.copy()
    codebooks = np.zeros((cfg.levels, cfg.vocab_size, dim), dtype=np.float32)
    for level in tqdm(range(cfg.levels), desc="RQ-KMeans levels", unit="level"):
        kmeans = faiss.Kmeans(dim, cfg.vocab_size, niter=cfg.niter, seed=faiss_seed(seed + level), gpu=use_gpu,
                              max_points_per_centroid=math.ceil(n / cfg.vocab_size),  # every song: no faiss subsample
                              min_points_per_centroid=1, verbose=False)
        kmeans.train(residual)
        codebooks[level] = kmeans.centroids
        codes = assign(residual, codebooks[level])
        residual -= codebooks[level][codes]
        log.info("level %d: residual MSE %.5f", level + 1, float(np.mean(residual ** 2)))
    return codebooks


def assign(points: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Index of the nearest centroid (L2) for every point."""
    index = faiss.IndexFlatL2(centroids.shape[1])
    index.add(np.ascontiguousarray(centroids, dtype=np.float32))
    _, nearest = index.search(np.ascontiguousarray(points, dtype=np.float32), 1)
    return nearest[:, 0]


def encode(vectors: np.ndarray, codebooks: np.ndarray) -> np.ndarray:
    residual = np.ascontiguousarray(vectors, dtype=np.float32).copy()
    codes = np.zeros((len(vectors), len(codebooks)), dtype=np.int64)
    for level, centroids in enumerate(codebooks):
        codes[:, level] = assign(residual, centroids)
        residual -= centroids[codes[:, level]]
    return codes


def decode(codes: np.ndarray, codebooks: np.ndarray) -> np.ndarray:
    return sum(codebooks[level][codes[:, level]] for level in range(codebooks.shape[0]))


def faiss_seed(seed: int) -> int:
    """faiss takes a C int: any run seed, folded into its range."""
    return seed % 2 ** 31
