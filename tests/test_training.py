"""Stage 3: training a tiny T5 on tiny demo data (one process, resume, torchrun with 2 CPU processes)."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import REPO, TINY_DEMO, run_stage
from genrec.cli import parse_config
from genrec.corpus.build import corpus_path
from genrec.errors import ArtifactError
from genrec.model.t5 import checkpoint_dir, load_tiger
from genrec.train.batches import titles_merged_by_cutting
from genrec.train.loop import checked_inputs, rank_examples
from genrec.train.shared_examples import EXAMPLES_FILE
from genrec.train.trainer import GENERATION_SAMPLE, GenerationProbe, hide_titles

# A model of a few thousand parameters: seconds per run on 2 cores.
TINY_MODEL = ["--network.d_model", "32", "--network.d_kv", "8", "--network.num_heads", "4", "--network.d_ff", "64",
              "--network.num_layers", "1", "--network.num_decoder_layers", "1", "--train.batch_size", "64",
              "--network.text_vocab_size", "300", "--train.learning_rate", "0.01", "--train.val_loss_examples", "256"]


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("tiger_corpus")
    run_stage("prepare_data.py", *TINY_DEMO, cwd=folder)
    run_stage("train_rq_kmeans.py", *TINY_DEMO, cwd=folder)
    run_stage("prepare_corpus.py", cwd=folder)
    return folder


@pytest.fixture(scope="module")
def trained(corpus_dir, tmp_path_factory) -> Path:
    """One short single-mode training run, shared by the tests that only read its results."""
    folder = tmp_path_factory.mktemp("tiger_trained")
    shutil.copytree(corpus_dir, folder, dirs_exist_ok=True)
    run_stage("train_tiger.py", *TINY_MODEL, "--train.max_steps", "30", "--train.eval_steps", "15", cwd=folder)
    return folder


@pytest.fixture
def work(corpus_dir, tmp_path, monkeypatch) -> Path:
    """A copy of the corpus folder, also the working folder (recorded artifact paths are relative to it)."""
    shutil.copytree(corpus_dir, tmp_path, dirs_exist_ok=True)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def summary(folder: Path) -> dict:
    return json.loads((folder / "models/tiger_final/manifest.json").read_text(encoding="utf-8"))["summary"]


def train_losses(checkpoint: Path) -> list[float]:
    state = json.loads((checkpoint / "trainer_state.json").read_text(encoding="utf-8"))
    return [entry["loss"] for entry in state["log_history"] if "loss" in entry]


def four_step_losses(work: Path, flag: str, values: tuple[str, ...], *other_flags: str) -> dict[str, list[float]]:
    """The training losses of a 4-step run (same seed) for each value of one flag."""
    losses = {}
    for value in values:
        run_stage("train_tiger.py", *TINY_MODEL, *other_flags, flag, value, "--train.max_steps", "4",
                  "--train.eval_steps", "2", cwd=work)
        losses[value] = train_losses(work / "models/tiger_checkpoints/checkpoint-4")
    return losses


def test_loss_goes_down_and_final_model_is_written(trained):
    losses = train_losses(trained / "models/tiger_checkpoints/checkpoint-30")
    assert len(losses) >= 3 and losses[-1] < 0.8 * losses[0]
    facts = summary(trained)
    assert facts["global_step"] == 30 and facts["target_mode"] == "single"
    assert facts["best_eval"]["eval_loss"] > 0 and facts["train_target_tokens_per_second"] > 0
    assert len(facts["peak_memory_gb_per_process"]) == 1 and facts["peak_memory_gb_per_process"][0] > 0


def test_saved_model_reloads_with_identical_outputs(trained, monkeypatch):
    monkeypatch.chdir(trained)
    first, second = load_tiger("models/tiger_final"), load_tiger("models/tiger_final")
    batch = first.tokenizer(["summer beach", "夏日海边 ✨"], return_tensors="pt", padding=True)
    start = torch.zeros((2, 1), dtype=torch.long)
    with torch.no_grad():
        a = first.model(**batch, decoder_input_ids=start).logits
        b = second.model(**batch, decoder_input_ids=start).logits
    assert torch.equal(a, b)
    assert all(len(first.tokenizer.tokenize(t)) == 1 for t in first.vocab.all_tokens())
    out = first.model.generate(**batch, num_beams=4, max_new_tokens=first.vocab.id_length + 1)
    assert out[0, 0].item() == first.tokenizer.pad_token_id


def test_resume_continues_at_the_right_step(work):
    run_stage("train_tiger.py", *TINY_MODEL, "--train.max_steps", "6", "--train.eval_steps", "3", cwd=work)
    assert (work / "models/tiger_checkpoints/checkpoint-6").is_dir()
    run_stage("train_tiger.py", *TINY_MODEL, "--train.max_steps", "9", "--train.eval_steps", "3",
              "--train.resume", "true", cwd=work)
    facts = summary(work)
    assert facts["resumed_from_step"] == 6 and facts["global_step"] == 9


def test_sequence_mode_trains(work):
    run_stage("prepare_corpus.py", "--corpus.target_mode", "sequence", "--corpus.max_target_length", "41", cwd=work)
    # A preset's neighbour targets and copy head (single mode only) must not stop a sequence run.
    proc = run_stage("train_tiger.py", *TINY_MODEL, "--corpus.target_mode", "sequence", "--train.max_steps", "4",
                     "--targets.neighbour_weight", "0.5", "--retrieval.songs", "5",
                     "--retrieval.walk_weight", "8", cwd=work)
    assert "neighbour_weight=0.5 shapes pooled single-mode targets only" in proc.stderr
    assert "this sequence-mode run trains without retrieval" in proc.stderr
    bundle = load_tiger(work / "models/tiger_final")
    assert bundle.target_mode == "sequence" and summary(work)["neighbour_targets"] is None
    assert bundle.retriever is None and bundle.model.copy_head is None and summary(work)["retrieval"] is None


def test_neighbour_targets_change_what_is_learnt_and_are_recorded(work):
    losses = four_step_losses(work, "--targets.neighbour_weight", ("0", "1"))
    assert losses["0"][0] != pytest.approx(losses["1"][0])  # same seed and batches, other targets
    recorded = summary(work)["neighbour_targets"]
    assert recorded["weight"] == 1.0 and recorded["songs"] == 200 and recorded["title_knn"]["k"] >= 1
    load_tiger(work / "models/tiger_final")


def test_cooccurrence_walk_alone_changes_what_is_learnt_and_is_recorded(work):
    losses = four_step_losses(work, "--targets.cooccurrence_weight", ("0", "4"))
    assert losses["0"][0] != pytest.approx(losses["4"][0])
    recorded = summary(work)["neighbour_targets"]
    assert recorded["weight"] == 0 and recorded["cooccurrence_weight"] == 4.0


def test_hide_titles_empties_a_random_share_of_titles_and_keeps_the_rest_of_each_example():
    batch = {"input_ids": torch.tensor([[5, 6, 1], [7, 1, 0]] * 50),
             "attention_mask": torch.tensor([[1, 1, 1], [1, 1, 0]] * 50),
             "title_vectors": torch.ones(100, 4), "retrieved_ids": torch.arange(100 * 6).view(100, 2, 3),
             "labels": torch.arange(100 * 3).view(100, 3)}
    torch.manual_seed(0)
    out = hide_titles(batch, 0.5, eos_id=1, pad_id=0)
    hidden = out["title_vectors"].sum(dim=1) == 0
    assert 20 < int(hidden.sum()) < 80  # a share, not all or none
    assert (out["input_ids"][hidden] == torch.tensor([1, 0, 0])).all()
    assert (out["attention_mask"][hidden] == torch.tensor([1, 0, 0])).all()
    for name in ("input_ids", "attention_mask", "title_vectors"):
        assert torch.equal(out[name][~hidden], batch[name][~hidden])
    assert out["retrieved_ids"] is batch["retrieved_ids"] and out["labels"] is batch["labels"]
    assert batch["title_vectors"].sum() == 400  # the collated batch itself is left as it was
    torch.manual_seed(0)
    assert torch.equal(hide_titles(batch, 0.5, eos_id=1, pad_id=0)["input_ids"], out["input_ids"])
    assert hide_titles(batch, 0.0, eos_id=1, pad_id=0) is batch


def test_title_dropout_changes_what_a_retrieval_model_learns_and_retrieval_options_warn_without_retrieval(work, caplog):
    losses = four_step_losses(work, "--retrieval.title_dropout", ("0", "0.5"), "--retrieval.songs", "5")
    assert losses["0"][0] != pytest.approx(losses["0.5"][0])  # same seed and batches, some titles hidden
    # What training says of the options is said while it builds its examples: built here, in this process.
    said = {}
    for name, flags in (("no retrieval", ("--retrieval.title_dropout", "0.5", "--retrieval.vector_weight", "0.5")),
                        ("no title encoder", ("--retrieval.songs", "5", "--retrieval.vector_weight", "0.5"))):
        caplog.clear()
        cfg, _ = parse_config([*TINY_MODEL, *flags])
        val_rows, vocab, _ = checked_inputs(cfg)
        data, _ = rank_examples(cfg, Rank(0, 1), val_rows, vocab, resuming=False)
        said[name] = (caplog.text, data)
    text, _ = said["no retrieval"]
    assert "retrieval.title_dropout=0.5 leaves a model its retrieved songs alone: ignored without" in text
    assert "retrieval.vector_weight=0.5 mixes title vectors into the retriever's kNN: ignored without" in text
    text, data = said["no title encoder"]
    assert "retrieval.vector_weight=0.5 needs network.title_encoder: the retriever's kNN uses TF-IDF alone" in text
    assert data.retrieval_summary["title_knn"]["vector_weight"] == 0.0 == data.retrieval.params.vector_weight


def torchrun_train(work: Path, *flags: str) -> dict:
    env = dict(os.environ, PYTHONUNBUFFERED="1", TOKENIZERS_PARALLELISM="false", OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
                           str(REPO / "train_tiger.py"), *TINY_MODEL, *flags],
                          cwd=work, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return summary(work)


def test_torchrun_two_cpu_processes_train_one_model(work):
    facts = torchrun_train(work, "--train.max_steps", "6", "--retrieval.songs", "5")
    assert facts["processes"] == 2 and facts["global_step"] == 6 and facts["retrieval"]["songs"] == 5
    assert len(facts["peak_memory_gb_per_process"]) == 2 and min(facts["peak_memory_gb_per_process"]) > 0
    assert [p.name for p in (work / "models").iterdir() if p.name.startswith(".")] == []
    assert not (work / "models/tiger_checkpoints" / EXAMPLES_FILE).exists()  # the ranks' copy is removed at the end
    load_tiger(work / "models/tiger_final")


def same(a, b) -> bool:
    """Equal values of equal types, tensors and arrays compared by value (dataclass equality cannot compare them)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, torch.Tensor):
        return torch.equal(a, b)
    if isinstance(a, np.ndarray):
        return a.dtype == b.dtype and np.array_equal(a, b)
    if dataclasses.is_dataclass(a):
        return same(vars(a), vars(b))
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return a == b


