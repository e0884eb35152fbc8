"""Stage 3: the training run (CPU, one GPU, or torchrun DDP): checkpoints, resume, early stopping, the final model.

The best checkpoint by validation loss is kept, early stopping ends training, ``--train.resume``
continues from the last checkpoint, and the best model is written to ``<model_dir>/tiger_final``.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import re
import resource
import shutil
import sys
from dataclasses import asdict, replace
from pathlib import Path

import torch
from safetensors import SafetensorError
from transformers import EarlyStoppingCallback, PreTrainedTokenizerBase, Seq2SeqTrainingArguments
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from config import Config, TrainConfig

from genrec.artifacts import atomic_path, require_fresh, sha256_of, write_json
from genrec.corpus.build import CorpusRow, corpus_path, load_vocab, read_corpus, vocab_path
from genrec.corpus.id_tokens import SemanticIdVocab
from genrec.distributed import BARRIER_TIMEOUT
from genrec.errors import ArtifactError
from genrec.model.retrieval import KnownLists
from genrec.model.seed_songs import MAX_SEEDS
from genrec.model.t5 import build_model, checkpoint_dir, resolve_device, save_final, tiger_final_dir
from genrec.model.tokenizer import build_tokenizer, check_id_tokens, check_pretrained_folder, unknown_share
from genrec.evaluate.baselines import TrainingPlaylists, read_training_playlists
from genrec.train.batches import PadCollator, TrainingCorpus, TrainingData, training_data
from genrec.train.shared_examples import EXAMPLES_FILE, share_examples, shared_examples
from genrec.train.trainer import (GENERATION_K, GENERATION_SAMPLE, GenerationProbe, LogToFile, TigerTrainer,
                                  TimeBudget, precision_flags)

log = logging.getLogger(__name__)

RUN_FILE = "run.json"
TOKENIZER_DIR = "tokenizer"
CHECKPOINT_FILES = ("model.safetensors", "optimizer.pt", "scheduler.pt")
"""What the trainer writes into a checkpoint folder before its trainer_state.json, which it writes last."""
WEIGHT_DECAY = 0.01
"""AdamW weight decay."""
MAX_GRAD_NORM = 1.0
"""Gradient clipping norm."""


def logging_interval(t: TrainConfig, examples: int) -> int:
    """Log about ten times per run, at most every 50 steps."""
    steps_per_epoch = max(1, examples // (t.batch_size * t.gradient_accumulation_steps))
    total_steps = t.max_steps or int(steps_per_epoch * t.epochs)
    return max(1, min(50, total_steps // 10))


def training_arguments(cfg: Config, device: str) -> Seq2SeqTrainingArguments:
    """The Trainer's arguments; ``logging_steps`` is set once the examples are counted (:func:`logging_interval`)."""
    t = cfg.train
    strategy = "steps" if t.eval_steps else "epoch"
    return Seq2SeqTrainingArguments(
        output_dir=str(checkpoint_dir(cfg)), per_device_train_batch_size=t.batch_size,
        per_device_eval_batch_size=t.batch_size, gradient_accumulation_steps=t.gradient_accumulation_steps,
        learning_rate=t.learning_rate, weight_decay=WEIGHT_DECAY, max_grad_norm=MAX_GRAD_NORM,
        # A float below 1 is a share of the steps; 1.0 would read as "one step".
        warmup_steps=min(t.warmup_ratio, 0.999), num_train_epochs=t.epochs, max_steps=t.max_steps or -1,
        eval_strategy=strategy, save_strategy=strategy, eval_steps=t.eval_steps or None,
        save_steps=t.eval_steps or None, save_total_limit=2, load_best_model_at_end=True,
        metric_for_best_model="eval_loss", greater_is_better=False,
        report_to="none", seed=cfg.run.seed,
        dataloader_pin_memory=device == "cuda", use_cpu=device == "cpu",
        remove_unused_columns=False, label_names=["labels"], ddp_find_unused_parameters=False,
        ddp_timeout=int(BARRIER_TIMEOUT.total_seconds()),  # the others wait while the main process builds
        **precision_flags(t.mixed_precision, device))


def check_corpus(cfg: Config) -> tuple[TrainingCorpus, list[CorpusRow], SemanticIdVocab, dict]:
    """The checked corpus: train.tsv read (:func:`read_training_corpus`), val rows, vocab, train.tsv's summary."""
    val_rows, vocab, summary = checked_inputs(cfg)
    return read_training_corpus(cfg), val_rows, vocab, summary


