"""Retrieval-augmented input (retrieval.songs): no leakage in training, same retrieval at inference."""

import json
import re

import numpy as np
import pytest

from conftest import TINY_DEMO, TINY_EVAL, TINY_MODEL, run_stage, synonym_title_vectors
from genrec.evaluate.baselines import TitleKNN, TrainingPlaylists
from genrec.corpus.build import CorpusRow
from genrec.errors import ArtifactError, ConfigError
from genrec.decode.decoding import DecodingSettings, decode
from genrec.corpus.id_tokens import SemanticIdVocab
from genrec.model.t5 import TITLE_VECTORS_FILE, load_tiger
from genrec.train.pooled_targets import pool_examples
from genrec.train.neighbour_targets import CooccurrenceWalk, walked_knn
from genrec.model.retrieval import (RETRIEVAL_FILE, RETRIEVAL_PLAYLISTS_FILE, RetrievalSetup, WalkParams, fold_of,
                                   load_retriever, read_retrieval_file)
from genrec.model.title_vectors import encoder_text

TITLES = ["rock", "rock anthems", "classic rock", "chill", "chill vibes", "sleep"]


class TokenIds:
    """The one tokenizer method retrieval uses: ID tokens to ids."""

    unk_token_id = 0

    def __init__(self, vocab: SemanticIdVocab):
        self.ids = {t: i for i, t in enumerate(vocab.all_tokens(), start=10)}

    def convert_tokens_to_ids(self, tokens):
        return self.ids[tokens] if isinstance(tokens, str) else [self.ids[t] for t in tokens]


def catalogue(songs: list[str]) -> SemanticIdVocab:
    return SemanticIdVocab(2, 64, "suffix", {s: (f"<a_{i % 64}>", f"<b_{i // 64}>") for i, s in
                                                      enumerate(songs)})


def rows_with_own_songs(playlists: int = 40) -> list[CorpusRow]:
    """Playlists whose songs are shared by their title group plus two songs no other playlist has."""
    rows = []
    for p in range(playlists):
        title = TITLES[p % len(TITLES)]
        songs = [f"{title}-{j}" for j in range(4)] + [f"own-{p}-a", f"own-{p}-b"]
        rows += [CorpusRow(f"pl{p}", title, "", [s]) for s in songs]
    return rows


def setup_for(rows: list[CorpusRow], songs: int = 6, folds: int = 4,
              walk: WalkParams = WalkParams()) -> tuple[RetrievalSetup, SemanticIdVocab]:
    vocab = catalogue(sorted({s for r in rows for s in r.song_ids}))
    val = [CorpusRow("v1", "rock music", "", ["rock-0", "rock-1"]), CorpusRow("v2", "chill", "", ["chill-2"])]
    return RetrievalSetup(TrainingPlaylists.from_corpus(rows), val, songs, folds, vocab, TokenIds(vocab),
                          tuning_cutoff=10, walk=walk), vocab


def cross_fitted_rows(setup: RetrievalSetup, rows: list[CorpusRow], seeds: list[tuple] | None = None) -> list:
    """Each row's retrieved songs: its title's (with its seeds when given), from outside its playlist's fold."""
    keys = [(row.input_text, setup.fold(row.playlist_id), seeds[i] if seeds else ()) for i, row in enumerate(rows)]
    retrieved = setup.cross_fitted(keys)
    assert set(retrieved) == set(keys)  # each (title, fold) asked, retrieved once
    return [retrieved[key] for key in keys]


def decoded_songs(vocab: SemanticIdVocab, tokenizer: TokenIds, retrieved: list[list[int]]) -> list[str]:
    by_ids = {tuple(tokenizer.convert_tokens_to_ids(list(t))): s for s, t in vocab.songs.items()}
    return [by_ids[tuple(ids)] for ids in retrieved]


@pytest.mark.parametrize("walk", [WalkParams(), WalkParams(weight=8.0, songs=50)])
def test_training_rows_never_retrieve_their_own_playlists_songs(walk):
    rows = rows_with_own_songs()
    setup, vocab = setup_for(rows, walk=walk)
    tokenizer = TokenIds(vocab)
    retrieved = cross_fitted_rows(setup, rows)
    assert len(retrieved) == len(rows) and all(len(r) == 6 for r in retrieved)
    for row, songs in zip(rows, retrieved):
        names = decoded_songs(vocab, tokenizer, songs)
        assert not any(name.startswith(f"own-{row.playlist_id[2:]}-") for name in names)
        assert f"{row.input_text}-0" in names  # the title group's shared songs come from the other folds


