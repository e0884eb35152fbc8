"""Neighbour-smoothed targets (targets.neighbour_weight, targets.cooccurrence_weight): what similar titles' playlists
and the songs' shared playlists add to a title's targets."""

import re
from collections import Counter
from types import SimpleNamespace

import pytest

from conftest import TINY_DEMO, run_stage
from genrec.evaluate.baselines import KnnParams, TitleKNN, TrainingPlaylists
from genrec.evaluate.report import notes
from genrec.train.neighbour_targets import (CooccurrenceWalk, NeighbourVotes, neighbour_paths, own_counts, smoothed_scores,
                                      title_scores, walked_knn, walked_scores)
from genrec.train.pooled_targets import pool_examples

PLAYLISTS = TrainingPlaylists(
    titles=["Rock", "rock!", "rock anthems", "classic rock", "sleep"],
    songs=[["r1", "r2"], ["r1", "r3"], ["a1", "shared"], ["c1", "shared"], ["z1"]],
    ids=["p0", "p1", "p2", "p3", "p4"])


def votes_for(params: KnnParams) -> NeighbourVotes:
    return NeighbourVotes(TitleKNN(params).fit(PLAYLISTS.titles, PLAYLISTS.songs), PLAYLISTS)


def test_votes_come_from_similar_titles_never_from_the_titles_own_playlists():
    votes = votes_for(KnnParams(k=10, alpha=1.0))
    rock = votes(["rock"], songs=10)[0]
    assert set(rock) == {"a1", "c1", "shared"}  # not r1-r3 (own title), not z1 (no similarity)
    assert rock["shared"] == pytest.approx(rock["a1"] + rock["c1"])
    squared = votes_for(KnnParams(k=10, alpha=2.0))(["rock"], songs=10)[0]
    assert squared["a1"] == pytest.approx(rock["a1"] ** 2)


def test_k_counts_other_titles_only_and_songs_caps_the_list():
    one = votes_for(KnnParams(k=1, alpha=1.0))(["rock"], songs=10)[0]
    assert set(one) in ({"a1", "shared"}, {"c1", "shared"})  # one playlist, though two own ones rank higher
    top = votes_for(KnnParams(k=10, alpha=1.0))(["rock"], songs=1)[0]
    assert list(top) == ["shared"]


def test_unseen_title_gets_its_neighbours_and_own_counts_follow_the_normalised_title():
    votes = votes_for(KnnParams(k=10, alpha=1.0))
    assert set(votes(["rock ballads"], songs=10)[0]) >= {"r1", "a1"}  # no own title to leave out
    assert own_counts(PLAYLISTS, ["ROCK", "jazz"]) == [Counter({"r1": 2, "r2": 1, "r3": 1}), Counter()]


def test_smoothed_scores_add_weighted_votes_and_weight_zero_keeps_own_songs_only():
    own, votes = Counter({"r1": 2}), {"r1": 0.5, "a1": 0.25}
    assert smoothed_scores(own, votes, 2.0) == {"r1": 3.0, "a1": 0.5}
    assert smoothed_scores(own, votes, 0.0) == {"r1": 2.0}


def test_neighbour_paths_key_titles_by_token_ids_and_merge_songs_sharing_an_id():
    votes = votes_for(KnnParams(k=10, alpha=1.0))
    title_ids = {"Rock": [7, 1], "rock!": [7, 1], "sleep": [8, 1]}
    song_paths = {"a1": (3, 4, 1), "c1": (3, 4, 1), "shared": (3, 5, 1), "r1": (2, 2, 1), "r2": (2, 3, 1),
                  "r3": (2, 4, 1), "z1": (6, 6, 1)}
    extra = neighbour_paths(votes, title_ids, song_paths, weight=2.0, songs=10)
    assert set(extra) == {(7, 1), (8, 1)}
    rock = votes(["Rock"], songs=10)[0]
    assert extra[(7, 1)] == {(3, 4, 1): pytest.approx(2 * (rock["a1"] + rock["c1"])),
                             (3, 5, 1): pytest.approx(2 * rock["shared"])}
    assert extra[(8, 1)] == {}


