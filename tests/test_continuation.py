"""Playlist continuation (genrec.evaluate.continuation): categories, seeds never hits nor recommended, the metrics."""

from __future__ import annotations

import numpy as np
import pytest

from genrec.evaluate.baselines import PopularityBaseline, TitleKNN
from genrec.evaluate.continuation import (BASELINES, CATEGORIES, MIN_HELD_OUT, MIX_GRIDS, Category, Cases,
                                          ContinuationSystems, ItemCooccurrence, ItemVectors, PlaylistNeighbours,
                                          SeededWalk, category_cases, continued, evaluate_continuation, format_tables,
                                          nearest_mix, shares, tune_walk_mix)
from genrec.evaluate.metrics import bootstrap_mean, recommended_song_clicks
from genrec.evaluate.playlists import EvalPlaylists
from genrec.train.neighbour_targets import CooccurrenceWalk


def songs(*numbers: int) -> list[str]:
    return [f"s{i}" for i in numbers]


def held_out(n_playlists: int, length: int, offset: int = 0) -> EvalPlaylists:
    """Playlists of ``length`` songs each, titled by the taste (even / odd songs) they hold."""
    truths = [songs(*range(i % 2, 2 * length, 2))[offset % 3:][:length] for i in range(n_playlists)]
    return EvalPlaylists([f"p{offset}_{i}" for i in range(n_playlists)],
                         ["even party" if i % 2 == 0 else "odd chill" for i in range(n_playlists)], truths, "test")


def test_categories_are_the_challenge_s_ten():
    assert [(c.seeds, c.random, c.title) for c in CATEGORIES] == [
        (0, False, True), (1, False, True), (5, False, True), (5, False, False), (10, False, True),
        (10, False, False), (25, False, True), (25, True, True), (100, False, True), (100, True, True)]


def test_category_cases_split_seeds_from_the_held_out_rest():
    playlists = EvalPlaylists(["a", "b", "c"], ["road trip", "gym", "sleep"],
                              [songs(*range(12)), songs(*range(20, 20 + 5 + MIN_HELD_OUT)), songs(1, 2, 3)], "test")
    first = category_cases(playlists, Category("title + first 5", 5), seed=0)
    assert first.rows == [0, 1]  # "c" is too short for 5 seeds and MIN_HELD_OUT held out
    assert first.seeds[0] == songs(0, 1, 2, 3, 4) and first.truths[0] == songs(*range(5, 12))
    assert first.titles == ["road trip", "gym"]
    hidden = category_cases(playlists, Category("first 5, no title", 5, title=False), seed=0)
    assert hidden.titles == ["", ""] and hidden.seeds == first.seeds
    drawn = category_cases(playlists, Category("title + random 5", 5, random=True), seed=3)
    for seeds, truth, row in zip(drawn.seeds, drawn.truths, drawn.rows):
        full = playlists.truths[row]
        assert len(seeds) == 5 and not set(seeds) & set(truth) and sorted(seeds + truth) == sorted(full)
        assert seeds == [s for s in full if s in seeds]  # in playlist order
    assert category_cases(playlists, Category("r", 5, random=True), seed=3).seeds == drawn.seeds
    assert category_cases(playlists, Category("r", 5, random=True), seed=4).seeds != drawn.seeds


def test_continued_removes_the_seeds_and_fills():
    assert continued(["a", "b", "c"], ["b"], ["d", "a", "e"], 4) == ["a", "c", "d", "e"]


def test_recommended_song_clicks_by_hand():
    truth = ["x"]
    assert recommended_song_clicks(["x"] + songs(*range(30)), truth) == 0
    assert recommended_song_clicks(songs(*range(10)) + ["x"], truth) == 1
    assert recommended_song_clicks(songs(*range(25)) + ["x"], truth) == 2
    assert recommended_song_clicks(songs(*range(500)), truth) == 51  # the Challenge's value for no hit in 500


def test_bootstrap_mean_averages_groups_and_skips_absent_playlists():
    values = np.array([[1.0, np.nan], [3.0, 10.0], [np.nan, 20.0]])
    out = bootstrap_mean(values)
    assert out["mean"] == pytest.approx((2.0 + 15.0) / 2)
    assert out["ci95"][0] <= out["mean"] <= out["ci95"][1]
    assert np.isnan(bootstrap_mean(np.array([[np.nan], [np.nan]]))["mean"])


@pytest.fixture
def systems() -> ContinuationSystems:
    train = held_out(40, 12, offset=1)
    popularity = PopularityBaseline(train.truths)
    knn = TitleKNN().fit(train.titles, train.truths, popularity)
    catalogue = {s for t in train.truths for s in t}
    ids = sorted(catalogue)
    # Item vectors that tell the two tastes apart.
    vectors = np.array([[1.0, 0.1 * i] if int(s[1:]) % 2 == 0 else [-1.0, 0.1 * i] for i, s in enumerate(ids)])
    cooccurrence = ItemCooccurrence(knn)
    return ContinuationSystems(popularity, knn, cooccurrence, ItemVectors(ids, vectors, catalogue),
                               SeededWalk(CooccurrenceWalk(knn), knn.scored, cooccurrence,
                                          PlaylistNeighbours(cooccurrence)), model=None)


