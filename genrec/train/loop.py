"""Stage 3: training the T5 on the corpus with Hugging Face's Seq2SeqTrainer (CPU, one GPU, or torchrun DDP).

Examples are tokenized once up front and padded per batch (titles are short, targets of single mode
are one ID plus </s>), with no dataloader workers: on a CPU the model step is the cost, not input.
Each evaluation computes the validation loss (on the (title, song) pairs of val playlists in single
mode) and a cheap generation metric on a fixed sample of val playlists; the best checkpoint by
loss is kept, early stopping ends training, and ``--tiger.resume`` continues from the last one.
"""

from __future__ import annotations

import json
import logging
import random
import shutil
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
from transformers import (EarlyStoppingCallback, PreTrainedTokenizerBase, Seq2SeqTrainer, Seq2SeqTrainingArguments,
                          TrainerCallback)
from transformers.trainer_utils import get_last_checkpoint

from config import Config, PlaylistTIGERConfig

from genrec.artifacts import require_fresh, sha256_of, write_json
from genrec.corpus.build import CorpusRow, corpus_path, load_vocab, read_corpus, vocab_path
from genrec.errors import ArtifactError, ConfigError
from genrec.corpus.id_tokens import TOKEN_PATTERN, SemanticIdVocab
from genrec.model.t5 import build_model, checkpoint_dir, resolve_device, save_final, tiger_final_dir, title_inputs
from genrec.train.pooled_targets import PooledCollator, PooledDataset, pool_examples, pooled_loss, with_extra_inputs
from genrec.evaluate.baselines import TrainingPlaylists
from genrec.evaluate.run import split_playlists, tuned_title_knn
from genrec.train.neighbour_targets import CooccurrenceWalk, NeighbourVotes, neighbour_paths
from genrec.model.retrieval import Retrieved, RetrievalSetup, SongRetriever, WalkParams, song_token_ids, vector_mix
from genrec.model.title_vectors import TitleVectorEncoder
from genrec.model.tokenizer import build_tokenizer, check_id_tokens, unknown_share

log = logging.getLogger(__name__)

GENERATION_K = 10
"""IDs the validation generation metric decodes per playlist."""
RUN_FILE = "run.json"
TOKENIZER_DIR = "tokenizer"


@dataclass
class Encoded:
    """Token ids of examples, ready for the collator."""

    inputs: list[list[int]]
    labels: list[list[int]]
    truncated_titles: int
    vectors: list[torch.Tensor] | None = None
    """Title vectors (genrec.model.title_vectors) when the model reads them."""
    retrieved: list[Retrieved] | None = None
    """Retrieved songs' ID token ids (genrec.model.retrieval) when the model reads them."""

    def target_tokens(self) -> int:
        return sum(map(len, self.labels))


class ExampleDataset(torch.utils.data.Dataset):
    def __init__(self, encoded: Encoded):
        self.encoded = encoded

    def __len__(self) -> int:
        return len(self.encoded.inputs)

    def __getitem__(self, i: int) -> dict:
        item = {"input_ids": self.encoded.inputs[i], "labels": self.encoded.labels[i]}
        if self.encoded.vectors is not None:
            item["title_vector"] = self.encoded.vectors[i]
        if self.encoded.retrieved is not None:
            item["retrieved_ids"] = self.encoded.retrieved[i]
        return item


class PadCollator:
    """Pad each batch to its own longest title and target (labels padded with -100, ignored by the loss).

    Batches of pooled examples (training in single mode, see genrec.train.pooled_targets) go to their own collator.
    """

    def __init__(self, pad_id: int):
        self.pad_id = pad_id
        self.pooled = PooledCollator(pad_id)

    def __call__(self, batch: list[dict]) -> dict:
        if "targets" in batch[0]:
            return self.pooled(batch)
        return with_extra_inputs({"input_ids": pad([b["input_ids"] for b in batch], self.pad_id),
                                   "attention_mask": pad([[1] * len(b["input_ids"]) for b in batch], 0),
                                   "labels": pad([b["labels"] for b in batch], -100)}, batch)


