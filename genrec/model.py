"""The T5 model: building it, saving the final one atomically, and loading it for later stages.

``models/tiger_final/`` holds the weights and tokenizer (``from_pretrained`` loads both), a copy of
the semantic-ID vocabulary the model was trained with, the config it was trained with
(``config.yaml``, readable by ``--config``) and ``manifest.json``. The decoder starts from the pad
token (T5's default, id 0); an ID's tokens follow in order, then ``</s>``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoTokenizer, PreTrainedTokenizerBase, T5Config, T5ForConditionalGeneration

from config import Config, PlaylistTIGERConfig

from .artifacts import atomic_path, build_manifest, read_manifest, sha256_of, write_json
from .cli import config_as_dict, save_config
from .errors import ArtifactError
from .id_tokens import VOCAB_FILE, SemanticIdVocab
from .tokenizer import check_id_tokens, check_pretrained_folder

log = logging.getLogger(__name__)

FINAL_DIR = "tiger_final"
CHECKPOINT_DIR = "tiger_checkpoints"


def tiger_final_dir(cfg: Config) -> Path:
    return Path(cfg.run.model_dir) / FINAL_DIR


def checkpoint_dir(cfg: Config) -> Path:
    return Path(cfg.run.model_dir) / CHECKPOINT_DIR


def resolve_device(name: str) -> str:
    """'auto' becomes 'cuda' when a GPU is present, else 'cpu'."""
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


def build_model(tcfg: PlaylistTIGERConfig, tokenizer: PreTrainedTokenizerBase) -> T5ForConditionalGeneration:
    """A fresh T5 sized by the config, or the pretrained one with its embeddings grown for the ID tokens."""
    if tcfg.model_name:
        model = T5ForConditionalGeneration.from_pretrained(check_pretrained_folder(tcfg.model_name),
                                                           local_files_only=True)
        model.resize_token_embeddings(len(tokenizer))
    else:
        model = T5ForConditionalGeneration(T5Config(
            vocab_size=len(tokenizer), d_model=tcfg.d_model, d_kv=tcfg.d_kv, d_ff=tcfg.d_ff,
            num_layers=tcfg.num_layers, num_decoder_layers=tcfg.num_decoder_layers, num_heads=tcfg.num_heads,
            dropout_rate=tcfg.dropout, pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
            decoder_start_token_id=tokenizer.pad_token_id))
    model.config.dropout_rate = tcfg.dropout
    for target in (model.config, model.generation_config):
        target.pad_token_id = tokenizer.pad_token_id
        target.eos_token_id = tokenizer.eos_token_id
        target.decoder_start_token_id = tokenizer.pad_token_id
    log.info("model: %.2fM parameters%s", model.num_parameters() / 1e6,
             f" (from {tcfg.model_name})" if tcfg.model_name else "")
    return model


def save_final(final_dir: Path, model: T5ForConditionalGeneration, tokenizer: PreTrainedTokenizerBase,
               vocab_file: Path, cfg: Config, inputs: list[Path], summary: dict) -> None:
    """Write the whole folder beside the old one and swap it in, so a crash never leaves half a model."""
    with atomic_path(final_dir) as staged:
        staged.mkdir()
        model.save_pretrained(staged)
        tokenizer.save_pretrained(staged)
        (staged / VOCAB_FILE).write_bytes(Path(vocab_file).read_bytes())
        save_config(cfg, staged / "config.yaml")
        summary = dict(summary, corpus_vocab=str(vocab_file), vocab_sha256=sha256_of(vocab_file))
        manifest = build_manifest(staged, inputs, config_as_dict(cfg), summary)
        manifest["artifact"] = str(final_dir)
        write_json(staged / "manifest.json", manifest)


@dataclass
class TigerBundle:
    model: T5ForConditionalGeneration
    tokenizer: PreTrainedTokenizerBase
    vocab: SemanticIdVocab
    target_mode: str
    max_input_length: int
    manifest: dict


def check_vocab_matches(model_dir: Path, manifest: dict, corpus_vocab: str | Path | None) -> None:
    """Refuse a model trained on other semantic IDs than the corpus now in place."""
    summary = manifest.get("summary", {})
    recorded = summary.get("vocab_sha256")
    if recorded is None or sha256_of(model_dir / VOCAB_FILE) != recorded:
        raise ArtifactError(f"{model_dir / VOCAB_FILE} is missing or changed after training: rerun train_tiger.py")
    current = Path(corpus_vocab or summary.get("corpus_vocab", ""))
    if not current.is_file():
        if corpus_vocab:
            raise ArtifactError(f"{current} does not exist: run prepare_corpus.py first")
        log.warning("cannot check %s against the corpus: %s is absent here", model_dir, current)
        return
    if sha256_of(current) != recorded:
        raise ArtifactError(f"{model_dir} was trained on other semantic IDs than {current} (the corpus was "
                            "rebuilt since): rerun train_tiger.py")


def load_tiger(model_dir: str | Path, device: str = "cpu", corpus_vocab: str | Path | None = None) -> TigerBundle:
    """Load a model written by train_tiger.py, checked against the current corpus vocabulary.

    ``corpus_vocab`` defaults to the vocabulary file the model was trained from (as recorded).
    """
    model_dir = Path(model_dir)
    manifest = read_manifest(model_dir, "train_tiger.py")
    check_vocab_matches(model_dir, manifest, corpus_vocab)
    vocab = SemanticIdVocab.load(model_dir / VOCAB_FILE)
    try:
        model = T5ForConditionalGeneration.from_pretrained(model_dir, local_files_only=True)
        tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    except (OSError, ValueError) as err:
        raise ArtifactError(f"cannot load the model in {model_dir} ({err}): rerun train_tiger.py") from None
    check_id_tokens(tokenizer, vocab)
    summary = manifest["summary"]
    return TigerBundle(model.to(resolve_device(device)).eval(), tokenizer, vocab, summary["target_mode"],
                       int(summary["max_input_length"]), manifest)
