"""The Trainer: Hugging Face's Seq2SeqTrainer with pooled targets, hidden titles, a generation probe and a
time budget.

Each evaluation computes the validation loss (on the (title, song) pairs of val playlists in single mode, and for a
model that reads seeds their continuation pairs too) and a cheap generation metric on a fixed sample of val
playlists; the best checkpoint by loss is kept.
"""

from __future__ import annotations

import json
import logging
import random
import time

import torch
from transformers import PreTrainedTokenizerBase, Seq2SeqTrainer, TrainerCallback

from genrec.corpus.build import CorpusRow
from genrec.corpus.id_tokens import SemanticIdVocab
from genrec.errors import ConfigError
from genrec.model.retrieval import KnownLists, SongRetriever
from genrec.model.t5 import title_inputs
from genrec.model.title_vectors import TitleVectorEncoder
from genrec.train.pooled_targets import pooled_loss

log = logging.getLogger(__name__)

GENERATION_K = 10
"""IDs the validation generation metric decodes per playlist."""
GENERATION_SAMPLE = 64
"""Validation playlists the generation metric decodes at each evaluation (a fixed seeded sample)."""


class GenerationProbe:
    """Hit rate of decoded songs in the playlist, on a fixed sample of val playlists (cheap, not the evaluation)."""

    def __init__(self, rows: list[CorpusRow], tokenizer: PreTrainedTokenizerBase, vocab: SemanticIdVocab,
                 target_mode: str, max_input_length: int, sample: int, seed: int,
                 title_encoder: TitleVectorEncoder | None = None, retriever: SongRetriever | KnownLists | None = None):
        self.rows = self.sample(rows, sample, seed)
        self.tokenizer, self.vocab, self.target_mode = tokenizer, vocab, target_mode
        self.max_input_length = max_input_length
        self.title_encoder, self.retriever = title_encoder, retriever

    @staticmethod
    def sample(rows: list[CorpusRow], size: int, seed: int) -> list[CorpusRow]:
        return random.Random(seed).sample(rows, min(size, len(rows)))

    @torch.no_grad()
    def __call__(self, model) -> dict:
        if not self.rows:
            return {}
        was_training = model.training
        model.eval()
        batch = title_inputs(model, self.tokenizer, [r.input_text for r in self.rows], self.max_input_length,
                             self.title_encoder, self.retriever)
        n = self.vocab.id_length
        if self.target_mode == "single":
            out = model.generate(**batch, num_beams=GENERATION_K, num_return_sequences=GENERATION_K,
                                 max_new_tokens=n + 1, do_sample=False)
        else:
            out = model.generate(**batch, num_beams=1, max_new_tokens=GENERATION_K * n + 1, do_sample=False)
        model.train(was_training)
        per_row = out.shape[0] // len(self.rows)
        hits, valid, decoded = 0, 0, 0
        for i, row in enumerate(self.rows):
            ids = []
            for seq in out[i * per_row:(i + 1) * per_row]:
                ids.extend(self.vocab.parse("".join(self.tokenizer.convert_ids_to_tokens(seq.tolist()))))
            ids = list(dict.fromkeys(ids))[:GENERATION_K]
            truth = set(row.song_ids)
            decoded += len(ids)
            valid += sum(1 for i_d in ids if self.vocab.songs_of(i_d))
            hits += sum(1 for i_d in ids if truth.intersection(self.vocab.songs_of(i_d)))
        return {f"hit_rate@{GENERATION_K}": hits / (GENERATION_K * len(self.rows)),
                "valid_id_share": valid / decoded if decoded else 0.0}


class TigerTrainer(Seq2SeqTrainer):
    """Seq2SeqTrainer whose evaluation adds the generation probe and keeps the time it takes."""

    def __init__(self, *args, probe: GenerationProbe | None = None, title_dropout: float = 0.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.probe = probe
        self.title_dropout = title_dropout
        self.eval_seconds = 0.0

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if model.training and self.title_dropout:
            inputs = hide_titles(inputs, self.title_dropout, self.processing_class.eos_token_id,
                                 self.processing_class.pad_token_id)
        if "target_ids" not in inputs:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        loss = pooled_loss(model, inputs)
        return (loss, None) if return_outputs else loss

    def evaluate(self, *args, **kwargs):
        start = time.perf_counter()
        metrics = super().evaluate(*args, **kwargs)
        if self.probe is not None:
            extra = {f"eval_{k}": v for k, v in self.probe(self.model).items()}
            metrics.update(extra)
            self.log(extra)
        self.eval_seconds += time.perf_counter() - start
        return metrics


def hide_titles(batch: dict, share: float, eos_id: int, pad_id: int) -> dict:
    """The batch with a random ``share`` of its examples reading the empty title (``</s>`` alone, a zero title
    vector) instead of their own; retrieved songs and targets stay (``retrieval.title_dropout``). Drawn from torch's
    seeded generator, so a run is reproducible."""
    ids = batch["input_ids"]
    hidden = torch.rand(ids.shape[0], device=ids.device) < share
    if not hidden.any():
        return batch
    out = dict(batch)
    out["input_ids"] = ids.masked_fill(hidden[:, None], pad_id)
    out["input_ids"][hidden, 0] = eos_id
    out["attention_mask"] = batch["attention_mask"].masked_fill(hidden[:, None], 0)
    out["attention_mask"][hidden, 0] = 1
    if batch.get("title_vectors") is not None:
        out["title_vectors"] = batch["title_vectors"].masked_fill(hidden[:, None], 0.0)
    return out


class LogToFile(TrainerCallback):
    """Send the trainer's log records (loss, lr, eval metrics) to logs/train_tiger.log."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.is_world_process_zero and logs:
            log.debug("step %d: %s", state.global_step, json.dumps(logs))


class TimeBudget(TrainerCallback):
    """Stop after train.max_minutes of training, with a last validation and checkpoint so it can be the best."""

    def __init__(self, minutes: float):
        self.seconds = 60 * minutes
        self.started = time.perf_counter()
        self.stopped_at_step: int | None = None

    def on_train_begin(self, args, state, control, **kwargs):
        self.started = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        if self.stopped_at_step is None and self.spent(args):
            log.warning("train.max_minutes=%g reached at step %d: stopping", self.seconds / 60, state.global_step)
            self.stopped_at_step = state.global_step
            control.should_training_stop = control.should_evaluate = control.should_save = True
        return control

    def spent(self, args) -> bool:
        over = time.perf_counter() - self.started >= self.seconds
        if args.world_size > 1 and torch.distributed.is_initialized():
            # Every process must stop at the same step, or the others wait forever in the next all-reduce.
            flag = torch.tensor(float(over), device=args.device)
            torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
            over = bool(flag.item())
        return over


def precision_flags(choice: str, device: str) -> dict:
    if device != "cuda":
        if choice in ("fp16", "bf16"):
            raise ConfigError(f"train.mixed_precision={choice} needs a GPU (run.device is {device})")
        return {}
    if choice == "auto":
        choice = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return {"bf16": choice == "bf16", "fp16": choice == "fp16"}