def test_walk_splits_each_song_over_its_playlists_and_each_playlist_over_its_songs():
    walk = CooccurrenceWalk(votes_for(KnnParams(k=10)).knn)
    # r1 -> p0, p1 (half each) -> a quarter to each of their songs; what returns to r1 is dropped.
    assert walk([{"r1": 1.0}], songs=10) == [{"r2": 0.5, "r3": 0.5}]
    # shared (2) -> p2, p3 (1 each); a1 (1) -> p2. p2's 2 -> a1 1, shared 1; p3's 1 -> c1 0.5, shared 0.5.
    # Less what came straight back (shared 1, a1 0.5): a1 0.5, shared 0.5 (from a1), c1 0.5.
    shares = walk([{"shared": 2.0, "a1": 1.0}], songs=10)[0]
    assert shares == {"a1": pytest.approx(1 / 3), "shared": pytest.approx(1 / 3), "c1": pytest.approx(1 / 3)}
    # songs caps the list; shares stay shares of the whole walk. A song alone in its playlists walks nowhere.
    assert walk([{"r1": 1.0}, {"z1": 1.0}], songs=1) == [{"r2": 0.5}, {}]


def test_walked_scores_add_the_walk_at_weight_times_the_titles_total():
    assert walked_scores({"r1": 2.0}, {"r2": 0.5, "r3": 0.5}, 2.0) == {"r1": 2.0, "r2": 2.0, "r3": 2.0}
    assert walked_scores({"r1": 2.0}, {"r1": 1.0}, 0.5) == {"r1": 3.0}


def test_walked_knn_adds_the_company_of_knns_songs_and_weight_zero_is_knn():
    knn = TitleKNN(KnnParams(k=1, alpha=1.0)).fit(PLAYLISTS.titles, PLAYLISTS.songs)
    walk = CooccurrenceWalk(knn)
    assert knn.recommend(["classic rock"], 3) == [["shared", "c1", "r1"]]  # p3's songs, then popularity
    assert walked_knn(knn, walk, ["classic rock"], 0.0, 10, 3) == [["shared", "c1", "r1"]]
    # Votes c1 1, shared 1 walk to c1 0.25, shared 0.5, a1 0.25 (p2 holds shared and a1); times 4 x 2:
    # shared 5, c1 3, a1 2, so a1 (never in a neighbour) displaces r1 (popularity).
    assert walked_knn(knn, walk, ["classic rock"], 4.0, 10, 3) == [["shared", "c1", "a1"]]
    assert walked_knn(knn, walk, [], 4.0, 10, 3) == []


def test_neighbour_paths_with_the_walk_alone_add_walked_songs_not_own_counts_again():
    votes = votes_for(KnnParams(k=10, alpha=1.0))
    walk = CooccurrenceWalk(votes.knn)
    title_ids = {"Rock": [7, 1], "rock!": [7, 1], "sleep": [8, 1]}
    song_paths = {"a1": (3, 4, 1), "c1": (3, 4, 1), "shared": (3, 5, 1), "r1": (2, 2, 1), "r2": (2, 3, 1),
                  "r3": (2, 4, 1), "z1": (6, 6, 1)}
    own = own_counts(PLAYLISTS, ["rock"])
    assert title_scores(votes, ["rock"], own, 0.0, 10) == [{"r1": 2.0, "r2": 1.0, "r3": 1.0}]
    # Own counts r1 2, r2 1, r3 1 (total 4) walk to r1 1, r2 0.5, r3 0.5: shares 1/2, 1/4, 1/4, times 2 x 4.
    extra = neighbour_paths(votes, title_ids, song_paths, weight=0.0, songs=10, walk=walk, walk_weight=2.0)
    assert extra == {(7, 1): {(2, 2, 1): pytest.approx(4.0), (2, 3, 1): pytest.approx(2.0),
                              (2, 4, 1): pytest.approx(2.0)},
                     (8, 1): {}}


