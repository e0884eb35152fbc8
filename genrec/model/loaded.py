"""A loaded TIGER model and what decoding reads beside it, whichever way the network itself was loaded.

genrec.model.t5.load_tiger loads the network with transformers (training, the evaluation); the generator loads it
with genrec.serve.inference, in plain torch. Both end in :func:`assemble_bundle`, so the title encoder, the
training titles' saved vectors and the retriever come to both from the same code. This module imports neither
transformers nor sentence-transformers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import torch

from genrec.corpus.id_tokens import SemanticIdVocab
from genrec.errors import ArtifactError
from genrec.model.retrieval import SongRetriever, load_retriever, song_token_ids
from genrec.model.title_vectors import TitleVectorEncoder
from genrec.text import fold_script

TITLE_VECTORS_FILE = "retrieval_title_vectors.npz"


def resolve_device(name: str) -> str:
    """'auto' becomes 'cuda' when a GPU is present, else 'cpu'."""
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


def read_model_config(model_dir: Path) -> dict:
    """A trained model folder's ``config.json`` as a dict (the export and the plain-torch loader read it as data)."""
    try:
        return json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ArtifactError(f"{model_dir}/config.json is missing or unreadable ({err}): rerun train_tiger.py") from None


@dataclass
class TigerBundle:
    model: Any
    """genrec.model.t5.TigerT5, or genrec.serve.inference.TigerInference."""
    tokenizer: Any
    """A transformers tokenizer, or genrec.serve.inference.ServingTokenizer (the few methods decoding uses)."""
    vocab: SemanticIdVocab
    target_mode: str
    max_input_length: int
    manifest: dict
    title_encoder: TitleVectorEncoder | None = None
    retriever: SongRetriever | None = None
    title_script: str = ""  # fold every title into this script before the model or its retriever reads it
    seed_songs: int = 0
    """The most seed songs the model reads (genrec.model.seed_songs); 0: it reads the title alone."""

    @cached_property
    def seed_token_ids(self) -> dict[str, tuple[int, ...]]:
        """Each catalogue song's ID tokens, as a model that reads seed songs takes them (made on first use)."""
        return song_token_ids(self.vocab, self.tokenizer)

    def model_titles(self, titles: list[str]) -> list[str]:
        """Titles as this model's training titles were written (genrec.text.fold_script)."""
        return [fold_script(t, self.title_script) for t in titles]


def assemble_bundle(model, tokenizer, vocab: SemanticIdVocab, model_dir: Path, manifest: dict, config: dict,
                    title_encoder: str | Path | None = None, plain_torch: bool = False) -> TigerBundle:
    """The bundle of a loaded network: its title encoder (``title_encoder`` overrides where it is loaded from) with
    the training titles' saved vectors, and its retriever when the model reads retrieved songs."""
    summary = manifest["summary"]
    encoder_name = config.get("title_encoder")
    encoder = TitleVectorEncoder(str(title_encoder or encoder_name), plain_torch) if encoder_name else None
    if encoder is not None and (model_dir / TITLE_VECTORS_FILE).is_file():
        encoder.load(model_dir / TITLE_VECTORS_FILE)
    retriever = (load_retriever(model_dir, vocab, tokenizer, encoder.array if encoder else None)
                 if config.get("retrieved_songs") else None)
    return TigerBundle(model, tokenizer, vocab, summary["target_mode"], int(summary["max_input_length"]), manifest,
                       encoder, retriever, config.get("title_script") or "", int(config.get("seed_songs") or 0))