def pad(rows: list[list[int]], value: int) -> torch.Tensor:
    out = torch.full((len(rows), max(map(len, rows))), value, dtype=torch.long)
    for i, row in enumerate(rows):
        out[i, :len(row)] = torch.tensor(row, dtype=torch.long)
    return out


def encode_titles(tokenizer: PreTrainedTokenizerBase, titles: list[str], max_length: int) -> tuple[dict, int]:
    """Token ids per distinct title, cut to max_length with </s> kept last; and how many were cut."""
    unique = sorted(set(titles))
    ids = tokenizer(unique)["input_ids"] if unique else []
    cut = sum(len(row) > max_length for row in ids)
    return {t: row if len(row) <= max_length else row[:max_length - 1] + [tokenizer.eos_token_id]
            for t, row in zip(unique, ids)}, cut


def titles_merged_by_cutting(tokenizer: PreTrainedTokenizerBase, titles: list[str], max_length: int) -> int:
    """How many distinct titles cutting to max_length makes identical to another title (folding aside)."""
    full, _ = encode_titles(tokenizer, titles, sys.maxsize)
    cut, _ = encode_titles(tokenizer, titles, max_length)
    return len(set(map(tuple, full.values()))) - len(set(map(tuple, cut.values())))


def encode(pairs: list[tuple[str, str]], tokenizer: PreTrainedTokenizerBase, max_input_length: int,
           title_encoder: TitleVectorEncoder | None = None,
           retrieved: list[Retrieved] | None = None) -> Encoded:
    """(title, target token string) pairs to ids (and title vectors; ``retrieved`` is passed through, one per
    pair); target tokens map one-to-one, then </s>."""
    titles, cut = encode_titles(tokenizer, [title for title, _ in pairs], max_input_length)
    token_ids: dict[str, int] = {}
    labels = []
    for _, target in pairs:
        row = [token_ids.setdefault(t, tokenizer.convert_tokens_to_ids(t)) for t in TOKEN_PATTERN.findall(target)]
        labels.append(row + [tokenizer.eos_token_id])
    vectors = title_encoder.vectors([title for title, _ in pairs]) if title_encoder else None
    return Encoded([titles[title] for title, _ in pairs], labels, cut, vectors, retrieved)


def training_pairs(rows: list[CorpusRow]) -> list[tuple[str, str]]:
    return [(row.input_text, row.target_text) for row in rows]


def validation_pairs(rows: list[CorpusRow], vocab: SemanticIdVocab, target_mode: str, limit: int,
                     seed: int) -> list[tuple[str, str]]:
    """The val examples in the shape training sees; a seeded sample of at most ``limit``."""
    if target_mode == "single":
        pairs = [(row.input_text, "".join(vocab.songs[s])) for row in rows for s in row.song_ids]
    else:
        pairs = training_pairs(rows)
    if len(pairs) > limit:
        pairs = random.Random(seed).sample(pairs, limit)
    return pairs


class GenerationProbe:
    """Hit rate of decoded songs in the playlist, on a fixed sample of val playlists (cheap, not the evaluation)."""

    def __init__(self, rows: list[CorpusRow], tokenizer: PreTrainedTokenizerBase, vocab: SemanticIdVocab,
                 target_mode: str, max_input_length: int, sample: int, seed: int,
                 title_encoder: TitleVectorEncoder | None = None, retriever: SongRetriever | None = None):
        self.rows = random.Random(seed).sample(rows, min(sample, len(rows)))
        self.tokenizer, self.vocab, self.target_mode = tokenizer, vocab, target_mode
        self.max_input_length = max_input_length
        self.title_encoder, self.retriever = title_encoder, retriever

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
    vector) instead of their own; retrieved songs and targets stay (``tiger.title_dropout``). Drawn from torch's
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
    """Stop after tiger.max_minutes of training, with a last validation and checkpoint so it can be the best."""

    def __init__(self, minutes: float):
        self.seconds = 60 * minutes
        self.started = time.perf_counter()
        self.stopped_at_step: int | None = None

    def on_train_begin(self, args, state, control, **kwargs):
        self.started = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        if self.stopped_at_step is None and self.spent(args):
            log.warning("tiger.max_minutes=%g reached at step %d: stopping", self.seconds / 60, state.global_step)
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
            raise ConfigError(f"tiger.mixed_precision={choice} needs a GPU (run.device is {device})")
        return {}
    if choice == "auto":
        choice = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return {"bf16": choice == "bf16", "fp16": choice == "fp16"}


