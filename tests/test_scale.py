"""The paths that keep a million playlists within memory give what the simple paths give, and the scale bench runs.

Each memory-bounded path (blocks of titles, chunks of rows, rows one at a time) is run with blocks small enough to
split tiny data, and compared with the one-block or whole-table result, or with the plain computation it replaced.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from scipy import sparse

from config import DataConfig
from conftest import REPO
from genrec.corpus.build import CorpusRow, read_corpus, write_corpus
from genrec.data import dataset as dataset_module
from genrec.data import files as files_module
from genrec.data.files import load_playlists
from genrec.errors import DataError
from genrec.evaluate import baselines
from genrec.evaluate.baselines import KnnParams, TitleKNN, TrainingPlaylists, read_training_playlists
from genrec.train.neighbour_targets import CooccurrenceWalk, NeighbourVotes, walked_knn, walked_knn_scores

_spec = importlib.util.spec_from_file_location("scale_bench", REPO / "bench" / "scale.py")
scale_bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(scale_bench)

rng = np.random.default_rng(0)
WORDS = ["chill", "gym", "rock", "jazz", "road", "trip", "sad", "party", "summer", "night"]
# Titles repeat (equal similarities: the ties a different selection would break differently).
TITLES = [" ".join(rng.choice(WORDS, size=rng.integers(1, 3))) for _ in range(120)]
SONGS = [[f"s{j}" for j in dict.fromkeys(rng.integers(0, 60, size=rng.integers(2, 12)).tolist())] for _ in TITLES]
QUERIES = ["chill night", "gym", "road trip", "jazz", "nothing shared"]


@pytest.fixture
def knn() -> TitleKNN:
    return TitleKNN(KnnParams(k=10, alpha=2.0, length_norm=0.5)).fit(TITLES, SONGS)


def per_playlist_similarities(knn: TitleKNN, titles: list[str]) -> np.ndarray:
    """The product before distinct titles: one TF-IDF row per training playlist, repeated titles included."""
    return (knn._vectorise(titles) @ knn._vectorise(TITLES).T.tocsr()).toarray()


def dense_neighbours(knn: TitleKNN, titles: list[str], k: int) -> tuple[np.ndarray, np.ndarray]:
    """The selection before blocks: every title's similarities to every training playlist's title at once."""
    dense = per_playlist_similarities(knn, titles)
    top = np.argpartition(-dense, k - 1, axis=1)[:, :k]
    top_sims = np.take_along_axis(dense, top, axis=1)
    order = np.argsort(-top_sims, axis=1, kind="stable")
    return np.take_along_axis(top, order, axis=1), np.take_along_axis(top_sims, order, axis=1)


def test_knn_blocks_give_the_dense_selection(knn, monkeypatch):
    whole = dense_neighbours(knn, QUERIES, 25)
    ranked = knn.recommend(QUERIES, 15)
    monkeypatch.setattr(baselines, "DENSE_BLOCK_BYTES", 8 * len(TITLES))  # one title per block
    assert baselines.block_rows(1024, len(TITLES)) == 1
    blocked = knn.neighbours(QUERIES, 25)
    assert np.array_equal(blocked[0], whole[0]) and np.array_equal(blocked[1], whole[1])
    assert knn.recommend(QUERIES, 15) == ranked


def test_repeated_titles_are_scored_once_with_the_same_rows(knn, monkeypatch):
    titles = ["gym", "chill night", "gym", "road trip", "chill night", "gym"]
    whole = dense_neighbours(knn, titles, 25)
    scored = []
    similarities = knn.similarities
    monkeypatch.setattr(knn, "similarities", lambda block: scored.extend(block) or similarities(block))
    found = knn.neighbours(titles, 25)
    assert sorted(scored) == sorted(set(titles))
    assert np.array_equal(found[0], whole[0]) and np.array_equal(found[1], whole[1])


def test_playlists_sharing_a_title_are_scored_through_it_exactly_as_one_by_one(knn):
    assert len(set(knn.title_of)) == len(set(TITLES)) < len(TITLES)
    queries = [*QUERIES, *TITLES[:20]]
    assert np.array_equal(knn.similarities(queries), per_playlist_similarities(knn, queries))
    assert np.array_equal(knn.best_similarity(queries), per_playlist_similarities(knn, queries).max(axis=1))


def test_knn_membership_matrix_is_the_listed_one(knn):
    rows = [i for i, songs in enumerate(SONGS) for _ in songs]
    cols = [knn.songs.index(s) for songs in SONGS for s in songs]
    listed = sparse.csr_matrix((np.ones(len(cols), dtype=np.float32), (rows, cols)), shape=knn.members.shape)
    assert (knn.members != listed).nnz == 0 and knn.members.dtype == listed.dtype


def test_walk_blocks_give_the_one_block_walk(knn, monkeypatch):
    walk = CooccurrenceWalk(knn)
    whole = walked_knn(knn, walk, QUERIES, 2.0, 30, 20)
    monkeypatch.setattr(baselines, "DENSE_BLOCK_BYTES", 8 * len(TITLES))
    assert walked_knn(knn, walk, QUERIES, 2.0, 30, 20) == whole
    assert walk([{"s1": 1.0, "s2": 0.5}, {"s3": 2.0}], 10, batch=1) == walk([{"s1": 1.0, "s2": 0.5}, {"s3": 2.0}], 10)


def test_a_repeated_title_is_walked_once_with_the_scores_it_gets_alone(knn, monkeypatch):
    walk = CooccurrenceWalk(knn)
    titles = ["gym", "chill night", "gym", "road trip", "gym"]
    alone = {title: walked_knn_scores(knn, walk, [title], 2.0, 30) for title in set(titles)}
    walked = []
    step = walk.__call__
    monkeypatch.setattr(CooccurrenceWalk, "__call__", lambda self, scores, songs: walked.append(len(scores)) or
                        step(scores, songs))
    together = walked_knn_scores(knn, walk, titles, 2.0, 30)
    assert walked == [3] and together == [alone[title][0] for title in titles] and together[0]
    together[0]["added"] = 1.0  # each title has a dict of its own
    assert "added" not in together[2]


def test_neighbour_votes_in_blocks_give_the_one_block_votes(knn, monkeypatch):
    votes = NeighbourVotes(knn, TrainingPlaylists(TITLES, SONGS, [f"p{i}" for i in range(len(TITLES))]))
    titles = sorted(set(TITLES))
    whole = votes(titles, 20)
    monkeypatch.setattr(baselines, "DENSE_BLOCK_BYTES", 8 * len(TITLES))
    assert votes(titles, 20) == whole and any(whole)


def test_training_playlists_read_row_by_row(tmp_path):
    rows = [CorpusRow("p1", "gym", "<a_1>", ["x"]), CorpusRow("p2", "run", "<a_2>", ["y", "x"]),
            CorpusRow("p1", "gym", "<a_3>", ["z"]), CorpusRow("p1", "gym", "<a_1>", ["x"])]
    path = tmp_path / "train.tsv"
    write_corpus(path, rows)
    streamed = read_training_playlists(path)
    assert streamed == TrainingPlaylists.from_corpus(read_corpus(path))
    assert streamed.songs[0][0] is streamed.songs[1][1]  # one string per song id
    held = read_corpus(path)
    assert held == rows and held[0].playlist_id is held[2].playlist_id and held[0].song_ids[0] is held[3].song_ids[0]


def write_songs_table(path, pairs) -> DataConfig:
    cfg = DataConfig(playlist_info_file=str(path / "info.csv"), playlist_songs_file=str(path / "songs.csv"))
    pd.DataFrame({"glid": ["p1", "p2", "p3"], "listname": ["a", "b", "c"]}).to_csv(path / "info.csv", index=False)
    pd.DataFrame(pairs, columns=["special_gid", "mixsongid"]).to_csv(path / "songs.csv", index=False)
    return cfg


def test_playlist_songs_read_in_chunks(tmp_path, monkeypatch):
    pairs = [("p1", "x"), ("p2", "y"), ("p1", "z"), ("p1", "x"), ("p9", "y"), ("p3", "x"), ("p2", "y")]
    cfg = write_songs_table(tmp_path, pairs)
    whole = load_playlists(cfg)
    monkeypatch.setattr(files_module, "PLAYLIST_SONG_CHUNK_ROWS", 2)
    chunked = load_playlists(cfg)
    assert chunked == whole
    assert chunked.songs == [["x", "z"], ["y"], ["x"]]
    assert chunked.report["rows_repeated_song"] == 2 and chunked.report["rows_unknown_playlist"] == 1


def test_chunked_read_names_the_file_line(tmp_path, monkeypatch):
    cfg = write_songs_table(tmp_path, [("p1", "x"), ("p2", "y"), ("p1", "z"), ("p3", "bad id")])
    monkeypatch.setattr(files_module, "PLAYLIST_SONG_CHUNK_ROWS", 2)
    with pytest.raises(DataError) as err:
        load_playlists(cfg)
    assert "line 5" in str(err.value) and "'bad id'" in str(err.value)


def test_playlist_songs_written_in_blocks(tmp_path, monkeypatch):
    ids, songs = ["p1", "p2", "p3"], [["x", "y"], [], ["z", "x", "w"]]
    pairs = [(pid, sid) for pid, listed in zip(ids, songs) for sid in listed]
    pd.DataFrame(pairs, columns=["special_gid", "mixsongid"]).to_csv(tmp_path / "plain.csv", index=False,
                                                                     encoding="utf-8")
    monkeypatch.setattr(dataset_module, "PLAYLISTS_PER_WRITE", 2)
    dataset_module.write_playlist_songs(tmp_path / "blocks.csv", ids, songs)
    assert (tmp_path / "blocks.csv").read_bytes() == (tmp_path / "plain.csv").read_bytes()


@pytest.fixture(scope="module")
def smallest_size(tmp_path_factory):
    """bench/scale.py at 300 playlists: (its output folder, the finished process)."""
    work = tmp_path_factory.mktemp("scale")
    out = work / "scale"
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "scale.py"), "--sizes", "300", "--out", str(out),
                           "--max-memory-gb", "4"], capture_output=True, text=True, timeout=600, cwd=work)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, proc


def test_scale_bench_smallest_size(smallest_size):
    """Every stage of bench/scale.py at 300 playlists, each with a time and a peak memory, in the table and JSON."""
    out, proc = smallest_size
    result = json.loads((out / "scale.json").read_text(encoding="utf-8"))
    stages = result["sizes"][0]["stages"]
    assert list(stages) == list(scale_bench.STAGES)
    for stage, measured in stages.items():
        assert measured["returncode"] == 0 and measured["seconds"] > 0 and 0 < measured["peak_gb"] < 4, stage
    assert stages["import"]["item2vec_seconds"] >= 0 and result["sizes"][0]["rows"] > 300 * 5
    assert all(stage in proc.stdout for stage in scale_bench.STAGES)


def run_bench(script: str, *args: str, cwd) -> str:
    proc = subprocess.run([sys.executable, str(REPO / "bench" / script), *args], capture_output=True, text=True,
                          timeout=600, cwd=cwd)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_training_and_title_knn_benches_on_a_bench_size(smallest_size):
    """bench/training_memory.py (both ways, or the counted way alone), bench/title_knn_speed.py and
    bench/playlists_file.py on its corpus; bench/rank_examples.py on counts of its own."""
    out, _ = smallest_size
    config = ["--config", str(out / "300" / "data" / "config.yaml"), "--corpus.target_mode", "single"]
    both = run_bench("training_memory.py", *config, cwd=out)
    assert "same examples" in both and {"listed", "counted"} <= {line.split()[0] for line in both.splitlines() if line}
    alone = run_bench("training_memory.py", *config, "--ways", "counted", cwd=out)
    examples = re.search(r"pairs -> (\d+) pooled examples", both).group(1)
    assert f"pairs -> {examples} pooled examples" in alone and "listed" not in alone and "same examples" not in alone
    speed = run_bench("title_knn_speed.py", *config, "--titles", "20", cwd=out)
    assert "neighbours equal: True" in speed and re.search(r"distinct titles / every playlist time: [\d.]+", speed)
    stored = run_bench("playlists_file.py", *config, cwd=out)
    assert "same playlists read back" in stored
    size = float(re.search(r"compact / json: size ([\d.]+)", stored).group(1))
    assert 0 < size < 1, stored  # each song id once, not once per playlist
    ranks = run_bench("rank_examples.py", "--titles", "40", "--pairs", "20000", "--songs", "5000", cwd=out)
    assert "same examples in both ranks" in ranks and re.search(r"-> \d+ pooled examples, \d+ soft targets", ranks)
    assert re.search(r"^new / old: size [\d.]+", ranks, re.M), ranks


def measured_at(playlists: int, seconds: float, peak_gb: float) -> dict:
    return {"size": str(playlists), "playlists": playlists, "rows": 50 * playlists,
            "stages": {stage: {"seconds": seconds, "peak_gb": peak_gb, "returncode": 0} for stage in scale_bench.STAGES}}


def test_bench_predicts_from_the_sizes_measured():
    one = [measured_at(1000, 10.0, 1.0)]
    assert scale_bench.predicted(one, "import", 10_000) == {"seconds": 100.0, "peak_gb": 10.0}
    # A fixed cost plus a linear one: the straight line; faster than linear: the power law.
    two = [measured_at(1000, 10.0, 1.0), measured_at(2000, 15.0, 4.0)]
    guess = scale_bench.predicted(two, "import", 4000)
    assert guess["seconds"] == pytest.approx(25.0) and guess["peak_gb"] == pytest.approx(16.0)
    assert scale_bench.parse_size("1M") == 1_000_000 and scale_bench.size_label(100_000) == "100k"


def test_bench_refuses_a_size_predicted_to_pass_the_memory_bound(tmp_path):
    args = argparse.Namespace(out=str(tmp_path), max_memory_gb=4.0, stages=list(scale_bench.STAGES), seed=0)
    entry = scale_bench.run_size(1000, args, [measured_at(100, 1.0, 0.5)], tmp_path / "log")
    assert list(entry["stages"]) == ["synthesize"]
    assert "predicted peak 5.0 GB > 4.0 GB" in entry["stages"]["synthesize"]["refused"]
    assert not (tmp_path / "1k" / "slices").exists()


def test_song_vectors_parsed_as_floats_equal_the_checked_strings(tmp_path, monkeypatch):
    vectors = np.random.default_rng(1).normal(size=(30, 4))
    frame = pd.DataFrame(vectors, columns=[f"v{i}" for i in range(4)])
    frame.insert(0, "song_id", [f"00{i}" for i in range(30)])
    frame.to_csv(tmp_path / "vectors.csv", index=False, float_format="%.6g")
    cfg = DataConfig(song_vector_file=str(tmp_path / "vectors.csv"), input_dim=4)
    assert files_module._parsed_as_floats(tmp_path / "vectors.csv", 4) is not None
    fast = files_module.load_song_vectors(cfg)
    monkeypatch.setattr(files_module, "_parsed_as_floats", lambda *args: None)
    slow = files_module.load_song_vectors(cfg)
    assert fast.ids == slow.ids and fast.ids[0] == "000" and np.array_equal(fast.vectors, slow.vectors)


def test_song_vectors_with_a_bad_value_are_named_by_the_string_checks(tmp_path):
    (tmp_path / "vectors.csv").write_text("song_id,v0,v1\na,1.0,2.0\nb,inf,1.0\n", encoding="utf-8")
    assert files_module._parsed_as_floats(tmp_path / "vectors.csv", 2) is None
    with pytest.raises(DataError, match="line 3.*'inf' is not a finite number"):
        files_module.load_song_vectors(DataConfig(song_vector_file=str(tmp_path / "vectors.csv"), input_dim=2))


def test_vector_quality_check_in_small_chunks_gives_the_same_report(monkeypatch):
    from genrec.data import item2vec
    from genrec.data.files import SongVectors
    generator = np.random.default_rng(2)
    vectors = SongVectors([f"s{i}" for i in range(300)], generator.normal(size=(300, 8)).astype(np.float32))
    singers = [f"a{i % 40}" for i in range(300)]
    names = [f"song {i}" for i in range(300)]
    popularity = generator.integers(1, 50, size=300)
    whole = item2vec.quality_check(vectors, names, singers, popularity, seed=0, sample=200)
    monkeypatch.setattr(item2vec, "NEIGHBOUR_BLOCK_BYTES", 16 * 300 * 3)  # three rows a chunk
    assert item2vec.quality_check(vectors, names, singers, popularity, seed=0, sample=200) == whole
    assert whole["same_singer"]["sampled_songs"] == 200


def test_item2vec_passes_shrink_past_the_word_budget(monkeypatch):
    """Small corpora keep every pass; a corpus past the budget gets fewer, never none, and gensim runs that many."""
    from config import PrepareConfig
    from genrec.data import item2vec
    assert item2vec.epochs_for(1_000) == item2vec.EPOCHS
    assert item2vec.epochs_for(item2vec.TRAINING_WORDS // 3) == 3
    assert item2vec.epochs_for(item2vec.TRAINING_WORDS * 5) == 1
    playlists = [np.array(codes) for codes in rng.integers(0, 40, size=(50, 6))]
    song_ids = [f"s{i}" for i in range(40)]
    passes = []
    monkeypatch.setattr(item2vec, "_EpochProgress", lambda epochs: passes.append(epochs) or item2vec.CallbackAny2Vec())
    monkeypatch.setattr(item2vec, "TRAINING_WORDS", 300 * 2)  # the 300 occurrences fit twice
    vectors, epochs = item2vec.train_item2vec(playlists, song_ids, 4, PrepareConfig(item2vec_workers=1), seed=0)
    assert epochs == 2 and passes == [2] and len(vectors.ids) == 40


class TitleTokens:
    """Just enough of a tokenizer for training's pair counting: a word's id, then </s>; ID tokens from 10."""

    unk_token_id, eos_token_id = 0, 1

    def __init__(self, vocab):
        self.ids = {t: i for i, t in enumerate(vocab.all_tokens(), start=10)}
        self.words: dict[str, int] = {}

    def convert_tokens_to_ids(self, tokens):
        return self.ids[tokens] if isinstance(tokens, str) else [self.ids[t] for t in tokens]

    def __call__(self, titles):
        return {"input_ids": [[self.words.setdefault(w, 1000 + len(self.words)) for w in t.split()] + [1]
                              for t in titles]}


class TitleVectors:
    """A title's vector from its text's checksum: equal titles, equal vectors."""

    def vectors(self, titles):
        import torch
        import zlib
        return [torch.tensor([float(zlib.crc32(f"{t}{i}".encode()) % 97) for i in range(4)]) for t in titles]


def test_pairs_counted_per_playlist_pool_as_the_listed_pairs():
    """Training counts single mode's (title, song) pairs playlist by playlist (a million playlists hold tens of
    millions of them); pooled, the counts give exactly the examples that listing every pair gave, retrieved songs,
    title vectors, cut titles and all."""
    import test_retrieval
    from genrec.train.batches import count_pairs, encode_titles
    from genrec.train.pooled_targets import pool_counted, pool_examples
    from genrec.model.retrieval import RetrievalSetup, song_token_ids
    rows = test_retrieval.rows_with_own_songs()
    # Two long titles that cutting to three tokens makes equal to each other: the last playlist's vector is kept.
    rows += [CorpusRow(f"long{i}", f"rock anthems of {end}", "", [s]) for i, end in enumerate(("old", "new"))
             for s in ("rock-0", "chill-1", "sleep-2")]
    vocab = test_retrieval.catalogue(sorted({s for r in rows for s in r.song_ids}))
    tokenizer = TitleTokens(vocab)
    val = [CorpusRow("v1", "rock music", "", ["rock-0", "rock-1"])]
    playlists = TrainingPlaylists.from_corpus(rows)
    setup = RetrievalSetup(playlists, val, 6, 4, vocab, tokenizer, tuning_cutoff=10)
    counted = count_pairs(playlists, tokenizer, vocab, 3, TitleVectors(), setup)

    titles, cut = encode_titles(tokenizer, [r.input_text for r in rows], 3)
    keys = [(r.input_text, setup.fold(r.playlist_id), ()) for r in rows]
    retrieved = setup.cross_fitted(keys)
    song_ids = song_token_ids(vocab, tokenizer)
    labels = [[*song_ids[r.song_ids[0]], 1] for r in rows]
    listed = pool_examples([titles[r.input_text] for r in rows], labels, 2, seed=0,
                           vectors=TitleVectors().vectors([r.input_text for r in rows]),
                           retrieved=[retrieved[key] for key in keys], sharpening=2.0)
    pooled = pool_counted(counted.by_input, counted.pairs, 2, 0, counted.vector_of, True, 2.0)
    assert cut == counted.truncated_titles == 2
    assert (counted.pairs, counted.target_tokens) == (len(rows), sum(map(len, labels)))
    for field in ("inputs", "paths", "targets", "weights", "pairs", "retrieved"):
        assert getattr(pooled, field) == getattr(listed, field), field
    assert len(pooled.vectors) == len(listed.vectors)
    assert all(a.equal(b) for a, b in zip(pooled.vectors, listed.vectors))


def test_walk_spreads_a_popular_song_over_a_seeded_sample_of_its_playlists(knn, monkeypatch):
    from genrec.train import neighbour_targets
    exact = CooccurrenceWalk(knn)
    monkeypatch.setattr(neighbour_targets, "WALK_PLAYLISTS_PER_SONG", 3)
    capped = CooccurrenceWalk(knn)
    held_exact, held = np.diff(exact.spread.indptr), np.diff(capped.spread.indptr)
    assert held_exact.max() > 3 and (held == np.minimum(held_exact, 3)).all()
    for song in range(len(held)):
        playlists = set(capped.spread.indices[capped.spread.indptr[song]:capped.spread.indptr[song + 1]])
        assert playlists <= set(exact.spread.indices[exact.spread.indptr[song]:exact.spread.indptr[song + 1]])
        weights = capped.spread.data[capped.spread.indptr[song]:capped.spread.indptr[song + 1]]
        assert np.allclose(weights, 1 / held[song])  # the step stays uniform over the playlists kept
    light = np.flatnonzero(held_exact <= 3)
    assert (capped.spread[light] != exact.spread[light]).nnz == 0
    assert (CooccurrenceWalk(knn).spread != capped.spread).nnz == 0  # the same sample on every run
    walked = capped([{"s1": 1.0, "s2": 0.5}], songs=10)[0]
    assert walked and sum(walked.values()) <= 1 + 1e-9


def test_stable_top_is_the_stable_sort_prefix():
    from genrec.train.neighbour_targets import stable_top
    generator = np.random.default_rng(3)
    for size, k in ((50, 10), (50, 50), (50, 80), (1000, 1), (7, 0)):
        values = generator.integers(0, 5, size=size).astype(np.float64)  # many ties, at the cut too
        assert stable_top(values, k).tolist() == np.argsort(-values, kind="stable")[:k].tolist()