def test_seeded_rows_copy_the_seeds_walk_without_the_seeds_or_their_own_playlists_songs():
    """A continuation row (title + seeds) retrieves the seeds' co-occurring songs, cross-fitted like a title."""
    rows = rows_with_own_songs()
    setup, vocab = setup_for(rows)
    tokenizer = TokenIds(vocab)
    # Seeds from another title group than the row's own title: the walk must follow the seeds.
    seeds = [("chill-0", f"own-{r.playlist_id[2:]}-a") if r.input_text.startswith("rock") else () for r in rows]
    retrieved = cross_fitted_rows(setup, rows, seeds)
    assert retrieved[:6] != cross_fitted_rows(setup, rows)[:6]
    for row, given, songs in zip(rows, seeds, retrieved):
        names = decoded_songs(vocab, tokenizer, songs)
        assert len(names) == 6 and not set(names) & set(given)
        assert not any(name.startswith(f"own-{row.playlist_id[2:]}-") for name in names)
        if given:
            assert "chill-1" in names
    titles = ["rock", "rock", ""]
    full = setup.full.inputs(titles, [("chill-0",), (), ("chill-0", "chill-1")])
    assert full[1] == setup.full(["rock"])[0]
    assert {"chill-1", "chill-2"} <= set(decoded_songs(vocab, tokenizer, full[0]))
    assert "chill-1" not in decoded_songs(vocab, tokenizer, full[2])


def test_inference_retrieves_from_all_training_playlists_with_the_tuned_knn():
    rows = rows_with_own_songs()
    setup, vocab = setup_for(rows)
    playlists = TrainingPlaylists.from_corpus(rows)
    knn = TitleKNN(setup.params).fit(playlists.titles, playlists.songs)
    expected = knn.recommend(["classic rock"], 6)[0]
    assert decoded_songs(vocab, TokenIds(vocab), setup.full(["classic rock"])[0]) == expected


def test_a_walked_retrieval_adds_songs_that_share_playlists_with_knns_songs():
    # "lone" shares three playlists (titles unlike any other) with a classic rock song; no similar title holds it.
    rows = rows_with_own_songs() + [CorpusRow(f"zzz{i}", "zzz", "", [s]) for i in range(3)
                                    for s in ("classic rock-0", "lone")]
    plain, vocab = setup_for(rows, songs=10)
    walked, _ = setup_for(rows, songs=10, walk=WalkParams(weight=8.0, songs=50))
    assert "lone" not in plain.full.rank(["classic rock"])[0]
    playlists = TrainingPlaylists.from_corpus(rows)
    knn = TitleKNN(walked.params).fit(playlists.titles, playlists.songs)
    expected = walked_knn(knn, CooccurrenceWalk(knn), ["classic rock"], 8.0, 50, 10)[0]
    assert "lone" in expected
    assert decoded_songs(vocab, TokenIds(vocab), walked.full(["classic rock"])[0]) == expected
    assert walked.full.rank(["classic rock"]) == [expected]


synonym_vectors = synonym_title_vectors({"workout": "rock"})


def test_a_retriever_with_title_vectors_is_saved_and_reloaded_with_them(tmp_path):
    rows = rows_with_own_songs()
    vocab = catalogue(sorted({s for r in rows for s in r.song_ids}))
    val = [CorpusRow("v1", "workout", "", ["rock-0", "rock-1"])]
    setup = RetrievalSetup(TrainingPlaylists.from_corpus(rows), val, 6, 4, vocab, TokenIds(vocab), tuning_cutoff=10,
                           vector_weight=0.5,
                           title_vectors=synonym_vectors)
    assert setup.params.vector_weight == 0.5
    assert decoded_songs(vocab, TokenIds(vocab), setup.full(["workout"])[0])[:4] == [f"rock-{j}" for j in range(4)]
    for fold_lists in cross_fitted_rows(setup, rows)[:6]:  # the folds' kNNs mix in the vectors too
        assert len(fold_lists) == 6
    setup.save(tmp_path)
    assert json.loads((tmp_path / RETRIEVAL_FILE).read_text(encoding="utf-8"))["title_knn"]["vector_weight"] == 0.5
    reloaded = load_retriever(tmp_path, vocab, TokenIds(vocab), synonym_vectors)
    assert reloaded.rank(["workout", "sleep"]) == setup.full.rank(["workout", "sleep"])
    with pytest.raises(ArtifactError, match=r"mixes in title vectors \(vector_weight 0.5\) but the model has no"):
        load_retriever(tmp_path, vocab, TokenIds(vocab))


def test_folds_are_stable_and_cover_every_fold():
    folds = [fold_of(f"pl{i}", 5) for i in range(200)]
    assert folds == [fold_of(f"pl{i}", 5) for i in range(200)]
    assert set(folds) == set(range(5))


