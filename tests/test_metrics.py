"""Song-level and sequence metrics against hand-computed values."""

from __future__ import annotations

import json
import math
import random

import numpy as np
import pytest

from genrec.evaluate.metrics import (artist_r_precision, bleu4, coverage, duplicate_rate, id_f1, lcs_length, mean_over,
                            paired_difference, per_playlist, popularity_buckets, ranking_metrics, reordered_by,
                            rouge_l, sequence_metrics, share_in)


def test_ranking_metrics_by_hand():
    m = ranking_metrics(["a", "x", "b", "y"], ["a", "b", "c"], [1, 2, 4])
    assert m["r_precision"] == pytest.approx(2 / 3)  # top-3 holds a and b, R = 3
    assert m["recall@1"] == pytest.approx(1 / 3) and m["recall@4"] == pytest.approx(2 / 3)
    assert m["ndcg@1"] == 1.0
    ideal4 = 1 + 1 / math.log2(3) + 1 / math.log2(4)  # min(4, |truth|) = 3 ideal hits
    assert m["ndcg@4"] == pytest.approx((1 + 1 / math.log2(4)) / ideal4)
    assert m["hit@10"] == 1.0


def test_artist_credit_as_the_recsys_challenge_gives_it():
    artists = {"a": "A", "b": "B", "c": "C", "x": "A", "y": "A", "z": "B", "w": "", "late": "C"}
    truth = ["a", "b", "c", "w"]  # R = 4; artists A, B, C (w has none)
    # top-4: a (track match, 1), x (artist A, 0.25), y (A again: credited once), z (B, 0.25); "late" is past R.
    assert artist_r_precision(["a", "x", "y", "z", "late"], truth, artists) == pytest.approx(1.5 / 4)
    # Repeats earn nothing and a song without an artist earns no credit.
    assert artist_r_precision(["x", "x", "w2", "b"], truth, artists) == pytest.approx(1.25 / 4)
    assert artist_r_precision(["a", "b", "c", "w"], truth, artists) == 1.0
    per = per_playlist([["a", "x", "y", "z"], ["q"]], [truth, []], [2], artists)
    assert per["r_precision_artist"][0] == pytest.approx(1.5 / 4) and np.isnan(per["r_precision_artist"][1])
    assert per["r_precision"][0] == pytest.approx(1 / 4)
    assert "r_precision_artist" not in per_playlist([["a"]], [truth], [2])


def test_reordered_by_splits_order_from_choice():
    model, retrieved = ["c", "x", "a", "y"], ["a", "b", "c"]
    assert reordered_by(model, retrieved) == ["c", "a", "b"]  # the list in the model's order
    assert reordered_by(retrieved, model) == ["a", "c", "x", "y"]  # the model's picks in the list's order
    assert reordered_by([], retrieved) == retrieved and reordered_by(["a", "a"], ["b", "a", "b"]) == ["a", "b"]


def test_ideal_dcg_uses_min_of_k_and_truth():
    # One relevant song at rank 1 is a perfect ranking however large K is.
    assert ranking_metrics(["a", "b", "c"], ["a"], [3])["ndcg@3"] == 1.0


def test_repeats_earn_nothing_and_misses_count():
    m = ranking_metrics(["a", "a", "a"], ["a", "b"], [3])
    assert m["recall@3"] == 0.5
    # A truth song outside the catalogue can never be found: recall stays below 1.
    assert ranking_metrics(["a", "b"], ["a", "b", "not_in_catalogue"], [2])["recall@2"] == pytest.approx(2 / 3)


def test_playlists_without_truth_are_skipped_in_means():
    per = per_playlist([["a"], ["b"]], [["a"], []], [1])
    assert np.isnan(per["recall@1"][1])
    assert mean_over(per)["recall@1"] == 1.0
    assert mean_over(per, np.array([False, True]))["recall@1"] != mean_over(per, np.array([False, True]))["recall@1"]


def test_coverage_duplicates_and_shares():
    assert coverage([["a", "b"], ["b", "c"]], 10) == 0.3
    assert duplicate_rate([["a", "a", "b"], ["c"]]) == 0.25
    assert share_in([["a", "b"], ["c", "d"]], {"a", "c", "z"}) == 0.5


def _lcs_table(a, b):
    table = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i, x in enumerate(a):
        for j, y in enumerate(b):
            table[i + 1][j + 1] = table[i][j] + 1 if x == y else max(table[i][j + 1], table[i + 1][j])
    return table[-1][-1]


def test_bit_parallel_lcs_matches_dynamic_programming():
    rng = random.Random(0)
    for _ in range(200):
        a = [rng.choice("abcd") for _ in range(rng.randint(0, 30))]
        b = [rng.choice("abcd") for _ in range(rng.randint(0, 30))]
        assert lcs_length(a, b) == _lcs_table(a, b)


def test_sequence_metrics():
    assert rouge_l(["a", "b", "c"], ["a", "b", "c"]) == 1.0
    assert rouge_l(["x"], ["a"]) == 0.0
    assert bleu4(list("abcdefg"), list("abcdefg")) == pytest.approx(1.0)
    assert id_f1([("a",), ("b",)], [("a",), ("c",)]) == 0.5
    ids = {"s1": ("<a_1>", "<b_1>"), "s2": ("<a_1>", "<b_2>"), "s3": ("<a_2>", "<b_0>")}
    perfect = sequence_metrics([["s1", "s2", "s3"]], [["s1", "s2"]], ids)  # top-R, R = 2
    assert perfect["rouge_l"] == 1.0 and perfect["semantic_id_f1"] == 1.0
    assert sequence_metrics([["s3"]], [["s1", "outside"]], ids)["semantic_id_f1"] == 0.0


def test_popularity_buckets():
    rank = {f"p{i}": i for i in range(2000)}
    out = popularity_buckets([["p0", "p500"]], [["p0", "p1", "p500", "new"]], rank)
    assert out["top_100"] == {"truth_songs": 2, "recall": 0.5}
    assert out["top_100_1000"] == {"truth_songs": 1, "recall": 1.0}
    assert out["tail"] == {"truth_songs": 1, "recall": 0.0}


def test_paired_difference_mean_interval_and_nan_playlists():
    first = np.array([0.5, 0.4, np.nan, 0.3, 0.2])
    second = np.array([0.1, 0.4, 0.9, 0.1, 0.2])
    out = paired_difference(first, second)
    assert out["difference"] == pytest.approx((0.4 + 0 + 0.2 + 0) / 4)  # the NaN playlist is left out
    low, high = out["ci95"]
    assert 0.0 <= low <= out["difference"] <= high <= 0.4
    # A constant gap has no spread; the same seed gives the same interval.
    assert paired_difference(np.full(6, 0.3), np.full(6, 0.1))["ci95"] == [pytest.approx(0.2), pytest.approx(0.2)]
    assert paired_difference(first, second) == out


def test_a_metric_of_no_playlist_is_written_as_null_never_nan(tmp_path):
    from genrec.artifacts import write_json

    empty = mean_over({"ndcg@10": np.array([np.nan, np.nan])})
    assert np.isnan(empty["ndcg@10"])
    path = tmp_path / "metrics.json"
    write_json(path, {"systems": {"model": empty}, "array": np.array([np.inf, 1.0], dtype=np.float32)})
    text = path.read_text(encoding="utf-8")
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text) == {"systems": {"model": {"ndcg@10": None}}, "array": [None, 1.0]}
