"""The model that reads seed songs (targets.seeded_share, issue 33): continuation examples, the seed tokens, decoding
that never returns a seed, plain torch equal to transformers, and the continuation evaluation and generator using it."""

from __future__ import annotations

import json
from dataclasses import replace
import shutil

import pytest
import torch
from transformers import T5Config

from config import Config
from genrec.corpus.build import CorpusRow
from genrec.decode.decoding import DecodingSettings, decode
from genrec.evaluate.continuation import MIN_HELD_OUT, MIX_GRIDS
from genrec.model.retrieval import SongRetriever, WalkParams, read_retrieval_file, song_token_ids
from genrec.model.loaded import TigerBundle
from genrec.model.seed_songs import MAX_SEEDS, seed_tensor
from genrec.model.t5 import TigerT5
from genrec.evaluate.baselines import TitleKNN, TrainingPlaylists
from genrec.train.batches import (PadCollator, TrainingCorpus, encode, training_data, training_pairs,
                                  validation_pairs)
from genrec.train.pooled_targets import pool_examples, pooled_loss
from genrec.train.seeded_examples import SEEDED_CATEGORIES, seeded_rows
from genrec.model.tokenizer import add_id_tokens, train_title_tokenizer
from genrec.train.pooled_targets import PooledDataset
from tiny_tiger import tiny_vocab


def playlist_rows(pid: str, title: str, songs: list[str]) -> list[CorpusRow]:
    """Single-mode training rows: one per song, in playlist order."""
    return [CorpusRow(pid, title, f"<{song}>", [song]) for song in songs]


def corpus(lengths: list[int]) -> list[CorpusRow]:
    return [row for i, n in enumerate(lengths)
            for row in playlist_rows(f"p{i}", f"title {i % 7}", [f"s{i}_{j}" for j in range(n)])]


def draw(train: list[CorpusRow], share: float, seed: int):
    """seeded_rows on the playlists of single-mode rows, a song's target text being ``<song>``."""
    return seeded_rows(TrainingPlaylists.from_corpus(train), share, seed, lambda song: f"<{song}>")


def by_playlist(rows, seeds):
    out = {}
    for row, given in zip(rows, seeds):
        entry = out.setdefault(row.playlist_id, {"title": row.input_text, "seeds": given, "targets": []})
        assert entry["seeds"] == given and entry["title"] == row.input_text  # one draw per playlist
        entry["targets"].append(row.song_ids[0])
    return out


def test_continuation_examples_split_each_playlist_into_seeds_and_the_rest_over_every_category():
    train = corpus([3, 5, 6, 8, 12, 30, 40, 110, 120] * 40)
    songs = {}
    for row in train:
        songs.setdefault(row.playlist_id, []).append(row.song_ids[0])
    seeded = draw(train, 1.0, seed=3)
    drawn = by_playlist(seeded.rows, seeded.seeds)
    assert set(seeded.categories) == {c.name for c in SEEDED_CATEGORIES}
    # Too short for 1 seed and 5 held out: never drawn; every longer playlist is at share 1.
    assert set(drawn) == {pid for pid, s in songs.items() if len(s) >= 1 + MIN_HELD_OUT}
    for pid, entry in drawn.items():
        playlist = songs[pid]
        assert not set(entry["seeds"]) & set(entry["targets"])
        assert sorted(entry["seeds"] + tuple(entry["targets"])) == sorted(playlist)
        assert len(entry["targets"]) >= MIN_HELD_OUT and len(entry["seeds"]) in {1, 5, 10, 25, 100}
        assert [s for s in playlist if s in entry["seeds"]] == list(entry["seeds"])  # in playlist order
        assert entry["title"] in ("", train[[r.playlist_id for r in train].index(pid)].input_text)
    assert any(e["title"] == "" for e in drawn.values()) and any(e["title"] for e in drawn.values())
    random_draws = [e for pid, e in drawn.items() if list(e["seeds"]) != songs[pid][:len(e["seeds"])]]
    assert random_draws and all(len(e["seeds"]) in (25, 100) for e in random_draws)