class Rank:
    """The two Trainer arguments rank_examples reads, for one rank of a torchrun run without the run."""

    def __init__(self, process_index: int, world_size: int):
        self.process_index, self.world_size = process_index, world_size

    def main_process_first(self, desc: str):
        return contextlib.nullcontext()


@pytest.mark.parametrize("flags", [("--retrieval.songs", "5"),
                                   ("--retrieval.songs", "5", "--network.title_encoder", "minilm",
                                    "--targets.seeded_share", "0.5", "--targets.neighbour_weight", "0.5")],
                         ids=["retrieval", "title vectors, seeds, neighbour targets"])
def test_torchrun_ranks_train_on_the_main_process_examples_without_reading_the_corpus(work, flags):
    cfg, _ = parse_config([*TINY_MODEL, *flags])
    val_rows, vocab, _ = checked_inputs(cfg)
    alone, _ = rank_examples(cfg, Rank(0, 1), val_rows, vocab, resuming=False)
    shared = checkpoint_dir(cfg) / EXAMPLES_FILE
    assert not shared.exists()  # one process shares nothing
    if cfg.network.title_encoder:  # what the file must carry besides token ids
        assert alone.train.examples.vectors and alone.train.examples.seeds and alone.seeded
    main, tokenizer = rank_examples(cfg, Rank(0, 2), val_rows, vocab, resuming=False)
    assert shared.is_file()
    corpus_path(cfg, "train").unlink()  # the other rank must not need it
    other, other_tokenizer = rank_examples(cfg, Rank(1, 2), val_rows, vocab, resuming=False)
    assert other_tokenizer.get_vocab() == tokenizer.get_vocab()
    assert main.retrieval is not None and other.retrieval is None  # the playlists and their kNN stay in the main one
    for data in (main, other):
        assert same(vars(data.train.examples), vars(alone.train.examples))
        assert same(vars(data.val.encoded), vars(alone.val.encoded))
        assert (data.pairs, data.target_tokens, data.retrieval_summary, data.seeded, data.neighbour_setup) == \
            (alone.pairs, alone.target_tokens, alone.retrieval_summary, alone.seeded, alone.neighbour_setup)
    assert (other.title_encoder is None) == (cfg.network.title_encoder == "")  # each rank loads its own
    titles = [row.input_text for row in GenerationProbe.sample(val_rows, GENERATION_SAMPLE, cfg.run.seed)]
    assert other.probe_lists.inputs(titles) == main.retrieval.full.inputs(titles)
    assert {len(songs) for songs in other.probe_lists.inputs(titles)} == {5}
    shared.unlink()
    with pytest.raises(ArtifactError, match="the main process writes it"):
        rank_examples(cfg, Rank(1, 2), val_rows, vocab, resuming=False)