def test_pooled_examples_add_neighbour_counts_before_sharpening_and_keep_weights():
    inputs, labels = [[10, 11, 1]] * 4, [[5, 7, 1]] * 3 + [[5, 8, 1]]
    extra = {(10, 11, 1): {(6, 9, 1): 4.0}}
    plain = pool_examples(inputs, labels, pairs_per_example=2, seed=0, extra=extra)
    assert len(plain) == 2 and sum(plain.weights) == pytest.approx(4.0)
    assert plain.targets[0][0] == ([5, 6], [0.5, 0.5])  # 3 + 1 own pairs against 4.0 of neighbour votes
    sharp = pool_examples(inputs, labels, pairs_per_example=2, seed=0, extra=extra, sharpening=2.0)
    assert sharp.targets[0][0] == ([5, 6], [pytest.approx(10 / 26), pytest.approx(16 / 26)])  # 9 + 1 vs 16


def test_target_ceiling_bench_scores_each_weight_beside_title_knn(tiny_demo):
    for script in ("train_rq_kmeans.py", "prepare_corpus.py"):
        run_stage(script, *TINY_DEMO, cwd=tiny_demo)
    tables = {}
    # The evaluated kNN's tuning, the retriever's, and the retriever's with title vectors mixed in (as training
    # retrieves: only with a title encoder).
    for knn, vectors, encoder in (("baseline", 0.0, ""), ("retrieval", 0.0, ""), ("retrieval", 0.5, "minilm"),
                                  ("retrieval", 0.5, "")):
        out = run_stage("bench/target_ceiling.py", *TINY_DEMO, "--weights", "0", "1", "--walks", "0", "4",
                        "--knn", knn, "--network.title_encoder", encoder,
                        "--retrieval.vector_weight", str(vectors), cwd=tiny_demo).stdout
        mixed = vectors if encoder else 0.0
        assert f"title kNN ({knn}): KnnParams(" in out and f"vector_weight={mixed})" in out
        for split in ("val", "test"):
            table = out.split(f"\n{split}: ")[1].split("\n\n")[0]
            rows = re.findall(r"^\| ([^|]+?) \| ([\d.]+) \| ([\d.]+) \|", table, flags=re.M)
            assert [name for name, _, _ in rows] == [
                "title kNN", "title kNN, cooccurrence walk 4",
                "targets, neighbour_weight 0", "targets, neighbour_weight 0, cooccurrence_weight 4",
                "targets, neighbour_weight 1", "targets, neighbour_weight 1, cooccurrence_weight 4"]
            assert all(0 < float(ndcg) <= 1 and 0 <= float(rprec) <= 1 for _, ndcg, rprec in rows)
            # Without an encoder the weight is set aside: the very tables of TF-IDF alone.
            assert tables.setdefault((knn, mixed, split), rows) == rows
    # Own-playlist targets (neighbour weight 0, no walk) use no kNN at all: the same under every kNN.
    assert tables["baseline", 0.0, "test"][2] == tables["retrieval", 0.0, "test"][2] == \
        tables["retrieval", 0.5, "test"][2]
    assert tables["retrieval", 0.5, "test"][0] != tables["retrieval", 0.0, "test"][0]  # the vectors move kNN's list


@pytest.mark.parametrize("recorded, walks", [({"weight": 0.5, "cooccurrence_weight": 32.0}, True),
                                             ({"weight": 0.5}, False)])  # a model trained before the walk existed
def test_evaluation_notes_say_which_smoothed_targets_the_model_learnt(recorded, walks):
    bundle = SimpleNamespace(retriever=None, manifest={"summary": {"neighbour_targets": recorded}},
                             vocab=SimpleNamespace(collision_strategy="suffix"))
    said = " ".join(notes(bundle, {"partner": "title_knn", "weight": 0.5, "c": 60.0}))
    assert f"targets.cooccurrence_weight {32 if walks else 0}" in said and "targets.neighbour_weight 0.5" in said
    assert ("songs its songs share training playlists with" in said) == walks