def test_the_draw_is_seeded_and_a_larger_share_keeps_the_smaller_one_s_playlists():
    train = corpus([20] * 200)
    assert draw(train, 0.0, seed=1).rows == []
    small, large = draw(train, 0.3, seed=1), draw(train, 0.6, seed=1)
    assert draw(train, 0.3, seed=1) == small
    small_ids = {r.playlist_id for r in small.rows}
    assert 30 < len(small_ids) < 90 and small_ids < {r.playlist_id for r in large.rows}
    assert draw(train, 0.3, seed=2) != small


TITLES = ["mix", "party", "focus"]


@pytest.fixture(scope="module")
def tiny():
    vocab = tiny_vocab(40, levels=2, vocab_size=5, seed=1)
    tokenizer = train_title_tokenizer(TITLES * 5, 200)
    add_id_tokens(tokenizer, vocab)
    return vocab, tokenizer


def rows_for(vocab, playlists: dict[str, tuple[str, list[str]]]) -> tuple[list[CorpusRow], list[CorpusRow]]:
    train = [CorpusRow(pid, title, vocab.target_string([s]), [s]) for pid, (title, songs) in playlists.items()
             for s in songs]
    val = [CorpusRow(pid, title, vocab.target_string(songs), songs) for pid, (title, songs) in playlists.items()]
    return train, val


def thirty_playlists(vocab) -> tuple[list[CorpusRow], TrainingCorpus, list[CorpusRow]]:
    """Thirty playlists of 8-12 songs under three titles: the training rows and corpus, and the validation rows."""
    playlists = {f"p{i}": (TITLES[i % 3], [f"s{(i + j) % 40}" for j in range(8 + i % 5)]) for i in range(30)}
    train, val = rows_for(vocab, playlists)
    return train, TrainingCorpus(TrainingPlaylists.from_corpus(train)), val


def test_seeded_share_zero_trains_the_title_examples_of_before_and_a_share_adds_seeded_ones_after_them(tiny):
    vocab, tokenizer = tiny
    train, corpus_, val = thirty_playlists(vocab)
    cfg = Config()
    before = training_data(cfg, corpus_, val, vocab, tokenizer)
    examples = before.train.examples
    assert before.seeded is None and examples.seeds is None and "seed_ids" not in before.train[0]
    listed = encode(training_pairs(train), tokenizer, cfg.network.max_input_length)
    plain = pool_examples(listed.inputs, listed.labels, 16, cfg.run.seed)
    assert (examples.inputs, examples.paths, examples.targets, examples.weights) == \
        (plain.inputs, plain.paths, plain.targets, plain.weights)

    cfg.targets.seeded_share = 0.5
    seeded = training_data(cfg, corpus_, val, vocab, tokenizer)
    more = seeded.train.examples
    n = len(examples)
    assert (more.inputs[:n], more.paths[:n], more.targets[:n], more.weights[:n]) == \
        (examples.inputs, examples.paths, examples.targets, examples.weights)
    assert more.seeds[:n] == [()] * n and len(more) > n and all(more.seeds[n:])
    assert seeded.seeded["share"] == 0.5 and sum(seeded.seeded["playlists"].values()) > 5
    # A batch of both kinds pads the seeds, title-only rows reading none.
    batch = PadCollator(tokenizer.pad_token_id)([seeded.train[0], seeded.train[len(more) - 1]])
    assert batch["seed_ids"].shape[0] == 2 and (batch["seed_ids"][0] == tokenizer.pad_token_id).all()
    assert (batch["seed_ids"][1, :, 0] != tokenizer.pad_token_id).any()


