"""Pooled soft targets: the same objective as plain (title, song) pairs, in fewer examples."""

import pytest
import torch
from transformers import T5Config, T5ForConditionalGeneration

from genrec.train.pooled_targets import PooledCollator, PooledDataset, PooledExamples, pool_examples, pooled_loss

# Two titles; title A has song path (5, 7, 1) three times and (5, 8, 1) once; title B one pair.
INPUTS = [[10, 11, 1]] * 4 + [[12, 1]]
LABELS = [[5, 7, 1]] * 3 + [[5, 8, 1], [6, 9, 1]]


def test_examples_carry_each_titles_next_token_shares_and_pair_weights():
    pooled = pool_examples(INPUTS, LABELS, pairs_per_example=2, seed=0)
    assert pooled.pairs == 5
    by_title = {}
    for title, weight, targets in zip(pooled.inputs, pooled.weights, pooled.targets):
        by_title.setdefault(tuple(title), []).append((weight, targets))
    assert [len(v) for v in by_title.values()] == [2, 1]  # ceil(4 / 2) and ceil(1 / 2)
    assert sum(w for w, _ in by_title[(10, 11, 1)]) == 4 and by_title[(12, 1)][0][0] == 1
    first = by_title[(10, 11, 1)][0][1]
    assert first[0] == ([5], [1.0])
    assert first[1] == ([7, 8], [0.75, 0.25])
    assert pool_examples(INPUTS, LABELS, 2, seed=0).paths == pooled.paths


def tiny_t5():
    torch.manual_seed(0)
    return T5ForConditionalGeneration(T5Config(vocab_size=16, d_model=8, d_kv=4, d_ff=16, num_layers=1,
                                               num_decoder_layers=1, num_heads=2, decoder_start_token_id=0)).eval()


def test_pooled_loss_equals_the_mean_pair_loss_when_every_path_is_an_example():
    model = tiny_t5()
    pooled = pool_examples(INPUTS[:4], LABELS[:4], pairs_per_example=1, seed=0)
    # Replace the sampled paths by each distinct path once, weighted by its count: the exact objective.
    exact = [{"input_ids": INPUTS[0], "labels": path, "weight": weight,
              "targets": next(t for p, t in zip(pooled.paths, pooled.targets) if p == path)}
             for path, weight in (([5, 7, 1], 3.0), ([5, 8, 1], 1.0))]
    with torch.no_grad():
        pooled_value = pooled_loss(model, PooledCollator(pad_id=0)(exact))
        plain = model(input_ids=torch.tensor(INPUTS[:4]), labels=torch.tensor(LABELS[:4])).loss
    assert pooled_value.item() == pytest.approx(plain.item(), rel=1e-5)


def test_sharpening_squares_song_counts_but_keeps_each_titles_weight():
    pooled = pool_examples(INPUTS, LABELS, pairs_per_example=2, seed=0, sharpening=2.0)
    title_a = [(w, t) for title, w, t in zip(pooled.inputs, pooled.weights, pooled.targets) if title == [10, 11, 1]]
    assert sum(w for w, _ in title_a) == pytest.approx(4.0)
    assert title_a[0][1][1] == ([7, 8], [pytest.approx(0.9), pytest.approx(0.1)])  # 3**2 : 1**2


def test_collator_pads_ragged_titles_paths_and_targets():
    batch = [{"input_ids": [10, 11, 1], "labels": [5, 7, 1], "weight": 3.0,
              "targets": [([5], [1.0]), ([7, 8], [0.75, 0.25]), ([1], [1.0])]},
             {"input_ids": [12, 1], "labels": [6, 1], "weight": 1.0, "targets": [([6], [1.0]), ([1], [1.0])]}]
    out = PooledCollator(pad_id=0)(batch)
    assert out["input_ids"].tolist() == [[10, 11, 1], [12, 1, 0]]
    assert out["attention_mask"].tolist() == [[1, 1, 1], [1, 1, 0]]
    assert out["decoder_input_ids"].tolist() == [[0, 5, 7], [0, 6, 0]]  # pad (T5's start), then the path
    assert out["target_ids"].tolist() == [[[5, 0], [7, 8], [1, 0]], [[6, 0], [1, 0], [0, 0]]]
    assert out["target_shares"].tolist() == [[[1.0, 0.0], [0.75, 0.25], [1.0, 0.0]],
                                             [[1.0, 0.0], [1.0, 0.0], [0.0, 0.0]]]
    assert out["target_ids"].dtype == torch.long and out["target_shares"].dtype == torch.float32
    assert out["weight"].tolist() == [3.0, 1.0]


def test_paths_per_title_walks_each_top_song_once_with_the_title_weight_split():
    pooled = pool_examples(INPUTS, LABELS, pairs_per_example=1, seed=0, paths_per_input=1)
    # Title A's top song (5, 7, 1) only; title B its one song; weights stay each title's pair count.
    assert sorted(map(tuple, pooled.paths)) == [(5, 7, 1), (6, 9, 1)]
    assert sorted(pooled.weights) == [1.0, 4.0]
    both = pool_examples(INPUTS, LABELS, pairs_per_example=1, seed=0, paths_per_input=5)
    title_a = [(p, w, t) for title, p, w, t in zip(both.inputs, both.paths, both.weights, both.targets)
               if title == [10, 11, 1]]
    assert sorted(p for p, _, _ in title_a) == [[5, 7, 1], [5, 8, 1]] and [w for _, w, _ in title_a] == [2.0, 2.0]
    # The soft targets still carry the whole distribution, whichever paths are walked.
    assert all(t[1] == ([7, 8], [0.75, 0.25]) for _, _, t in title_a)


def test_examples_live_in_flat_arrays_that_a_rank_maps_from_the_saved_file(tmp_path):
    titled = pool_examples(INPUTS, LABELS, pairs_per_example=1, seed=0)
    seeded = pool_examples(INPUTS[:2], LABELS[:2], pairs_per_example=1, seed=0, seeds=[((5, 7),), ((6, 9), (5, 8))])
    both = titled.followed_by(seeded)
    assert len(both) == len(titled) + len(seeded) and both.pairs == 7
    # Title-only examples read no seeds; the joined targets still point at their own input's shares.
    assert both.seeds == [()] * len(titled) + seeded.seeds
    assert both.targets == titled.targets + seeded.targets and both.inputs == titled.inputs + seeded.inputs
    # Each prefix's soft target is stored once per input, not once per example.
    assert len(titled.share_tokens) < sum(map(len, titled.paths))
    torch.save({"pooled": both.to_tensors()}, tmp_path / "examples.pt")
    loaded = PooledExamples.from_tensors(torch.load(tmp_path / "examples.pt", weights_only=True, mmap=True)["pooled"])
    collate = PooledCollator(pad_id=0)
    batch = list(range(len(both)))
    for name, value in collate([PooledDataset(both)[i] for i in batch]).items():
        assert torch.equal(value, collate([PooledDataset(loaded)[i] for i in batch])[name]), name
    assert loaded.seeds == both.seeds and loaded.weights == both.weights
