"""Popularity, title kNN (tuned on validation) and rank fusion."""

from __future__ import annotations

from dataclasses import asdict

import numpy as np
import pytest

from config import Config
from conftest import synonym_title_vectors
from genrec.artifacts import write_json, write_manifest
from genrec.evaluate.baselines import (KnnParams, PopularityBaseline, TitleKNN, TrainingPlaylists, char_text, fuse, hybrid_path,
                              load_hybrid, normalise_title, tune_fusion, tune_knn)
from genrec.corpus.build import CorpusRow
from genrec.errors import ArtifactError, ConfigError
from genrec.evaluate.metrics import mean_over, per_playlist

TITLES = ["Chill Vibes!!", "chill", "Worship 🙏", "🔥🔥", "gym", "Gym Hits", "road trip"]
SONGS = [["a", "b", "c"], ["a", "d"], ["w1", "w2"], ["f1", "f2"], ["g1", "g2", "a"], ["g1", "g3"], ["r1", "a"]]


def test_title_normalisation():
    assert normalise_title("Chill  Vibes!! 🌊") == "chill vibes"
    assert normalise_title("夏日_海边") == "夏日 海边"
    assert char_text("🔥🔥") == "🔥🔥"  # emoji-only titles still have something to match


def test_training_playlists_group_single_mode_rows():
    rows = [CorpusRow("p1", "gym", "<a_1>", ["x"]), CorpusRow("p2", "run", "<a_2>", ["y"]),
            CorpusRow("p1", "gym", "<a_3>", ["z"]), CorpusRow("p1", "gym", "<a_1>", ["x"])]
    grouped = TrainingPlaylists.from_corpus(rows)
    assert grouped.titles == ["gym", "run"] and grouped.songs == [["x", "z"], ["y"]]


def test_popularity_counts_playlists():
    pop = PopularityBaseline(SONGS)
    assert pop.ranking[0] == "a" and pop.recommend(["x", "y"], 2) == [["a", "g1"], ["a", "g1"]]


def test_knn_finds_similar_titles_and_fills_with_popularity():
    knn = TitleKNN(KnnParams(k=2)).fit(TITLES, SONGS)
    worship, fire, gym = knn.recommend(["worship", "🔥", "GYM!"], 6)
    assert worship[:2] == ["w1", "w2"] and len(worship) == 6 and worship[2] == "a"  # then popularity
    assert set(fire[:2]) == {"f1", "f2"}
    assert gym[0] == "g1" and len(set(gym)) == 6


synonym_vectors = synonym_title_vectors({"workout": "gym"})


def test_title_vectors_let_knn_find_titles_that_share_no_letters():
    plain = TitleKNN(KnnParams(k=1)).fit(TITLES, SONGS)
    mixed = TitleKNN(KnnParams(k=1, vector_weight=0.5), synonym_vectors).fit(TITLES, SONGS)
    assert plain.recommend(["workout"], 1)[0] == ["w1"]  # "workout" shares "wor" with "Worship", nothing with "gym"
    assert set(mixed.recommend(["workout"], 3)[0]) == set(SONGS[TITLES.index("gym")])
    cosine = synonym_vectors(["workout"]) @ synonym_vectors(TITLES).T
    assert np.allclose(mixed.similarities(["workout"]), 0.5 * plain.similarities(["workout"]) + 0.5 * cosine)
    # Tuning chooses k, alpha and length_norm and keeps the configured mix.
    tune_knn(mixed, ["workout"], [["g1"]], 1, lambda rankings, truths: float(rankings[0][0] in truths[0]))
    assert mixed.params.vector_weight == 0.5
    with pytest.raises(ConfigError, match="vector_weight=0.5 needs title vectors"):
        TitleKNN(KnnParams(vector_weight=0.5))


def test_knn_tuning_uses_the_given_playlists():
    # Only with k=10+ does a neighbour beyond the closest reveal the songs: tuning must find that.
    titles = ["rock"] * 3 + [f"rock {i}" for i in range(20)]
    songs = [["x"]] * 3 + [["r"]] * 20
    knn = TitleKNN().fit(titles, songs)

    def ndcg(rankings, truths):
        return mean_over(per_playlist(rankings, truths, [1]))["ndcg@1"]

    params, trials = tune_knn(knn, ["rock music"], [["r"]], 1, ndcg)
    assert knn.params == params and params.k >= 10
    assert len(trials) > 10 and max(t["score"] for t in trials) == 1.0


def test_fusion():
    model, knn = ["m1", "m2", "s"], ["k1", "s", "k2"]
    assert fuse(model, knn, 3, 1.0) == model
    assert fuse(model, knn, 3, 0.0) == knn
    assert fuse(model, knn, 1, 0.5)[0] == "s"  # in both lists
    def top_hit(rankings, truths):
        return float(rankings[0][0] in truths[0])

    chosen, trials = tune_fusion([model], {"title_knn": [knn]}, [["k1"]], 1, top_hit)
    assert chosen["weight"] < 0.5 and chosen["partner"] == "title_knn" and len(trials) == 22
    # Two partners: the one whose fusion scores higher on validation is chosen; on a tie, the first.
    walked = ["w1", "k1", "s"]
    chosen, trials = tune_fusion([model], {"title_knn": [knn], "retrieved": [walked]}, [["w1"]], 1, top_hit)
    assert chosen["partner"] == "retrieved" and chosen["weight"] < 0.5 and len(trials) == 44
    assert tune_fusion([model], {"title_knn": [knn], "retrieved": [knn]}, [["k1"]], 1, top_hit)[0]["partner"] == \
        "title_knn"


@pytest.mark.parametrize("partner", [None, "title_knn", "retrieved"])  # None: a hybrid.json from before partners
def test_generator_hybrid_fuses_with_the_partner_the_evaluation_chose(tmp_path, partner):
    cfg = Config()
    cfg.run.output_dir = str(tmp_path)
    path = hybrid_path(cfg)
    fusion = {"weight": 0.0, "c": 60.0, **({"partner": partner} if partner else {})}  # weight 0: the partner alone
    write_json(path, {"title_knn": asdict(KnnParams(k=2)), "fusion": fusion})
    write_manifest(path, [], {})
    read = []

    def training():
        read.append(True)
        return TrainingPlaylists(TITLES, SONGS, [str(i) for i in range(len(TITLES))])

    def retrieved(titles):
        return [["r9", "r8"] for _ in titles]

    hybrid = load_hybrid(cfg, training, retrieved)
    fused = hybrid.rank(["gym"], [["m1", "m2"]], 3)
    assert read
    if partner == "retrieved":
        assert fused == [["r9", "r8", "a"]]  # the retrieved list, topped up with the most popular song (as evaluated)
        with pytest.raises(ArtifactError, match="the model retrieves none: rerun evaluate_tiger.py"):
            load_hybrid(cfg, training, None)
    else:
        assert fused == [["g1", "a", "g2"]]  # the gym playlists' songs, as kNN ranks them
