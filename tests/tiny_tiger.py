"""A tiny randomly initialised TIGER bundle for decoding tests (no training, a second to build)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from transformers import T5Config, T5ForConditionalGeneration

from genrec.corpus.id_tokens import SemanticIdVocab
from genrec.model.tokenizer import add_id_tokens, train_title_tokenizer

TITLES = ["summer beach", "late night drive", "worship", "夏日海边", "gym hits", "rainy day", "road trip 🚗"]


@dataclass
class TinyBundle:
    model: T5ForConditionalGeneration
    tokenizer: object
    vocab: SemanticIdVocab
    target_mode: str = "single"
    max_input_length: int = 16
    manifest: dict = field(default_factory=dict)
    title_encoder: object = None
    retriever: object = None


def tiny_vocab(n_songs: int = 60, levels: int = 2, vocab_size: int = 4, strategy: str = "suffix",
               seed: int = 0) -> SemanticIdVocab:
    """Songs s0..s{n-1} with random codes: few codes, so collisions (and suffixes) are plentiful."""
    codes = np.random.default_rng(seed).integers(0, vocab_size, size=(n_songs, levels))
    return SemanticIdVocab.build([f"s{i}" for i in range(n_songs)], codes, vocab_size, strategy)


def tiny_bundle(target_mode: str = "single", strategy: str = "suffix", n_songs: int = 60,
                seed: int = 0) -> TinyBundle:
    vocab = tiny_vocab(n_songs, strategy=strategy, seed=seed)
    tokenizer = train_title_tokenizer(TITLES * 5, 300)
    add_id_tokens(tokenizer, vocab)
    torch.manual_seed(seed)
    config = T5Config(vocab_size=len(tokenizer), d_model=32, d_kv=8, d_ff=64, num_layers=1, num_decoder_layers=1,
                      num_heads=2, pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                      decoder_start_token_id=tokenizer.pad_token_id)
    model = T5ForConditionalGeneration(config).eval()
    return TinyBundle(model, tokenizer, vocab, target_mode)
