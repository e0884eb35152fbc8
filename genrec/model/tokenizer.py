"""The T5 tokenizer: title text in, semantic-ID tokens out, each ID token exactly one token id.

From scratch, a byte-level BPE is trained on the training titles: every string (Chinese, emoji,
mixed scripts) is representable as bytes, so nothing becomes ``<unk>`` and decoding gives the
title back, case-folded (NFKC and lowercase). From a pretrained T5 folder, that model's own tokenizer is used. Either way the
semantic-ID tokens are added as whole tokens, and ids 0/1/2 follow T5's convention
(``<pad>``, ``</s>``, ``<unk>``; pad doubles as the decoder start token).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import AutoTokenizer, PreTrainedTokenizerBase, PreTrainedTokenizerFast

from genrec.errors import ConfigError
from genrec.corpus.id_tokens import SemanticIdVocab

log = logging.getLogger(__name__)

PAD, EOS, UNK = "<pad>", "</s>", "<unk>"


def train_title_tokenizer(titles: list[str], vocab_size: int) -> PreTrainedTokenizerFast:
    """A byte-level BPE trained on ``titles``, appending </s> like T5's own tokenizer."""
    bpe = Tokenizer(models.BPE(unk_token=UNK))
    # Titles are folded (NFKC, lowercase) so "Chill", "chill" and full-width "ｃｈｉｌｌ" are one title.
    bpe.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[PAD, EOS, UNK], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    bpe.train_from_iterator(titles, trainer=trainer)
    bpe.post_processor = processors.TemplateProcessing(single=f"$A {EOS}", pair=f"$A {EOS} $B {EOS}",
                                                       special_tokens=[(EOS, bpe.token_to_id(EOS))])
    return PreTrainedTokenizerFast(tokenizer_object=bpe, pad_token=PAD, eos_token=EOS, unk_token=UNK)


def is_t5_folder(path: Path) -> bool:
    config_file = path / "config.json"
    if not config_file.is_file():
        return False
    try:
        return json.loads(config_file.read_text(encoding="utf-8")).get("model_type") in ("t5", "mt5")
    except json.JSONDecodeError:
        return False


def check_pretrained_folder(model_name: str) -> Path:
    """The local folder of a pretrained T5, or ConfigError saying what is wrong with it."""
    path = Path(model_name)
    if not path.is_dir():
        raise ConfigError(f"network.pretrained={model_name!r} is not a local folder (no downloads are made: "
                          "download the model yourself, or leave it empty to train from scratch)")
    if not is_t5_folder(path):
        raise ConfigError(f"network.pretrained={model_name!r} is not a Hugging Face T5 folder "
                          "(its config.json must say model_type t5 or mt5)")
    return path


def load_pretrained_tokenizer(model_name: str) -> PreTrainedTokenizerBase:
    path = check_pretrained_folder(model_name)
    try:
        return AutoTokenizer.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError) as err:
        raise ConfigError(f"cannot load the tokenizer in {path} ({err})".replace("\n", " ")) from None


def add_id_tokens(tokenizer: PreTrainedTokenizerBase, vocab: SemanticIdVocab) -> int:
    """Add every semantic-ID token as one whole token; return how many were new."""
    added = tokenizer.add_tokens(vocab.all_tokens())
    check_id_tokens(tokenizer, vocab)
    return added


def check_id_tokens(tokenizer: PreTrainedTokenizerBase, vocab: SemanticIdVocab) -> None:
    unknown = [t for t in vocab.all_tokens() if tokenizer.convert_tokens_to_ids(t) in (None, tokenizer.unk_token_id)]
    if unknown:
        raise ConfigError(f"the tokenizer has no single token for semantic-ID token(s) {unknown[:5]}")


def build_tokenizer(model_name: str, titles: list[str], text_vocab_size: int,
                    vocab: SemanticIdVocab) -> PreTrainedTokenizerBase:
    tokenizer = (load_pretrained_tokenizer(model_name) if model_name
                 else train_title_tokenizer(titles, text_vocab_size))
    added = add_id_tokens(tokenizer, vocab)
    log.info("tokenizer: %d tokens (%d semantic-ID tokens added)", len(tokenizer), added)
    return tokenizer


def unknown_share(tokenizer: PreTrainedTokenizerBase, titles: list[str]) -> float:
    """Share of title tokens that are <unk> (0 for the byte-level tokenizer; a check on pretrained ones)."""
    ids = tokenizer(titles, add_special_tokens=False)["input_ids"]
    total = sum(map(len, ids))
    unk = sum(row.count(tokenizer.unk_token_id) for row in ids)
    return unk / total if total else 0.0