def test_more_retrieved_songs_than_training_songs_is_a_clear_error():
    rows = [CorpusRow("pl0", "rock", "", ["a"]), CorpusRow("pl1", "pop", "", ["b"])]
    with pytest.raises(ConfigError, match="retrieval.songs=6 is more than the 2 distinct songs"):
        setup_for(rows)


def test_one_title_pools_separately_per_retrieved_list():
    inputs, labels = [[7, 1]] * 3, [[5, 1], [6, 1], [5, 1]]
    retrieved = [((3, 4),), ((3, 4),), ((8, 9),)]
    pooled = pool_examples(inputs, labels, pairs_per_example=16, seed=0, retrieved=retrieved)
    assert sorted(pooled.retrieved) == [((3, 4),), ((8, 9),)]
    assert sorted(pooled.weights) == [1.0, 2.0]


def test_the_shared_pipeline_s_retrieval_model_reads_plain_title_knn_and_says_so(tiny_pipeline):
    """The session's tiny pipeline retrieves without the walk or title vectors; the test below covers both."""
    final = tiny_pipeline / "models" / "tiger_final"
    recorded = json.loads((final / RETRIEVAL_FILE).read_text(encoding="utf-8"))
    assert recorded["songs"] == 10 and recorded["walk"]["weight"] == 0.0
    assert recorded["title_knn"]["vector_weight"] == 0.0 and not (final / TITLE_VECTORS_FILE).exists()
    metrics = json.loads((tiny_pipeline / "outputs" / "evaluation_metrics.json").read_text(encoding="utf-8"))
    assert any(note.startswith("The model may also copy title kNN's top 10 songs for each title (retrieval.songs)")
               for note in metrics["notes"])
    assert not any("title vectors' cosine" in note for note in metrics["notes"])
    assert {t["partner"] for t in metrics["tuning"]["hybrid"]["trials"]} == {"title_knn", "retrieved"}