def test_a_model_that_reads_seeds_is_validated_on_continuation_pairs_too(tiny):
    vocab, tokenizer = tiny
    _, corpus_, val = thirty_playlists(vocab)
    cfg = Config()
    plain = training_data(cfg, corpus_, val, vocab, tokenizer).val
    assert plain.encoded.seeds is None and "seed_ids" not in plain[0]
    cfg.targets.seeded_share = 0.5
    pairs = validation_pairs(val, vocab, "single", cfg.train.val_loss_examples, cfg.run.seed, 0.5)
    title_only = [pair for pair in pairs if not pair[2]]
    assert title_only == validation_pairs(val, vocab, "single", cfg.train.val_loss_examples, cfg.run.seed)
    continuation = [pair for pair in pairs if pair[2]]
    assert continuation and any(title == "" for title, _, _ in continuation)
    for title, target, seeds in continuation:  # a seed is never a target
        assert target not in {vocab.target_string([s]) for s in seeds}
    seeded = training_data(cfg, corpus_, val, vocab, tokenizer).val
    assert len(seeded) == len(pairs) and len(plain) == len(title_only)
    read = [i for i in range(len(seeded)) if len(seeded[i]["seed_ids"])]
    assert len(read) == len(continuation)
    batch = PadCollator(tokenizer.pad_token_id)([seeded[0], seeded[read[0]]])
    assert (batch["seed_ids"][1, :, 0] != tokenizer.pad_token_id).any()
    # The sample keeps to the limit, drawing from both kinds.
    few = validation_pairs(val, vocab, "single", 40, cfg.run.seed, 0.5)
    assert len(few) == 40 and any(p[2] for p in few) and any(not p[2] for p in few)


def test_continuation_examples_copy_what_their_own_cross_fitting_gave_with_each_fold_fitted_once(tiny, monkeypatch):
    from genrec.model import retrieval as retrieval_module
    from genrec.model.retrieval import RETRIEVAL_FOLDS

    vocab, tokenizer = tiny
    playlists = {f"p{i}": (TITLES[i % 3], [f"s{(i + j) % 40}" for j in range(8 + i % 5)]) for i in range(30)}
    train, val = rows_for(vocab, playlists)
    cfg = Config()
    cfg.retrieval.songs, cfg.targets.seeded_share = 5, 0.5
    fitted, fit = [], retrieval_module.fitted_knn
    monkeypatch.setattr(retrieval_module, "fitted_knn", lambda *args: fitted.append(1) or fit(*args))
    data = training_data(cfg, TrainingCorpus(TrainingPlaylists.from_corpus(train)), val, vocab, tokenizer)
    assert len(fitted) == RETRIEVAL_FOLDS  # the title-only and the continuation keys cross-fitted together
    examples, seeded = data.train.examples, seeded_rows(TrainingPlaylists.from_corpus(train), 0.5, cfg.run.seed,
                                                        lambda song: vocab.target_string([song]))
    keys = [(row.input_text, data.retrieval.fold(row.playlist_id), seeds)
            for row, seeds in zip(seeded.rows, seeded.seeds)]
    alone = data.retrieval.cross_fitted(keys)  # the continuation pairs cross-fitted on their own, as before
    by_seeds = {(row.input_text, seeds): alone[key] for row, seeds, key in zip(seeded.rows, seeded.seeds, keys)}
    n = sum(1 for s in examples.seeds if not s)
    assert examples.seeds[n:] and len(set(examples.retrieved[n:])) > 1
    assert set(examples.retrieved[n:]) <= set(by_seeds.values())
    # The copy lists' walk mix was tuned on validation for each category its playlists (8-12 songs) fit.
    mixes = data.retrieval.seeded_mixes
    assert [(m["seeds"], m["title"], m["random"]) for m in mixes] == [(1, True, False), (5, True, False),
                                                                      (5, False, False)]
    assert all({name for name, _ in MIX_GRIDS} <= m.keys() for m in mixes)
    assert data.retrieval.full.seeded_mixes == mixes and data.retrieval_summary["seeded_mixes"] == mixes