def test_long_titles_are_truncated_not_fatal(work):
    proc = run_stage("train_tiger.py", *TINY_MODEL, "--network.max_input_length", "3", "--train.max_steps", "2",
                     cwd=work)
    assert "longer than network.max_input_length=3" in proc.stderr
    assert summary(work)["truncated_titles"] > 0


def test_pretrained_folder_that_is_not_t5_is_refused(work):
    fake = work / "not_t5"
    fake.mkdir()
    (fake / "config.json").write_text('{"model_type": "bert"}', encoding="utf-8")
    checkpoints = work / "models" / "tiger_checkpoints"
    checkpoints.mkdir(parents=True)
    (checkpoints / "checkpoint-5").mkdir()
    proc = run_stage("train_tiger.py", "--network.pretrained", str(fake), cwd=work, check=False)
    assert proc.returncode == 1 and "not a Hugging Face T5" in proc.stderr and "Traceback" not in proc.stderr
    assert (checkpoints / "checkpoint-5").is_dir()  # refused before the old checkpoints were cleared


def test_missing_corpus_and_missing_model_say_what_to_run(tmp_path):
    proc = run_stage("train_tiger.py", cwd=tmp_path, check=False)
    assert proc.returncode == 1 and "prepare_corpus.py" in proc.stderr
    with pytest.raises(ArtifactError, match="run train_tiger.py first"):
        load_tiger(tmp_path / "models/tiger_final")