def test_retrieval_model_with_the_walk_and_title_vectors_trains_evaluates_and_generates(tiny_demo):
    # The copy model's retriever walks kNN's list and mixes title vectors into its similarity (retrieval.vector_weight).
    walk_and_vectors = ["--retrieval.walk_weight", "4",
                        "--network.title_encoder", "minilm", "--retrieval.vector_weight", "0.5"]
    for script in ("train_rq_kmeans.py", "prepare_corpus.py"):
        run_stage(script, *TINY_DEMO, cwd=tiny_demo)
    run_stage("train_tiger.py", *TINY_DEMO, *TINY_MODEL, "--retrieval.songs", "5", *walk_and_vectors, cwd=tiny_demo)
    final = tiny_demo / "models" / "tiger_final"
    recorded, playlists = read_retrieval_file(final)
    assert recorded["songs"] == 5 and len(playlists.titles) > 100
    assert "playlists" not in json.loads((final / RETRIEVAL_FILE).read_text(encoding="utf-8"))  # they are in the .npz
    assert recorded["walk"]["weight"] == 4.0 and recorded["title_knn"]["vector_weight"] == 0.5
    bundle = load_tiger(final)
    assert bundle.retriever is not None
    assert bundle.model.copy_head is not None
    titles = ["late night drive", "夏日海边"]
    first = decode(bundle, titles, DecodingSettings(num_songs=5, num_beams=5))
    assert all(len(d.songs) == 5 and d.invalid == 0 for d in first)
    assert [d.songs for d in decode(load_tiger(final), titles, DecodingSettings(num_songs=5, num_beams=5))] == \
        [d.songs for d in first]
    printed = run_stage("evaluate_tiger.py", *TINY_DEMO, *TINY_EVAL, cwd=tiny_demo).stdout
    metrics = json.loads((tiny_demo / "outputs" / "evaluation_metrics.json").read_text(encoding="utf-8"))
    said = "The model may also copy title kNN's top 5 songs for each title, after the co-occurrence walk at weight 4"
    assert any(note.startswith(said) for note in metrics["notes"])
    assert any("title vectors' cosine into the TF-IDF similarity at weight 0.5" in note for note in metrics["notes"])
    assert metrics["systems"]["model"]["invalid_rate"] == 0.0
    # The list the model reads is scored as its own system, and the hybrid may fuse with it instead of kNN's:
    # on val, the hybrid trial that takes the retrieved list alone (weight 0) scores what the system does.
    assert metrics["systems"]["retrieved"]["invalid_rate"] == 0.0 and "retrieved" in metrics["analysis"]["validation"]
    trials = metrics["tuning"]["hybrid"]["trials"]
    assert {t["partner"] for t in trials} == {"title_knn", "retrieved"}
    alone = [t["score"] for t in trials if t["partner"] == "retrieved" and t["weight"] == 0.0]
    assert len(set(alone)) == 1 and alone[0] == pytest.approx(metrics["analysis"]["validation"]["retrieved"]["ndcg@10"])
    added = metrics["analysis"]["versus_retrieved"]  # what the model adds over the list it reads
    assert set(added) == {"definition", "model", "model_unconstrained", "hybrid"}
    assert added["model"]["ndcg@10"]["difference"] == pytest.approx(
        metrics["systems"]["model"]["ndcg@10"] - metrics["systems"]["retrieved"]["ndcg@10"])
    assert "NDCG@10 minus the retrieved list's" in printed and "NDCG@10 minus title kNN's" in printed
    run_stage("export_bundle.py", *TINY_DEMO, cwd=tiny_demo)
    for system in ("model", "hybrid", "retrieved"):
        out = run_stage("generate_playlist.py", "--title", "beach party", "--num-songs", "3", "--system", system,
                        cwd=tiny_demo)
        assert len(re.findall(r"^\s+\d+\. ", out.stdout, flags=re.M)) == 3
    report = run_stage("bench/retrieval_use.py", *TINY_DEMO, "--playlists", "4", "--decode.num_beams", "10",
                       cwd=tiny_demo).stdout
    share = float(re.search(r"top 5 songs in walked title kNN's top 5: ([\d.]+)", report).group(1))
    assert 0.0 <= share <= 1.0
    scores = dict(re.findall(r"(model|its list|the list in the model's order|the model's songs in the list's "
                             r"order) ([\d.]+)", report.split("NDCG@5: ")[1]))
    assert len(scores) == 4 and all(0.0 <= float(v) <= 1.0 for v in scores.values())
    gate = re.search(r"copy head's mean gate at the first ID level: ([\d.]+)", report)
    assert gate is not None and 0.0 < float(gate.group(1)) < 1.0

    vectors_file = final / TITLE_VECTORS_FILE
    # Loading takes the saved training titles' vectors instead of encoding them again.
    original = vectors_file.read_bytes()
    with np.load(vectors_file) as saved:
        texts, saved_vectors, probe = saved["texts"], saved["vectors"], saved["probe"]
    with vectors_file.open("wb") as handle:
        np.savez(handle, texts=texts, vectors=-saved_vectors, probe=probe)
    by_text = dict(zip(texts.tolist(), saved_vectors))
    expected = -np.stack([by_text[encoder_text(t)] for t in playlists.titles])
    knn = load_tiger(final).retriever.knn
    assert np.allclose(knn.vectors[knn.title_of], expected)
    with vectors_file.open("wb") as handle:
        np.savez(handle, texts=np.array(["a"]), vectors=np.zeros((1, 5), dtype=np.float32), probe=probe)
    with pytest.raises(ArtifactError, match="gives 384 dimensions: rerun train_tiger.py"):
        load_tiger(final)
    with vectors_file.open("wb") as handle:  # as if written by another encoder of the same width
        np.savez(handle, texts=texts, vectors=saved_vectors, probe=-probe)
    with pytest.raises(ArtifactError, match="written with another title encoder than 'minilm'"):
        load_tiger(final)
    vectors_file.write_bytes(original)

    retrieved = load_tiger(final).retriever.rank(titles)
    # A model folder from before the walk retrieves without it, and one from before retrieval_playlists.npz read its
    # playlists from retrieval.json.
    del recorded["walk"]
    recorded["playlists"] = {"ids": playlists.ids, "titles": playlists.titles, "songs": playlists.songs}
    (final / RETRIEVAL_FILE).write_text(json.dumps(recorded), encoding="utf-8")
    (final / RETRIEVAL_PLAYLISTS_FILE).unlink()
    older = load_tiger(final).retriever
    assert older.walk == WalkParams(weight=0.0, songs=200) and older.knn.members.shape[0] == len(playlists.ids)
    (final / RETRIEVAL_FILE).write_text(json.dumps({**recorded, "walk": {"weight": 4.0, "songs": 200}}),
                                        encoding="utf-8")
    assert load_tiger(final).retriever.rank(titles) == retrieved
    del recorded["playlists"]
    (final / RETRIEVAL_FILE).write_text(json.dumps(recorded), encoding="utf-8")
    with pytest.raises(ArtifactError, match="retrieval_playlists.npz is missing or unreadable .*: rerun train_tiger.py"):
        load_tiger(final)
    (final / RETRIEVAL_FILE).unlink()
    with pytest.raises(ArtifactError, match="retrieval.json is missing or unreadable"):
        load_tiger(final)