def test_a_seeded_copy_list_follows_the_mix_tuned_for_the_nearest_category(tiny):
    vocab, tokenizer = tiny
    playlists = TrainingPlaylists([TITLES[i % 3] for i in range(30)],
                                  [[f"s{(i + j) % 40}" for j in range(8 + i % 5)] for i in range(30)],
                                  [f"p{i}" for i in range(30)])
    knn = TitleKNN().fit(playlists.titles, playlists.songs)
    mix = {name: grid[0] for name, grid in MIX_GRIDS}
    rows = [{"seeds": 1, "title": True, "random": False, **mix, "title_share": 1.0},
            {"seeds": 5, "title": True, "random": False, **mix, "title_share": 0.0}]
    retriever = SongRetriever(knn, 5, song_token_ids(vocab, tokenizer), WalkParams(), rows)
    title = TITLES[0]
    ranked = [song for song, _ in retriever.scored([title], 100)[0]]
    by_song = {ids: song for song, ids in retriever.token_ids.items()}

    def copied(seeds):
        return [by_song[ids] for ids in retriever.inputs([title], [seeds])[0]]

    # One seed: its category's mix takes the title's list alone, which the seed is left out of.
    assert copied(ranked[:1]) == ranked[1:6]
    # Four seeds: the 5-seed category's mix, the seeds' walk alone; not the title's list.
    seeds = ranked[:4]
    walk_only = SongRetriever(knn, 5, retriever.token_ids, WalkParams(), rows[1:])
    assert copied(seeds) == [by_song[ids] for ids in walk_only.inputs([title], [seeds])[0]]
    assert copied(seeds) != ranked[4:9] and not set(copied(seeds)) & set(seeds)


@pytest.fixture(scope="module")
def trained(tiny):
    """A tiny T5 that reads seeds, trained on one title whose playlists continue two tastes: s0-s9 or s20-s29."""
    vocab, tokenizer = tiny
    torch.manual_seed(0)
    model = TigerT5(T5Config(vocab_size=len(tokenizer), d_model=32, d_kv=8, d_ff=64, num_layers=1,
                             num_decoder_layers=1, num_heads=2, dropout_rate=0.0, pad_token_id=tokenizer.pad_token_id,
                             eos_token_id=tokenizer.eos_token_id, decoder_start_token_id=tokenizer.pad_token_id,
                             seed_songs=MAX_SEEDS))
    bundle = TigerBundle(model=model, tokenizer=tokenizer, vocab=vocab, target_mode="single", max_input_length=8,
                         manifest={}, seed_songs=MAX_SEEDS)
    token_ids = song_token_ids(vocab, tokenizer)
    title = tokenizer("mix")["input_ids"]
    inputs, labels, seeds = [], [], []
    for taste in (0, 20):
        for start in range(8):
            given = [f"s{taste + (start + k) % 10}" for k in range(2)]
            for k in range(2, 10):
                song = f"s{taste + (start + k) % 10}"
                inputs.append(title)
                labels.append([*token_ids[song], tokenizer.eos_token_id])
                seeds.append(tuple(token_ids[s] for s in given))
    pooled = pool_examples(inputs, labels, 1, seed=0, seeds=seeds)
    data = PooledDataset(pooled)
    collate = PadCollator(tokenizer.pad_token_id)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    generator = torch.Generator().manual_seed(0)
    model.train()
    for _ in range(150):
        batch = collate([data[int(i)] for i in torch.randint(len(data), (32,), generator=generator)])
        optimizer.zero_grad()
        pooled_loss(model, batch).backward()
        optimizer.step()
    model.eval()
    return bundle


def test_a_model_trained_with_seeds_continues_their_taste_and_never_returns_them(trained):
    settings = DecodingSettings(num_beams=8, num_songs=6, batch_size=4)
    low, high = ["s0", "s1"], ["s20", "s21"]
    out = decode(trained, ["mix", "mix"], settings, seeds=[low, high])
    for decoded, given, taste in zip(out, (low, high), (range(10), range(20, 30))):
        songs = [song for song, _ in decoded.songs]
        assert len(songs) == 6 and not set(songs) & set(given)
        assert sum(int(s[1:]) in taste for s in songs) >= 5, songs