def checked_inputs(cfg: Config) -> tuple[list[CorpusRow], SemanticIdVocab, dict]:
    """What every rank checks and reads: the corpus files fresh and of this target mode, the val rows, the vocab,
    and train.tsv's summary (not its rows: :func:`read_training_corpus`)."""
    manifests = {split: require_fresh(corpus_path(cfg, split), "prepare_corpus.py") for split in ("train", "val")}
    summary = manifests["train"]["summary"]
    if summary.get("target_mode") != cfg.corpus.target_mode:
        raise ArtifactError(f"{corpus_path(cfg, 'train')} was built with corpus.target_mode="
                            f"{summary.get('target_mode')}, not {cfg.corpus.target_mode}: rerun prepare_corpus.py")
    val_rows = read_corpus(corpus_path(cfg, "val"))
    if not val_rows:
        raise ArtifactError(f"{corpus_path(cfg, 'val')} has no examples: rerun prepare_corpus.py")
    return val_rows, load_vocab(cfg), summary


def read_training_corpus(cfg: Config) -> TrainingCorpus:
    if cfg.corpus.target_mode == "single":
        train = TrainingCorpus(read_training_playlists(corpus_path(cfg, "train")))
    else:
        rows = read_corpus(corpus_path(cfg, "train"))
        train = TrainingCorpus(TrainingPlaylists.from_corpus(rows), rows)
    if not train.playlists.ids:
        raise ArtifactError(f"{corpus_path(cfg, 'train')} has no examples: rerun prepare_corpus.py")
    return train


def prepare_checkpoints(cfg: Config, args: Seq2SeqTrainingArguments, run_info: dict) -> str | None:
    """The checkpoint to resume from (None: a fresh start, old checkpoints removed)."""
    folder = checkpoint_dir(cfg)
    if not cfg.train.resume:
        if args.process_index == 0 and folder.exists():
            shutil.rmtree(folder)
        return None
    last = last_complete_checkpoint(folder, remove_incomplete=args.process_index == 0) if folder.is_dir() else None
    if last is None:
        log.warning("--train.resume: no checkpoint in %s, starting from scratch", folder)
        return None
    recorded = json.loads((folder / RUN_FILE).read_text(encoding="utf-8")) if (folder / RUN_FILE).exists() else {}
    if recorded != run_info:
        raise ArtifactError(f"the checkpoints in {folder} were made from another corpus or model config: "
                            "train without --train.resume")
    log.info("resuming from %s", last)
    return last


def last_complete_checkpoint(folder: Path, remove_incomplete: bool) -> str | None:
    """The newest checkpoint the trainer finished writing. The trainer writes a checkpoint-N folder file by file,
    trainer_state.json last, so a run killed mid-write leaves a folder without it (or with half of it): such a
    folder is skipped, and removed by the main process, and the one before it resumed."""
    steps = sorted((int(p.name.rsplit("-", 1)[1]), p) for p in folder.glob(f"{PREFIX_CHECKPOINT_DIR}-*")
                   if p.is_dir() and p.name.rsplit("-", 1)[1].isdigit())
    for _, path in reversed(steps):
        if checkpoint_is_complete(path):
            return str(path)
        if remove_incomplete:
            log.warning("removing %s: its writing was interrupted", path)
            shutil.rmtree(path, ignore_errors=True)
    return None