def test_model_is_refused_once_the_corpus_ids_change(trained, tmp_path, monkeypatch):
    shutil.copytree(trained, tmp_path, dirs_exist_ok=True)
    monkeypatch.chdir(tmp_path)
    run_stage("prepare_corpus.py", "--corpus.collision_strategy", "cluster", cwd=tmp_path)
    with pytest.raises(ArtifactError, match="rerun train_tiger.py"):
        load_tiger("models/tiger_final")


def test_time_budget_stops_training_and_keeps_a_validated_model(work):
    proc = run_stage("train_tiger.py", *TINY_MODEL, "--train.max_minutes", "0.00001", "--train.max_steps", "50",
                     "--train.eval_steps", "25", cwd=work)
    assert "train.max_minutes=1e-05 reached at step 1" in proc.stderr
    facts = summary(work)
    assert facts["global_step"] == 1 and facts["stopped_by_time_budget_at_step"] == 1
    assert facts["best_eval"]["eval_loss"] > 0  # the stop still validated, so a best checkpoint exists
    load_tiger(work / "models/tiger_final")


def test_batch_assembly_bench_times_the_training_loader(work):
    proc = run_stage("bench/batches.py", "--train.batch_size", "64", "--batches", "1000", "--workers", "1",
                     cwd=work)
    examples = int(proc.stdout.split(" training examples (PooledDataset)")[0].split()[-1])
    rows = [line.split() for line in proc.stdout.splitlines() if line.strip().endswith(tuple("0123456789"))
            and "workers" in line]
    assert examples > 64 and [r[0] for r in rows] == ["0", "1"]
    assert float(rows[0][-1]) == 1.0 and all(float(r[2]) > 0 for r in rows)  # s/batch measured for both
    # --digest: the same batches give the same digest; another seed samples other paths, so another digest.
    printed = [run_stage("bench/batches.py", "--digest", *flags, cwd=work).stdout
               for flags in ((), (), ("--run.seed", "7"))]
    digests = [re.search(r"digest ([0-9a-f]{16})", out).group(1) for out in printed]
    assert digests[0] == digests[1] != digests[2]