def test_plain_torch_reads_seeds_as_transformers_does(trained, tmp_path):
    from genrec.serve import inference

    trained.tokenizer.save_pretrained(tmp_path)
    plain = replace(trained, tokenizer=inference.ServingTokenizer(tmp_path, trained.max_input_length),
                    model=inference.TigerInference(trained.model.config.to_dict(), {
                        k: v.detach().float() for k, v in trained.model.state_dict().items()}))  # a new bundle: no caches
    titles = ["mix", "party time", "mix", ""]
    seeds = [["s0", "s1"], ["s22"], [], ["s3", "s24", "s5"]]
    for settings in (DecodingSettings(num_beams=8, num_songs=6, batch_size=4),
                     DecodingSettings(num_beams=3, num_songs=2, batch_size=2)):
        ours = inference.decode(plain, titles, settings, seeds=seeds)
        theirs = decode(trained, titles, settings, seeds=seeds)
        for given, mine, reference in zip(seeds, ours, theirs):
            assert [s for s, _ in mine.songs] == [s for s, _ in reference.songs]
            assert [x for _, x in mine.songs] == pytest.approx([x for _, x in reference.songs], abs=1e-4)
            assert not {s for s, _ in mine.songs} & set(given)


def test_a_title_decodes_alike_alone_and_beside_longer_titles_and_more_seeds(trained):
    settings = DecodingSettings(num_beams=6, num_songs=4, batch_size=8)
    alone = decode(trained, ["mix"], settings, seeds=[["s2"]])[0].songs
    beside = decode(trained, ["party focus mix party", "mix"], settings, seeds=[["s20", "s21", "s22"], ["s2"]])
    assert [s for s, _ in beside[1].songs] == [s for s, _ in alone]
    assert [x for _, x in beside[1].songs] == pytest.approx([x for _, x in alone], abs=1e-4)


def test_only_the_last_seeds_are_read(tiny):
    vocab, tokenizer = tiny
    token_ids = song_token_ids(vocab, tokenizer)
    many = [f"s{i % 40}" for i in range(MAX_SEEDS + 10)] + ["unknown"]
    tensor = seed_tensor([many, ["s1"]], token_ids, vocab.id_length, tokenizer.pad_token_id)
    assert tensor.shape == (2, MAX_SEEDS, vocab.id_length)
    kept = list(dict.fromkeys(many[:-1]))[-MAX_SEEDS:]
    assert tensor[0].tolist() == [list(token_ids[s]) for s in kept]
    assert (tensor[1, 1:] == tokenizer.pad_token_id).all()


def test_a_title_only_model_refuses_seed_input():
    model = TigerT5(T5Config(vocab_size=20, d_model=8, d_kv=4, d_ff=16, num_layers=1, num_decoder_layers=1,
                             num_heads=2, decoder_start_token_id=0, pad_token_id=0, eos_token_id=1))
    with pytest.raises(ValueError, match="without seed songs"):
        model.input_embeddings(torch.tensor([[3, 1]]), torch.tensor([[1, 1]]), seed_ids=torch.tensor([[[5, 6]]]))


@pytest.fixture(scope="module")
def seeded_pipeline(tiny_pipeline, tmp_path_factory):
    """The tiny pipeline (a retrieval model: copy head and seeds together) trained with continuation examples. It starts
    from a copy of the shared pipeline's folder, so the stages before training are up to date and skipped."""
    from conftest import TINY_BUNDLE, run_stage
    work = tmp_path_factory.mktemp("seeded") / "pipeline"
    shutil.copytree(tiny_pipeline, work, ignore=shutil.ignore_patterns("bundle", "tiger_*"))
    run = run_stage("run_pipeline.py", *TINY_BUNDLE, "--targets.seeded_share", "0.5", cwd=work)
    skipped = run.stdout + run.stderr
    assert all(f"{stage}: up to date" in skipped for stage in ("train_rq_kmeans.py", "prepare_corpus.py"))
    return work