def checkpoint_is_complete(path: Path) -> bool:
    if not all((path / name).is_file() for name in CHECKPOINT_FILES):
        return False
    try:
        return "global_step" in json.loads((path / "trainer_state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False


def rank_examples(cfg: Config, args: Seq2SeqTrainingArguments, val_rows: list[CorpusRow], vocab: SemanticIdVocab,
                  resuming: bool) -> tuple[TrainingData, PreTrainedTokenizerBase]:
    """This rank's tokenizer and examples. The main process reads train.tsv, builds the tokenizer (saved beside the
    checkpoints) and the examples; under torchrun it writes the examples for the other ranks, which load them and
    never read the corpus (genrec.train.shared_examples)."""
    from transformers import AutoTokenizer
    path = checkpoint_dir(cfg) / TOKENIZER_DIR
    with args.main_process_first(desc="training examples"):
        train = read_training_corpus(cfg) if args.process_index == 0 else None
        if train is not None and not (resuming and path.exists()):
            tokenizer = build_tokenizer(cfg.network.pretrained, train.titles(), cfg.network.text_vocab_size, vocab)
            with atomic_path(path) as staged:  # a kill mid-save must not leave half a tokenizer to resume with
                tokenizer.save_pretrained(staged)
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        check_id_tokens(tokenizer, vocab)
        if train is None:
            return shared_examples(checkpoint_dir(cfg) / EXAMPLES_FILE, cfg.network.title_encoder), tokenizer
        share = unknown_share(tokenizer, sorted(set(train.playlists.titles)))
        if share > 0.05:
            log.warning("%.0f%% of title tokens are <unk> for this tokenizer", 100 * share)
        data = training_data(cfg, train, val_rows, vocab, tokenizer)
        data.probe_lists = probe_lists(data, val_rows, cfg.run.seed)
        if args.world_size > 1:
            share_examples(checkpoint_dir(cfg) / EXAMPLES_FILE, data)
    return data, tokenizer


def probe_lists(data: TrainingData, val_rows: list[CorpusRow], seed: int) -> KnownLists | None:
    """The retriever's lists for the generation probe's titles, computed once: every rank probes, and only the main
    process holds the retriever."""
    if data.retrieval is None:
        return None
    titles = [row.input_text for row in GenerationProbe.sample(val_rows, GENERATION_SAMPLE, seed)]
    return KnownLists(titles, data.retrieval.full.inputs(titles))


def run_fingerprint(cfg: Config) -> dict:
    """What a checkpoint must share with this run to be resumed: corpus, model shape and training targets."""
    model_fields = {**asdict(cfg.network), **asdict(cfg.targets), **asdict(cfg.retrieval)}
    return {"train_sha256": sha256_of(corpus_path(cfg, "train")), "vocab_sha256": sha256_of(vocab_path(cfg)),
            "model": model_fields}


def settings_for_mode(cfg: Config) -> Config:
    """The run's settings: a copy head (single mode only) is set aside in sequence mode with its retrieval, so a
    preset chosen for single mode still runs the other mode, as its pooled-target settings do."""
    if cfg.corpus.target_mode == "single" or not cfg.retrieval.songs:
        return cfg
    log.warning("retrieval.songs=%d: the copy head writes retrieved songs in single mode only; this sequence-mode "
                "run trains without retrieval", cfg.retrieval.songs)
    return replace(cfg, retrieval=replace(cfg.retrieval, songs=0, walk_weight=0.0))


def train(cfg: Config) -> dict:
    """Train, keep the best checkpoint, write models/tiger_final; return the summary."""
    cfg = settings_for_mode(cfg)
    if cfg.network.pretrained:  # before anything touches the checkpoints: a bad value must not cost them
        check_pretrained_folder(cfg.network.pretrained)
    val_rows, vocab, corpus_summary = checked_inputs(cfg)
    t, net = cfg.train, cfg.network
    device = resolve_device(cfg.run.device)
    args = training_arguments(cfg, device)
    run_info = run_fingerprint(cfg)
    resume_from = prepare_checkpoints(cfg, args, run_info)
    if args.process_index == 0:
        write_json(checkpoint_dir(cfg) / RUN_FILE, run_info)
    data, tokenizer = rank_examples(cfg, args, val_rows, vocab, resume_from is not None)
    mode = cfg.corpus.target_mode
    title_encoder, retrieval = data.title_encoder, data.retrieval
    args.logging_steps = logging_interval(t, len(data.train))
    probe = GenerationProbe(val_rows, tokenizer, vocab, mode, net.max_input_length, GENERATION_SAMPLE,
                            cfg.run.seed, title_encoder, data.probe_lists)

    torch.manual_seed(cfg.run.seed)
    model = build_model(net, cfg.retrieval.songs, tokenizer, title_encoder.dim if title_encoder else None,
                        corpus_summary.get("title_script", ""), MAX_SEEDS if data.seeded else 0)
    budget = TimeBudget(t.max_minutes) if t.max_minutes else None
    trainer = TigerTrainer(model=model, args=args, data_collator=PadCollator(tokenizer.pad_token_id),
                           train_dataset=data.train, eval_dataset=data.val,
                           processing_class=tokenizer, probe=probe,
                           title_dropout=cfg.retrieval.title_dropout if data.retrieval_summary else 0.0,
                           callbacks=[EarlyStoppingCallback(early_stopping_patience=t.patience), LogToFile(),
                                      *([budget] if budget else [])])
    start_step = 0
    if resume_from:
        start_step = int(Path(resume_from).name.rsplit("-", 1)[-1])
    with refused_writes_named(checkpoint_dir(cfg)):
        result = trainer.train(resume_from_checkpoint=resume_from)

    state = trainer.state
    examples_per_step = t.batch_size * t.gradient_accumulation_steps * args.world_size
    train_seconds = max(result.metrics["train_runtime"] - trainer.eval_seconds, 1e-9)
    tokens = (state.global_step - start_step) * examples_per_step * data.target_tokens / data.pairs
    best = best_evaluation(state.log_history, state.best_metric)
    summary = {
        "target_mode": mode, "collision_strategy": vocab.collision_strategy, "id_length": vocab.id_length,
        "max_input_length": net.max_input_length, "parameters": model.num_parameters(),
        "train_examples": len(data.train), "train_pairs": data.pairs, "val_examples": len(data.val),
        "global_step": state.global_step, "epochs": round(state.epoch or 0.0, 3), "resumed_from_step": start_step,
        "stopped_by_time_budget_at_step": budget.stopped_at_step if budget else None,
        "processes": args.world_size, "peak_memory_gb_per_process": peak_memory_gb(args),
        "batch_size": t.batch_size, "device": device, "best_checkpoint": state.best_model_checkpoint,
        "best_eval": best, "train_seconds": round(train_seconds, 1), "eval_seconds": round(trainer.eval_seconds, 1),
        "train_target_tokens_per_second": round(tokens / train_seconds, 1),
        "retrieval": data.retrieval_summary,
        "neighbour_targets": data.neighbour_setup, "seeded_examples": data.seeded,
        "truncated_titles": data.truncated_titles, "corpus": {k: corpus_summary.get(k) for k in
                                                                   ("examples", "largest_collision_group")},
    }
    if trainer.is_world_process_zero():
        inputs = [corpus_path(cfg, "train"), corpus_path(cfg, "val"), vocab_path(cfg)]
        with refused_writes_named(tiger_final_dir(cfg)):
            save_final(tiger_final_dir(cfg), trainer.model, tokenizer, vocab_path(cfg), cfg, inputs, summary,
                       retrieval, title_encoder)
    trainer.accelerator.wait_for_everyone()
    if trainer.is_world_process_zero():
        (checkpoint_dir(cfg) / EXAMPLES_FILE).unlink(missing_ok=True)  # every rank loaded it before its first step
    return summary


@contextlib.contextmanager
def refused_writes_named(folder: Path):
    """safetensors and torch.save report a write the machine refused (a full disk) as their own errors: make it the
    OSError naming ``folder`` that the scripts report in one line (genrec.cli.run_script)."""
    try:
        yield
    except SafetensorError as err:
        if "I/O error" not in str(err):
            raise
        code = re.search(r"os error (\d+)", str(err))
        number = int(code.group(1)) if code else errno.EIO
        raise OSError(number, os.strerror(number) if code else str(err), str(folder)) from err
    except RuntimeError as err:
        if "file write failed" not in str(err):
            raise
        raise OSError(errno.EIO, "file write failed", str(folder)) from err


def peak_memory_gb(args: Seq2SeqTrainingArguments) -> list[float]:
    """Each process's peak resident memory so far, in GB, the main process first (a collective under torchrun)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (1 if sys.platform == "darwin" else 1024) / 1e9
    if args.world_size > 1 and torch.distributed.is_initialized():
        gathered: list = [None] * args.world_size
        torch.distributed.all_gather_object(gathered, peak)
        return [round(x, 3) for x in gathered]
    return [round(peak, 3)]


def best_evaluation(history: list[dict], best_loss: float | None) -> dict:
    """The eval metrics logged at the best checkpoint's step (loss and the generation probe)."""
    evals: dict[int, dict] = {}
    for entry in history:
        if any(k.startswith("eval_") for k in entry):
            evals.setdefault(entry["step"], {}).update({k: v for k, v in entry.items() if k.startswith("eval_")})
    for metrics in evals.values():
        if best_loss is not None and metrics.get("eval_loss") == best_loss:
            return {k: round(v, 5) for k, v in metrics.items()
                    if k in ("eval_loss", f"eval_hit_rate@{GENERATION_K}", "eval_valid_id_share")}
    return {}