def test_time_budget_stop_under_torchrun_validates_saves_and_ends_both_processes(work):
    # The stop's extra validation and checkpoint are collective under DDP: a rank left behind would hang here.
    facts = torchrun_train(work, "--train.max_minutes", "0.00001", "--train.max_steps", "50",
                           "--train.eval_steps", "25")
    assert facts["processes"] == 2 and facts["global_step"] == 1 and facts["stopped_by_time_budget_at_step"] == 1


def test_title_fit_bench_compares_the_model_with_what_it_was_taught(trained):
    proc = run_stage("bench/title_fit.py", "--titles", "5", "--decode.num_beams", "10", cwd=trained)
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in proc.stdout.splitlines()
            if line.startswith("| training") or line.startswith("| validation")]
    training = [r for r in rows if r[0] == "training"]
    assert training and all(0 < int(r[2]) <= 5 for r in training)
    # Without neighbour targets a title is taught exactly its own songs: they fill the targets' top.
    assert all(float(r[4]) == 1.0 and 0.0 <= float(r[3]) <= 1.0 for r in training)
    assert all(r[5] == "-" for r in training) and all(0.0 <= float(r[5]) <= 1.0 for r in rows if r[0] == "validation")
    levels = [line.strip("|").split("|")[1:] for line in proc.stdout.split("level by level")[-1].splitlines()
              if line.startswith("|") and " / " in line]
    assert len(levels) == len(training) and {len(cells) for cells in levels} == {len(levels[0])} and len(levels[0]) > 1
    pairs = [[float(x) for x in cell.split(" / ")] for cells in levels for cell in cells]
    assert all(model <= 0 and target <= 0 for model, target in pairs)


def test_retrieval_use_bench_measures_a_model_without_retrieval_against_knn(trained):
    out = run_stage("bench/retrieval_use.py", "--playlists", "4", "--songs", "3", "--decode.num_beams", "10",
                    cwd=trained).stdout
    assert "3 title kNN songs each, not given to this model" in out
    shares = [float(x) for x in re.findall(r"title kNN's top \d+: ([\d.]+)", out)]
    assert len(shares) == 2 and all(0.0 <= s <= 1.0 for s in shares)
    bad = run_stage("bench/retrieval_use.py", "--songs", "0", cwd=trained, check=False)
    assert bad.returncode != 0 and "--playlists and --songs must be at least 1" in bad.stderr
    assert "Traceback" not in bad.stderr


class WordIds:
    """Tokenizer stand-in: one id per word, then </s> (id 1)."""

    eos_token_id = 1

    def __call__(self, titles):
        return {"input_ids": [[2 + len(word) for word in title.split()] + [1] for title in titles]}


def test_titles_merged_by_cutting_counts_only_what_cutting_merges():
    titles = ["rock anthems live", "rock anthems now", "pop hits", "POP HITS", "jazz"]
    # Equal length words give equal ids: "pop hits" and "POP HITS" are one title before any cutting.
    assert titles_merged_by_cutting(WordIds(), titles, 16) == 0
    assert titles_merged_by_cutting(WordIds(), titles, 3) == 1  # the two "rock anthems ..." titles
    assert titles_merged_by_cutting(WordIds(), titles, 1) == 3  # every title becomes </s>