@pytest.fixture
def three_playlists() -> TitleKNN:
    """One playlist holds both seeds a and b, two hold one each."""
    truths = [["a", "b", "x"], ["a", "y"], ["b", "z", "w", "v"]]
    return TitleKNN().fit(["one", "two", "three"], truths, PopularityBaseline(truths))


def test_playlist_neighbours_vote_with_their_sharpened_cosine_by_hand(three_playlists):
    """Cosines with the seeds {a, b}: 2 / sqrt(3), 1 / sqrt(2), 1 / 2. The two nearest playlists vote with the
    square of theirs (4/3 and 1/2); the third is not among the neighbours, so z, w and v get nothing."""
    neighbours = PlaylistNeighbours(ItemCooccurrence(three_playlists), neighbours=2, sharpness=2.0)
    (votes,) = neighbours.scored([["a", "b", "unknown"]], 10)
    assert votes == pytest.approx({"a": 4 / 3 + 1 / 2, "b": 4 / 3, "x": 4 / 3, "y": 1 / 2})
    (flat,) = PlaylistNeighbours(ItemCooccurrence(three_playlists), neighbours=3, sharpness=1.0).scored([["a", "b"]], 10)
    assert flat["z"] == pytest.approx(1 / 2) and flat["x"] == pytest.approx(2 / 3 ** 0.5)
    assert neighbours.scored([["unknown"]], 10) == [{}]


def test_the_walk_mixes_in_the_similar_playlists_only_at_their_share(three_playlists):
    cooccurrence = ItemCooccurrence(three_playlists)
    walk = SeededWalk(CooccurrenceWalk(three_playlists), three_playlists.scored, cooccurrence,
                      PlaylistNeighbours(cooccurrence, neighbours=2))
    (part,) = walk.parts(Cases(Category("seeds", 2, title=False), [0], [""], [["a", "b"]], [[]]))
    counts = three_playlists.popularity.counts
    base = {"title_share": 0.0, "popularity_penalty": 0.0, "cooccurrence_share": 0.0}
    only_playlists = SeededWalk.mixed(part, {**base, "playlist_share": 1.0}, counts)
    assert {song: v for song, v in only_playlists.items() if v} == pytest.approx(part.playlists)
    assert part.playlists == pytest.approx(shares({"a": 11 / 6, "b": 4 / 3, "x": 4 / 3, "y": 1 / 2}))
    # A mix recorded before the share existed (an older bundle's) serves the walk without the playlists' votes.
    assert SeededWalk.mixed(part, base, counts) == SeededWalk.mixed(part, {**base, "playlist_share": 0.0}, counts)
    assert SeededWalk.mixed(part, base, counts) == pytest.approx(part.walked)
    half = SeededWalk.mixed(part, {**base, "playlist_share": 0.5}, counts)
    assert half["z"] == pytest.approx(0.5 * part.walked["z"]) and half["y"] > 0.5 * part.walked.get("y", 0.0)


def test_the_walk_mix_is_tuned_one_parameter_after_another_ties_to_the_grid_s_first_value():
    asked = []

    def walk_lists(mix):
        asked.append(dict(mix))
        return mix  # the score below reads the mix itself

    def score(mix, truths):
        assert truths == ["truth"]
        # Best at title share 0.75 and co-occurrence share 0.5 (the latter only once the title share is tuned);
        # the popularity penalty and the playlists' share do not matter (ties).
        return -abs(mix["title_share"] - 0.75) - (abs(mix["cooccurrence_share"] - 0.5) if mix["title_share"] else 1)

    mix, trials = tune_walk_mix(walk_lists, ["truth"], score)
    assert mix == {"title_share": 0.75, "popularity_penalty": 0.0, "cooccurrence_share": 0.5, "playlist_share": 0.0}
    assert len(trials) == len(asked) == sum(len(grid) for _, grid in MIX_GRIDS)
    assert all(t["cooccurrence_share"] == 0.0 for t in trials[:7]) and trials[7]["title_share"] == 0.75


def test_the_nearest_tuned_category_serves_a_request():
    rows = [{"seeds": s, "title": t, "random": r, "name": f"{s}{t}{r}"}
            for s, t, r in ((1, True, False), (5, True, False), (5, False, False), (25, True, False), (25, True, True))]
    assert nearest_mix(rows, 4, True)["name"] == "5TrueFalse"
    assert nearest_mix(rows, 3, True)["name"] == "1TrueFalse"  # a tie goes to fewer seeds
    assert nearest_mix(rows, 30, True)["name"] == "25TrueFalse"  # first songs before random ones
    assert nearest_mix(rows, 1, False)["name"] == "5FalseFalse"  # the same title use first


