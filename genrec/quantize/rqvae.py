"""Stage 1, method A: RQ-VAE, an MLP autoencoder whose latent is quantised by residual codebooks.

Public RQ-VAE ports collapse (every song on one code) with the paper's settings. This trainer
follows what careful reproductions do instead:

1. inputs are standardised per dimension (mean and std are buffers of the model, saved with it);
2. a short autoencoder warm-up, then every level's codebook is initialised by residual k-means
   (:func:`genrec.quantize.rq_kmeans.train_rq_kmeans`) on the latents of real songs;
3. dead-code reset: a code no training song has used for ``dead_code_epochs`` epochs is re-seeded
   from a current residual at its level, so it is used again at once;
4. AdamW (no weight decay on the codebooks, which would pull unused codes to the origin), a
   validation slice of songs, early stopping on validation loss, and the best checkpoint kept.

Loss = reconstruction MSE (standardised space) + per level ``||sg[r] - e||^2`` (codebook) +
``commitment_cost * ||r - sg[e]||^2`` (commitment); the decoder sees the quantised latent through a
straight-through estimator. After training the final per-level usage and perplexity are checked
against the no-collapse bars and a level below them is reported as collapsed.

Model folder ``models/rqvae/``: ``model.pt`` (architecture + state dict) and ``manifest.json``.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from config import IdsConfig, RQVAEConfig

from genrec.quantize import rq_kmeans
from genrec.errors import ArtifactError, ConfigError
from genrec.quantize.report import level_usage_and_perplexity

log = logging.getLogger(__name__)

MODEL_FILE = "model.pt"
USAGE_BAR = 0.9
"""A level must use at least this share of its codes ..."""
PERPLEXITY_BAR = 0.5
"""... and reach a perplexity of at least this share of the codebook size, or it has collapsed."""
ENCODE_BATCH = 8192


def pick_device(choice: str) -> torch.device:
    """'auto' takes the GPU when torch sees one; 'cuda' without one is a configuration error."""
    if choice == "cuda" and not torch.cuda.is_available():
        raise ConfigError("run.device is 'cuda' but torch sees no GPU: use --run.device cpu or auto")
    if choice == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda")


@contextlib.contextmanager
def single_cpu_thread(device: torch.device):
    """Run torch on one CPU thread, restoring the setting afterwards.

    The batches of this small MLP are too small to gain from intra-op threads, and on a shared
    machine the spinning OpenMP threads cost far more than they give (docs/experiments/quantizers.md).
    GPU runs are left alone.
    """
    if device.type != "cpu":
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def mlp(widths: list[int]) -> nn.Sequential:
    """Linear layers with ReLU between them (none after the last, so outputs are unbounded)."""
    layers: list[nn.Module] = []
    for i, (width_in, width_out) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(nn.Linear(width_in, width_out))
        if i < len(widths) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class RQVAE(nn.Module):
    """Encoder -> residual quantiser -> mirrored decoder, on standardised song vectors."""

    def __init__(self, input_dim: int, hidden_sizes: list[int], latent_dim: int, levels: int, vocab_size: int,
                 commitment_cost: float = 0.25):
        super().__init__()
        self.architecture = {"input_dim": input_dim, "hidden_sizes": list(hidden_sizes), "latent_dim": latent_dim,
                             "levels": levels, "vocab_size": vocab_size, "commitment_cost": commitment_cost}
        self.commitment_cost = commitment_cost
        self.encoder = mlp([input_dim, *hidden_sizes, latent_dim])
        self.decoder = mlp([latent_dim, *reversed(hidden_sizes), input_dim])
        self.codebooks = nn.Parameter(torch.randn(levels, vocab_size, latent_dim))
        self.register_buffer("mean", torch.zeros(input_dim))
        self.register_buffer("std", torch.ones(input_dim))

    def standardize(self, vectors: torch.Tensor) -> torch.Tensor:
        return (vectors - self.mean) / self.std

    def unstandardize(self, vectors: torch.Tensor) -> torch.Tensor:
        return vectors * self.std + self.mean

    def quantize(self, latent: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Codes (n, levels), the quantised latent (sum of chosen codes) and the codebook+commitment loss."""
        residual, quantized = latent, torch.zeros_like(latent)
        codes, loss = [], latent.new_zeros(())
        for codebook in self.codebooks:
            code = nearest_code(residual.detach(), codebook.detach())
            chosen = codebook[code]
            loss = loss + torch.mean((chosen - residual.detach()) ** 2)
            loss = loss + self.commitment_cost * torch.mean((residual - chosen.detach()) ** 2)
            quantized = quantized + chosen
            residual = residual - chosen.detach()
            codes.append(code)
        return torch.stack(codes, dim=1), quantized, loss

    def forward(self, standardized: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Total loss, reconstruction loss and codes for a batch of standardised vectors."""
        latent = self.encoder(standardized)
        codes, quantized, quant_loss = self.quantize(latent)
        straight_through = latent + (quantized - latent).detach()
        recon_loss = torch.mean((self.decoder(straight_through) - standardized) ** 2)
        return recon_loss + quant_loss, recon_loss, codes

    def decode_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """Reconstruction in the original vector space (so cosines compare with RQ-KMeans')."""
        quantized = sum(self.codebooks[level][codes[:, level]] for level in range(codes.shape[1]))
        return self.unstandardize(self.decoder(quantized))


def nearest_code(points: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """Index of the nearest code (squared L2) for every point."""
    distances = (points.pow(2).sum(1, keepdim=True) - 2 * points @ codebook.T + codebook.pow(2).sum(1))
    return distances.argmin(dim=1)


@dataclass
class RQVAESettings(RQVAEConfig):
    """What one RQ-VAE training needs: the ``rqvae`` group, the ID shape (``ids`` group) and fixed settings."""

    levels: int = 3
    vocab_size: int = 32
    commitment_cost: float = 0.25
    weight_decay: float = 1e-4
    """AdamW weight decay (not applied to the codebooks)."""
    dead_code_epochs: int = 2
    """Re-seed a code from current residuals when it has been unused for this many epochs (0: never)."""
    val_ratio: float = 0.1
    """Share of songs held out to pick the best checkpoint."""
    warmup_epochs: int = 10
    """Plain autoencoder epochs before the codebooks are initialised (0: none)."""
    kmeans_niter: int = 20
    """k-means iterations per level for the codebook initialisation."""

    @classmethod
    def from_config(cls, ids: IdsConfig, vae: RQVAEConfig) -> "RQVAESettings":
        return cls(**asdict(vae), levels=ids.levels, vocab_size=ids.codebook_size)


def build_model(input_dim: int, cfg: RQVAESettings) -> RQVAE:
    return RQVAE(input_dim, cfg.hidden_sizes, cfg.latent_dim, cfg.levels, cfg.vocab_size, cfg.commitment_cost)


# ---------------------------------------------------------------------------------------------- training


@dataclass
class TrainedRQVAE:
    model: RQVAE
    codes: np.ndarray
    """Codes of every song given to :func:`train_rqvae`, in order."""
    best_epoch: int
    best_val_loss: float
    codes_reset: int
    """Dead codes re-seeded over the whole run."""
    collapsed: list[dict]
    """Levels below the no-collapse bars: {level, usage, perplexity}."""


def split_songs(n_songs: int, val_ratio: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Shuffled train and validation song indices; with no validation songs, validate on train."""
    order = np.random.default_rng(seed).permutation(n_songs)
    n_val = int(round(n_songs * val_ratio))
    if n_val == 0 or n_val == n_songs:
        log.warning("rqvae.val_ratio=%s leaves no validation slice: early stopping watches the training loss",
                    val_ratio)
        return order, order
    log.info("%d training songs, %d validation songs (rqvae.val_ratio=%s)", n_songs - n_val, n_val, val_ratio)
    return order[n_val:], order[:n_val]


def check_sizes(n_train: int, cfg: RQVAESettings) -> None:
    if n_train < cfg.vocab_size:
        raise ConfigError(f"only {n_train} training songs for {cfg.vocab_size} codes per level: lower "
                          f"ids.codebook_size to at most {n_train} (or rqvae.val_ratio)")
    wanted = rq_kmeans.FAISS_MIN_POINTS_PER_CENTROID * cfg.vocab_size
    if n_train < wanted:
        log.warning("%d training songs for %d codes per level: the k-means initialisation wants about %d; "
                    "consider ids.codebook_size=%d", n_train, cfg.vocab_size, wanted,
                    max(1, n_train // rq_kmeans.FAISS_MIN_POINTS_PER_CENTROID))


def train_rqvae(vectors: np.ndarray, cfg: RQVAESettings, seed: int, device: torch.device) -> TrainedRQVAE:
    """Train on ``vectors`` (n_songs, input_dim) and return the best checkpoint and every song's codes."""
    with single_cpu_thread(device):
        return _train_rqvae(vectors, cfg, seed, device)


def _train_rqvae(vectors: np.ndarray, cfg: RQVAESettings, seed: int, device: torch.device) -> TrainedRQVAE:
    train_idx, val_idx = split_songs(len(vectors), cfg.val_ratio, seed)
    check_sizes(len(train_idx), cfg)
    torch.manual_seed(seed)
    model = build_model(vectors.shape[1], cfg).to(device)
    data = torch.as_tensor(vectors, dtype=torch.float32, device=device)
    model.mean.copy_(data[train_idx].mean(0))
    model.std.copy_(data[train_idx].std(0, correction=0).clamp_min(1e-6))  # a constant dimension stays finite
    standardized = model.standardize(data)
    train, val = standardized[train_idx], standardized[val_idx]
    log.info("RQ-VAE: %d songs x %d dims, %d levels x %d codes, on %s", len(vectors), vectors.shape[1],
             cfg.levels, cfg.vocab_size, device)
    generator = torch.Generator().manual_seed(seed)
    warm_up(model, train, cfg, generator)
    init_codebooks(model, train, cfg, seed)
    trainer = Trainer(model, cfg, generator)
    best_state, best_epoch, best_loss, stale = copy.deepcopy(model.state_dict()), 0, math.inf, 0
    progress = tqdm(range(1, cfg.epochs + 1), desc="RQ-VAE epochs", unit="epoch")
    for epoch in progress:
        train_loss = trainer.epoch(train)
        reset = reset_dead_codes(model, train, trainer.idle, cfg.dead_code_epochs, generator) \
            if cfg.dead_code_epochs else 0
        trainer.codes_reset += reset
        val_loss = evaluate_loss(model, val)
        progress.set_postfix(train=f"{train_loss:.4f}", val=f"{val_loss:.4f}", reset=reset)
        log.debug("epoch %d: train loss %.5f, validation loss %.5f, %d dead codes reset", epoch, train_loss,
                  val_loss, reset)
        if val_loss < best_loss:
            best_state, best_epoch, best_loss, stale = copy.deepcopy(model.state_dict()), epoch, val_loss, 0
        else:
            stale += 1
            if stale >= cfg.patience:
                log.info("early stop at epoch %d: no validation improvement for %d epochs", epoch, cfg.patience)
                break
    progress.close()
    model.load_state_dict(best_state)
    codes = encode(model, vectors)
    collapsed = collapsed_levels(codes, cfg.vocab_size)
    log.info("best epoch %d (validation loss %.5f); %d dead codes reset during training", best_epoch, best_loss,
             trainer.codes_reset)
    return TrainedRQVAE(model, codes, best_epoch, best_loss, trainer.codes_reset, collapsed)


def batches(n: int, batch_size: int, generator: torch.Generator):
    order = torch.randperm(n, generator=generator)
    return order.split(batch_size)


def warm_up(model: RQVAE, train: torch.Tensor, cfg: RQVAESettings, generator: torch.Generator) -> None:
    """Plain autoencoder epochs (no quantiser), so k-means initialises codebooks on meaningful latents."""
    if not cfg.warmup_epochs:
        return
    params = list(model.encoder.parameters()) + list(model.decoder.parameters())
    optimizer = torch.optim.AdamW(params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    model.train()
    for _ in tqdm(range(cfg.warmup_epochs), desc="RQ-VAE warm-up", unit="epoch"):
        for batch in batches(len(train), cfg.batch_size, generator):
            x = train[batch.to(train.device)]
            loss = torch.mean((model.decoder(model.encoder(x)) - x) ** 2)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()


@torch.no_grad()
def init_codebooks(model: RQVAE, train: torch.Tensor, cfg: RQVAESettings, seed: int) -> None:
    """Residual k-means on the training songs' latents (random codes collapse: docs/experiments/)."""
    latents = model.encoder(train)
    kmeans_cfg = rq_kmeans.RQKMeansSettings(levels=cfg.levels, vocab_size=cfg.vocab_size, niter=cfg.kmeans_niter,
                                            use_gpu=latents.is_cuda)
    codebooks = rq_kmeans.train_rq_kmeans(latents.cpu().numpy(), kmeans_cfg, seed, "ids.codebook_size")
    model.codebooks.copy_(torch.as_tensor(codebooks, device=latents.device))


class Trainer:
    """One optimizer over the whole model; tracks for how many epochs each code has gone unused."""

    def __init__(self, model: RQVAE, cfg: RQVAESettings, generator: torch.Generator):
        self.model, self.batch_size, self.generator = model, cfg.batch_size, generator
        networks = list(model.encoder.parameters()) + list(model.decoder.parameters())
        self.optimizer = torch.optim.AdamW([{"params": networks, "weight_decay": cfg.weight_decay},
                                            {"params": [model.codebooks], "weight_decay": 0.0}],
                                           lr=cfg.learning_rate)
        self.idle = torch.zeros(cfg.levels, cfg.vocab_size, dtype=torch.long, device=model.codebooks.device)
        self.codes_reset = 0

    def epoch(self, train: torch.Tensor) -> float:
        self.model.train()
        used = torch.zeros_like(self.idle, dtype=torch.bool)
        total = 0.0
        for batch in batches(len(train), self.batch_size, self.generator):
            loss, _, codes = self.model(train[batch.to(train.device)])
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            for level in range(codes.shape[1]):
                used[level, codes[:, level]] = True
            total += loss.item() * len(batch)
        self.idle = torch.where(used, torch.zeros_like(self.idle), self.idle + 1)
        return total / len(train)


@torch.no_grad()
def reset_dead_codes(model: RQVAE, train: torch.Tensor, idle: torch.Tensor, dead_after: int,
                     generator: torch.Generator) -> int:
    """Re-seed codes idle for ``dead_after`` epochs from this level's current residuals; return how many.

    Each re-seeded code copies a distinct training song's residual, so it is that song's nearest
    code at once and the level's usage recovers; deeper levels then see the updated residuals.
    """
    residual = model.encoder(train)
    reset = 0
    for level, codebook in enumerate(model.codebooks):
        dead = torch.nonzero(idle[level] >= dead_after).flatten()
        if len(dead):
            donors = torch.randperm(len(residual), generator=generator)[:len(dead)].to(residual.device)
            codebook[dead] = residual[donors]
            idle[level, dead] = 0
            reset += len(dead)
        residual = residual - codebook[nearest_code(residual, codebook)]
    return reset


@torch.no_grad()
def evaluate_loss(model: RQVAE, standardized: torch.Tensor) -> float:
    model.eval()
    total = 0.0
    for batch in standardized.split(ENCODE_BATCH):
        total += float(model(batch)[0]) * len(batch)
    return total / len(standardized)


def collapsed_levels(codes: np.ndarray, vocab_size: int) -> list[dict]:
    """Levels whose usage or perplexity is below the no-collapse bars, with a warning for each."""
    usage, perplexity = level_usage_and_perplexity(codes, vocab_size)
    collapsed = []
    for level, (used, perp) in enumerate(zip(usage, perplexity), start=1):
        if used < USAGE_BAR or perp < PERPLEXITY_BAR * vocab_size:
            collapsed.append({"level": level, "usage": used, "perplexity": perp})
            log.warning("RQ-VAE level %d collapsed: uses %.0f%% of %d codes (bar %.0f%%), perplexity %.1f (bar %.1f)"
                        "; keep dead-code reset on (rqvae.dead_code_epochs) and k-means initialisation",
                        level, 100 * used, vocab_size, 100 * USAGE_BAR, perp, PERPLEXITY_BAR * vocab_size)
    return collapsed


# ------------------------------------------------------------------------------------------ inference / io


@torch.no_grad()
def encode(model: RQVAE, vectors: np.ndarray) -> np.ndarray:
    """Codes (n_songs, levels) of raw (unstandardised) song vectors."""
    model.eval()
    device = model.codebooks.device
    codes = []
    for chunk in torch.as_tensor(vectors, dtype=torch.float32).split(ENCODE_BATCH):
        latent = model.encoder(model.standardize(chunk.to(device)))
        codes.append(model.quantize(latent)[0].cpu())
    return torch.cat(codes).numpy().astype(np.int64)


@torch.no_grad()
def decode(model: RQVAE, codes: np.ndarray) -> np.ndarray:
    """Reconstructed song vectors, in the original space, for codes (n_songs, levels)."""
    model.eval()
    device = model.codebooks.device
    parts = [model.decode_codes(chunk.to(device)).cpu() for chunk in torch.as_tensor(codes).split(ENCODE_BATCH)]
    return torch.cat(parts).numpy()


def save_model(model: RQVAE, path: Path) -> None:
    """Write architecture and weights to ``path`` (a file inside the staged model folder)."""
    state = {name: tensor.cpu() for name, tensor in model.state_dict().items()}
    torch.save({"architecture": model.architecture, "state_dict": state}, path)


def load_model(path: Path, device: torch.device) -> RQVAE:
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
        model = RQVAE(**saved["architecture"])
        model.load_state_dict(saved["state_dict"])
    except Exception as err:  # any unreadable or mismatched file means the same thing to the user
        raise ArtifactError(f"{path} is not a readable RQ-VAE model ({type(err).__name__}): rerun train_rqvae.py"
                            ) from err
    return model.to(device).eval()