def test_the_pipeline_trains_evaluates_and_serves_a_model_that_reads_seeds(seeded_pipeline):
    from conftest import TINY_EVAL, run_stage
    from genrec import PlaylistGenerator
    from genrec.model.t5 import load_tiger
    from genrec.serve import inference

    model_dir = seeded_pipeline / "models" / "tiger_final"
    assert json.loads((model_dir / "config.json").read_text(encoding="utf-8"))["seed_songs"] == MAX_SEEDS
    summary = json.loads((model_dir / "manifest.json").read_text(encoding="utf-8"))["summary"]
    assert summary["seeded_examples"]["share"] == 0.5 and summary["seeded_examples"]["playlists"]
    # The copy lists' mixes tuned per category in training are what the loaded model copies with.
    recorded, _ = read_retrieval_file(model_dir)
    assert recorded["seeded_mixes"] and {m["seeds"] for m in recorded["seeded_mixes"]} >= {1, 5}
    assert load_tiger(model_dir, check_corpus=False).retriever.seeded_mixes == recorded["seeded_mixes"]

    # The continuation evaluation decodes the model with each case's title (none without one) and seeds.
    run_stage("evaluate_continuation.py", *TINY_EVAL, cwd=seeded_pipeline)
    queries = [json.loads(key) if key.startswith("[") else [key, []] for key in json.loads(
        (seeded_pipeline / "outputs" / "continuation_model_rankings.json").read_text(encoding="utf-8"))]
    assert any(title == "" and seeds for title, seeds in queries) and any(title and not seeds for title, seeds in queries)
    result = json.loads((seeded_pipeline / "outputs" / "continuation_metrics.json").read_text(encoding="utf-8"))
    popular = result["systems"]["popularity"]["ndcg@10"]["first 5, no title"]["mean"]
    assert result["systems"]["model"]["ndcg@10"]["first 5, no title"]["mean"] != popular  # not the popular fill

    # Plain torch and transformers read the seeds alike, and neither returns one.
    first = sorted(load_tiger(model_dir, check_corpus=False).vocab.songs)[:3]
    titles, seeds = ["late night drive", "gym", "road trip"], [first[:2], [], first[2:]]
    settings = DecodingSettings(num_beams=10, num_songs=10, batch_size=2)
    ours = inference.decode(inference.load_inference(model_dir), titles, settings, seeds=seeds)
    theirs = decode(load_tiger(model_dir, check_corpus=False), titles, settings, seeds=seeds)
    for given, mine, reference in zip(seeds, ours, theirs):
        assert [s for s, _ in mine.songs] == [s for s, _ in reference.songs] and len(mine.songs) == 10
        assert [x for _, x in mine.songs] == pytest.approx([x for _, x in reference.songs], abs=1e-4)
        assert not {s for s, _ in mine.songs} & set(given)

    generator = PlaylistGenerator.load(seeded_pipeline / "models" / "bundle")
    given = [s.song_id for s in generator.generate("late night drive", num_songs=5, system="knn").songs]
    for system in ("model", "hybrid", ""):
        playlist = generator.generate("late night drive", num_songs=20, seeds=given, system=system)
        ids = [s.song_id for s in playlist.songs]
        assert len(set(ids)) == 20 and not set(ids) & set(given), system
    with_seeds = generator.generate("late night drive", num_songs=20, seeds=given, system="model").songs
    other = generator.generate("late night drive", num_songs=20, seeds=given[:1], system="model").songs
    assert [s.song_id for s in with_seeds if s.system == "model"] != [s.song_id for s in other if s.system == "model"]