def test_no_system_recommends_a_seed(systems):
    test = held_out(10, 14)
    for category in CATEGORIES[:8]:
        cases = category_cases(test, category, seed=0)
        rankings, _ = systems.rankings(cases, test.ids, 10, (category_cases(held_out(6, 14, 2), category, 0),
                                                             held_out(6, 14, 2).ids),
                                       score=lambda r, t: float(np.mean([len(set(a) & set(b)) for a, b in zip(r, t)])))
        assert set(rankings) == {"popularity", "title_knn", "cooccurrence_knn", "item2vec", "walk", "hybrid"}
        for system, ranked in rankings.items():
            for songs_out, seeds in zip(ranked, cases.seeds):
                assert len(songs_out) == 10 and len(set(songs_out)) == 10, system
                assert not set(songs_out) & set(seeds), (system, category.name)


def test_seeds_are_never_counted_as_hits(systems):
    """A playlist made only of the most popular songs: with its first 5 given, popularity recommends the next
    popular ones, and only the held-out songs count."""
    top = systems.popularity.ranking[:12]
    test = EvalPlaylists(["q"], ["even party"], [top], "test")
    result = evaluate_continuation(systems, test, test, 5, [5], seed=0, categories=[Category("first 5", 5)])
    # The seeds are top[:5]; popularity's 5 songs are then top[5:10], all held out: a perfect R-precision would
    # need 7, so 5 hits of 7 is the most it can get, and no seed was credited.
    assert result["systems"]["popularity"]["r_precision"]["first 5"]["mean"] == pytest.approx(5 / 7)
    assert "overall" in result["systems"]["walk"]["ndcg@5"]
    assert "popularity" in format_tables(result)


def test_seeds_move_the_seeded_systems_to_the_seeds_taste(systems):
    """No title, five odd songs given: co-occurrence, item2vec and the walk recommend odd songs."""
    test = held_out(2, 14)
    cases = category_cases(test, Category("first 5, no title", 5, title=False), seed=0)
    rankings, _ = systems.rankings(cases, test.ids, 5)
    for system in ("cooccurrence_knn", "item2vec", "walk"):
        odd = cases.seeds[1][0][1:]
        assert all(int(s[1:]) % 2 == int(odd) % 2 for s in rankings[system][1]), system


def test_the_script_scores_every_category_and_the_bundle_then_serves_the_best_seeded_system(tiny_pipeline, tmp_path):
    """evaluate_continuation.py on a copy of the tiny pipeline's run (with its model), then export_bundle.py records the
    seeded system, and the generator serves it with seeds it never returns."""
    import json
    import shutil

    from conftest import TINY_EVAL, run_stage
    from genrec import PlaylistGenerator

    for part in ("data", "outputs", "models"):
        shutil.copytree(tiny_pipeline / part, tmp_path / part)
    proc = run_stage("evaluate_continuation.py", *TINY_EVAL, cwd=tmp_path)
    assert "title + first 5" in proc.stdout and "the best baseline" in proc.stdout
    result = json.loads((tmp_path / "outputs" / "continuation_metrics.json").read_text(encoding="utf-8"))
    assert [c["name"] for c in result["categories"]] == [c.name for c in CATEGORIES] and result["model"] is True
    assert set(result["systems"]) == {"popularity", "title_knn", "cooccurrence_knn", "item2vec", "model", "walk",
                                      "hybrid"}
    assert (tmp_path / "outputs" / "continuation_model_rankings.json").is_file()
    # The model against each category's best baseline, on the same playlists: the difference of their means.
    assert "model minus each category's best baseline" in proc.stdout
    versus = result["model_versus_best_baseline"]
    assert set(versus) == {c.name for c in CATEGORIES} | {"overall"}
    playlists = {c["name"]: c["playlists"] for c in result["categories"]}
    for name, v in versus.items():
        if not playlists.get(name, 1):  # a category no tiny playlist is long enough for
            continue
        means = {s: result["systems"][s][v["metric"]][name]["mean"] for s in result["systems"]}
        assert v["baseline"] == max(BASELINES, key=means.get)
        assert v["mean"] == pytest.approx(means["model"] - means[v["baseline"]])
        assert v["ci95"][0] <= v["mean"] <= v["ci95"][1]
    run_stage("export_bundle.py", "--decode.num_beams", "10", "--decode.batch_size", "8", cwd=tmp_path)
    serving = json.loads((tmp_path / "models" / "bundle" / "serving.json").read_text(encoding="utf-8"))
    assert serving["seeded"]["system"] == {"walk": "seed_walk", "hybrid": "seed_hybrid"}[
        result["versus_best_baseline"]["system"]]
    generator = PlaylistGenerator.load(tmp_path / "models" / "bundle")
    seeds = [s.song_id for s in generator.generate("late night drive", num_songs=3, system="knn").songs]
    playlist = generator.generate("late night drive", num_songs=10, seeds=seeds)
    assert playlist.system == serving["seeded"]["system"] and not set(seeds) & {s.song_id for s in playlist.songs}