def logging_interval(t: PlaylistTIGERConfig, examples: int) -> int:
    """Log about ten times per run, at most every 50 steps."""
    steps_per_epoch = max(1, examples // (t.batch_size * t.gradient_accumulation_steps))
    total_steps = t.max_steps or int(steps_per_epoch * t.epochs)
    return max(1, min(50, total_steps // 10))


def training_arguments(cfg: Config, device: str, examples: int) -> Seq2SeqTrainingArguments:
    t = cfg.tiger
    strategy = "steps" if t.eval_steps else "epoch"
    return Seq2SeqTrainingArguments(
        output_dir=str(checkpoint_dir(cfg)), per_device_train_batch_size=t.batch_size,
        per_device_eval_batch_size=t.batch_size, gradient_accumulation_steps=t.gradient_accumulation_steps,
        learning_rate=t.learning_rate, weight_decay=t.weight_decay, max_grad_norm=t.max_grad_norm,
        # A float below 1 is a share of the steps; 1.0 would read as "one step".
        warmup_steps=min(t.warmup_ratio, 0.999), num_train_epochs=t.epochs, max_steps=t.max_steps or -1,
        eval_strategy=strategy, save_strategy=strategy, eval_steps=t.eval_steps or None,
        save_steps=t.eval_steps or None, save_total_limit=2, load_best_model_at_end=True,
        metric_for_best_model="eval_loss", greater_is_better=False,
        logging_steps=logging_interval(t, examples), report_to="none", seed=cfg.run.seed,
        dataloader_num_workers=t.dataloader_workers, dataloader_persistent_workers=t.dataloader_workers > 0,
        dataloader_pin_memory=device == "cuda", use_cpu=device == "cpu",
        remove_unused_columns=False, label_names=["labels"], ddp_find_unused_parameters=False,
        **precision_flags(t.mixed_precision, device))


def check_corpus(cfg: Config) -> tuple[list[CorpusRow], list[CorpusRow], SemanticIdVocab, dict]:
    manifests = {split: require_fresh(corpus_path(cfg, split), "prepare_corpus.py") for split in ("train", "val")}
    summary = manifests["train"]["summary"]
    if summary.get("target_mode") != cfg.corpus.target_mode:
        raise ArtifactError(f"{corpus_path(cfg, 'train')} was built with corpus.target_mode="
                            f"{summary.get('target_mode')}, not {cfg.corpus.target_mode}: rerun prepare_corpus.py")
    train_rows, val_rows = read_corpus(corpus_path(cfg, "train")), read_corpus(corpus_path(cfg, "val"))
    for split, rows in (("train", train_rows), ("val", val_rows)):
        if not rows:
            raise ArtifactError(f"{corpus_path(cfg, split)} has no examples: rerun prepare_corpus.py")
    return train_rows, val_rows, load_vocab(cfg), summary


def prepare_checkpoints(cfg: Config, args: Seq2SeqTrainingArguments, run_info: dict) -> str | None:
    """The checkpoint to resume from (None: a fresh start, old checkpoints removed)."""
    folder = checkpoint_dir(cfg)
    if not cfg.tiger.resume:
        if args.process_index == 0 and folder.exists():
            shutil.rmtree(folder)
        return None
    last = get_last_checkpoint(str(folder)) if folder.is_dir() else None
    if last is None:
        log.warning("--tiger.resume: no checkpoint in %s, starting from scratch", folder)
        return None
    recorded = json.loads((folder / RUN_FILE).read_text(encoding="utf-8")) if (folder / RUN_FILE).exists() else {}
    if recorded != run_info:
        raise ArtifactError(f"the checkpoints in {folder} were made from another corpus or model config: "
                            "train without --tiger.resume")
    log.info("resuming from %s", last)
    return last


def shared_tokenizer(cfg: Config, args: Seq2SeqTrainingArguments, titles: list[str], vocab: SemanticIdVocab,
                     resuming: bool) -> PreTrainedTokenizerBase:
    """Built once by the main process and saved beside the checkpoints; the other ranks load that copy."""
    from transformers import AutoTokenizer
    path = checkpoint_dir(cfg) / TOKENIZER_DIR
    with args.main_process_first(desc="tokenizer"):
        if args.process_index == 0 and not (resuming and path.exists()):
            tokenizer = build_tokenizer(cfg.tiger.model_name, titles, cfg.tiger.text_vocab_size, vocab)
            tokenizer.save_pretrained(path)
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    check_id_tokens(tokenizer, vocab)
    return tokenizer


def neighbour_extra(cfg: Config, train_rows: list[CorpusRow], tokenizer: PreTrainedTokenizerBase,
                    vocab: SemanticIdVocab) -> tuple[dict, dict]:
    """Neighbour songs to add to each training title's pooled counts (genrec.train.neighbour_targets) from the kNN
    that evaluate_tiger.py reports as ``title_knn`` (same fit, same tuning on val), and how it was set."""
    t = cfg.tiger
    playlists = TrainingPlaylists.from_corpus(train_rows)
    val = split_playlists(cfg, "val", vocab.songs).head(cfg.eval.val_playlists)
    knn, _ = tuned_title_knn(cfg, playlists, val)
    title_ids, _ = encode_titles(tokenizer, playlists.titles, t.max_input_length)
    song_paths = {song: (*ids, tokenizer.eos_token_id) for song, ids in song_token_ids(vocab, tokenizer).items()}
    walk = CooccurrenceWalk(knn) if t.cooccurrence_weight else None
    extra = neighbour_paths(NeighbourVotes(knn, playlists), title_ids, song_paths, t.neighbour_weight,
                            t.neighbour_songs, walk, t.cooccurrence_weight)
    return extra, {"weight": t.neighbour_weight, "songs": t.neighbour_songs,
                   "cooccurrence_weight": t.cooccurrence_weight, "title_knn": asdict(knn.params)}


def run_fingerprint(cfg: Config) -> dict:
    """What a checkpoint must share with this run to be resumed: corpus, model shape and training targets."""
    model_fields = {k: v for k, v in vars(cfg.tiger).items()
                    if k in ("model_name", "title_encoder", "retrieved_songs", "retrieval_use", "copy_rank_prior",
                             "retrieval_folds", "retrieval_walk_weight", "retrieval_vector_weight", "title_dropout",
                             "target_sharpening", "neighbour_weight", "neighbour_songs", "cooccurrence_weight",
                             "d_model", "num_layers", "num_decoder_layers", "num_heads", "d_kv", "d_ff",
                             "text_vocab_size", "max_input_length")}
    return {"train_sha256": sha256_of(corpus_path(cfg, "train")), "vocab_sha256": sha256_of(vocab_path(cfg)),
            "model": model_fields}


@dataclass
class TrainingData:
    train: torch.utils.data.Dataset  # pooled examples in pooled single mode, else one example per pair
    val: ExampleDataset
    encoded: Encoded  # the training pairs as encoded, before pooling
    title_encoder: TitleVectorEncoder | None
    retrieval: RetrievalSetup | None
    neighbour_setup: dict | None


def training_data(cfg: Config, train_rows: list[CorpusRow], val_rows: list[CorpusRow], vocab: SemanticIdVocab,
                  tokenizer: PreTrainedTokenizerBase) -> TrainingData:
    """The training and validation sets as the Trainer sees them (title vectors, retrieval, pooled targets)."""
    t, mode = cfg.tiger, cfg.corpus.target_mode
    title_encoder = TitleVectorEncoder(t.title_encoder) if t.title_encoder else None
    if t.retrieved_songs and t.retrieval_vector_weight and not title_encoder:
        # A preset that mixes in vectors must still run where the title encoder is turned off (non-English titles).
        log.warning("tiger.retrieval_vector_weight=%g needs tiger.title_encoder: the retriever's kNN uses TF-IDF alone",
                    t.retrieval_vector_weight)
    retrieval = (RetrievalSetup(train_rows, val_rows, t.retrieved_songs, t.retrieval_folds, vocab, tokenizer,
                                max(cfg.eval.k_values), WalkParams(t.retrieval_walk_weight, t.neighbour_songs),
                                *vector_mix(t.retrieval_vector_weight, title_encoder))
                 if t.retrieved_songs else None)
    for name, what in (("retrieval_walk_weight", "walks the retrieved songs"),
                       ("retrieval_vector_weight", "mixes title vectors into the retriever's kNN"),
                       ("title_dropout", "leaves a model its retrieved songs alone")):
        if getattr(t, name) and not t.retrieved_songs:
            log.warning("tiger.%s=%g %s: ignored without tiger.retrieved_songs", name, getattr(t, name), what)
    val_pairs = validation_pairs(val_rows, vocab, mode, t.val_loss_examples, cfg.run.seed)
    train_set = encode(training_pairs(train_rows), tokenizer, t.max_input_length, title_encoder,
                       retrieval.cross_fitted(train_rows) if retrieval else None)
    val_set = encode(val_pairs, tokenizer, t.max_input_length, title_encoder,
                     retrieval.full([title for title, _ in val_pairs]) if retrieval else None)
    if train_set.truncated_titles:
        log.warning("%d distinct training titles are longer than tiger.max_input_length=%d tokens and were cut",
                    train_set.truncated_titles, t.max_input_length)
    train_data: torch.utils.data.Dataset = ExampleDataset(train_set)
    pooled_mode = mode == "single" and t.pooled_targets
    merged = train_set.truncated_titles and titles_merged_by_cutting(
        tokenizer, [row.input_text for row in train_rows], t.max_input_length)
    smoothed = t.neighbour_weight or t.cooccurrence_weight
    if merged and pooled_mode and (title_encoder or smoothed):
        # Pooled examples key title vectors and neighbour targets by the title's token ids.
        log.warning("%d distinct training titles were cut to another title's tokens and share its title vector and "
                    "neighbour targets: raise tiger.max_input_length to keep them apart", merged)
    # Like target_sharpening, these shape pooled targets only; a preset that sets them must still run other modes.
    for name in ("neighbour_weight", "cooccurrence_weight", "paths_per_title"):
        if getattr(t, name) and not pooled_mode:
            log.warning("tiger.%s=%g shapes pooled single-mode targets only: ignored here", name, getattr(t, name))
    neighbours, neighbour_setup = (neighbour_extra(cfg, train_rows, tokenizer, vocab)
                                   if smoothed and pooled_mode else (None, None))
    if pooled_mode:
        pooled = pool_examples(train_set.inputs, train_set.labels, t.pairs_per_example, cfg.run.seed,
                               train_set.vectors, train_set.retrieved, t.target_sharpening, neighbours,
                               t.paths_per_title)
        log.info("pooled targets: %d (title, song) pairs of %d distinct titles become %d training examples",
                 pooled.pairs, len({tuple(i) for i in pooled.inputs}), len(pooled))
        train_data = PooledDataset(pooled)
    return TrainingData(train_data, ExampleDataset(val_set), train_set, title_encoder, retrieval, neighbour_setup)


def settings_for_mode(cfg: Config) -> Config:
    """The run's settings: a copy head (single mode only) is set aside in sequence mode with its retrieval, so a
    preset chosen for single mode still runs the other mode, as its pooled-target settings do."""
    t = cfg.tiger
    if cfg.corpus.target_mode == "single" or t.retrieval_use == "input":
        return cfg
    log.warning("tiger.retrieval_use=%s copies retrieved songs in single mode only: this sequence-mode run trains "
                "without retrieval (tiger.retrieved_songs 0)", t.retrieval_use)
    return replace(cfg, tiger=replace(t, retrieved_songs=0, retrieval_use="input", retrieval_walk_weight=0.0))


def train(cfg: Config) -> dict:
    """Train, keep the best checkpoint, write models/tiger_final; return the summary."""
    cfg = settings_for_mode(cfg)
    train_rows, val_rows, vocab, corpus_summary = check_corpus(cfg)
    t: PlaylistTIGERConfig = cfg.tiger
    device = resolve_device(cfg.run.device)
    args = training_arguments(cfg, device, len(train_rows))
    run_info = run_fingerprint(cfg)
    resume_from = prepare_checkpoints(cfg, args, run_info)
    tokenizer = shared_tokenizer(cfg, args, [r.input_text for r in train_rows], vocab, resume_from is not None)
    if args.process_index == 0:
        write_json(checkpoint_dir(cfg) / RUN_FILE, run_info)
        share = unknown_share(tokenizer, sorted({r.input_text for r in train_rows}))
        if share > 0.05:
            log.warning("%.0f%% of title tokens are <unk> for this tokenizer", 100 * share)

    mode = cfg.corpus.target_mode
    data = training_data(cfg, train_rows, val_rows, vocab, tokenizer)
    title_encoder, retrieval, train_set = data.title_encoder, data.retrieval, data.encoded
    if isinstance(data.train, PooledDataset):
        args.logging_steps = logging_interval(t, len(data.train))
    probe = GenerationProbe(val_rows, tokenizer, vocab, mode, t.max_input_length, t.val_generation_sample,
                            cfg.run.seed, title_encoder, retrieval.full if retrieval else None
                            ) if t.val_generation_sample else None

    torch.manual_seed(cfg.run.seed)
    model = build_model(t, tokenizer, title_encoder.dim if title_encoder else None,
                        corpus_summary.get("title_script", ""))
    budget = TimeBudget(t.max_minutes) if t.max_minutes else None
    trainer = TigerTrainer(model=model, args=args, data_collator=PadCollator(tokenizer.pad_token_id),
                           train_dataset=data.train, eval_dataset=data.val,
                           processing_class=tokenizer, probe=probe,
                           title_dropout=t.title_dropout if retrieval else 0.0,
                           callbacks=[EarlyStoppingCallback(early_stopping_patience=t.patience), LogToFile(),
                                      *([budget] if budget else [])])
    start_step = 0
    if resume_from:
        start_step = int(Path(resume_from).name.rsplit("-", 1)[-1])
    result = trainer.train(resume_from_checkpoint=resume_from)

    state = trainer.state
    examples_per_step = t.batch_size * t.gradient_accumulation_steps * args.world_size
    train_seconds = max(result.metrics["train_runtime"] - trainer.eval_seconds, 1e-9)
    tokens = (state.global_step - start_step) * examples_per_step * train_set.target_tokens() / len(train_set.inputs)
    best = best_evaluation(state.log_history, state.best_metric)
    summary = {
        "target_mode": mode, "collision_strategy": vocab.collision_strategy, "id_length": vocab.id_length,
        "max_input_length": t.max_input_length, "parameters": model.num_parameters(),
        "train_examples": len(data.train), "train_pairs": len(train_set.inputs), "val_examples": len(data.val),
        "global_step": state.global_step, "epochs": round(state.epoch or 0.0, 3), "resumed_from_step": start_step,
        "stopped_by_time_budget_at_step": budget.stopped_at_step if budget else None,
        "processes": args.world_size, "batch_size": t.batch_size, "device": device, "best_checkpoint": state.best_model_checkpoint,
        "best_eval": best, "train_seconds": round(train_seconds, 1), "eval_seconds": round(trainer.eval_seconds, 1),
        "train_target_tokens_per_second": round(tokens / train_seconds, 1),
        "retrieval": {"songs": t.retrieved_songs, "use": t.retrieval_use, "copy_rank_prior": t.copy_rank_prior,
                      "folds": t.retrieval_folds, "title_knn": asdict(retrieval.params), "walk": asdict(retrieval.walk)}
        if retrieval else None,
        "neighbour_targets": data.neighbour_setup,
        "truncated_titles": train_set.truncated_titles, "corpus": {k: corpus_summary.get(k) for k in
                                                                   ("examples", "largest_collision_group")},
    }
    if trainer.is_world_process_zero():
        inputs = [corpus_path(cfg, "train"), corpus_path(cfg, "val"), vocab_path(cfg)]
        save_final(tiger_final_dir(cfg), trainer.model, tokenizer, vocab_path(cfg), cfg, inputs, summary, retrieval,
                   title_encoder)
    trainer.accelerator.wait_for_everyone()
    return summary


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
