"""Stage 2: corpus files from tiny demo data (prepare_data + train_rq_kmeans + prepare_corpus)."""

from __future__ import annotations

import json
import shutil
import unicodedata
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from conftest import TINY_DEMO, run_stage
from genrec.corpus.build import CorpusRow, read_corpus, write_corpus
from genrec.errors import DataError
from genrec.corpus.id_tokens import SemanticIdVocab
from genrec.text import clean_title, fold_script
from genrec.model.tokenizer import train_title_tokenizer


@pytest.fixture(scope="module")
def ids_dir(tmp_path_factory) -> Path:
    """Tiny demo data with semantic IDs, made once; each test copies it."""
    folder = tmp_path_factory.mktemp("corpus_ids")
    run_stage("prepare_data.py", *TINY_DEMO, cwd=folder)
    run_stage("train_rq_kmeans.py", *TINY_DEMO, cwd=folder)
    return folder


@pytest.fixture
def work(ids_dir, tmp_path) -> Path:
    shutil.copytree(ids_dir, tmp_path, dirs_exist_ok=True)
    return tmp_path


def corpus(work: Path, split: str) -> list[CorpusRow]:
    return read_corpus(work / "outputs" / f"{split}.tsv")


def vocab(work: Path) -> SemanticIdVocab:
    return SemanticIdVocab.load(work / "outputs" / "semantic_id_vocab.json")


def test_single_mode_suffix_ids_are_unique_and_val_keeps_whole_playlists(work):
    run_stage("prepare_corpus.py", cwd=work)
    v = vocab(work)
    assert len(set(v.songs.values())) == len(v.songs), "suffix IDs must be unique per song"
    assert v.id_length == v.levels + 1
    train, val = corpus(work, "train"), corpus(work, "val")
    assert all(len(r.song_ids) == 1 and r.target_text == "".join(v.songs[r.song_ids[0]]) for r in train)
    # One train row per (playlist, song), in playlist order.
    per_playlist = Counter(r.playlist_id for r in train)
    assert max(per_playlist.values()) > 1
    assert len({r.playlist_id for r in val}) == len(val)
    assert all(r.target_text == v.target_string(r.song_ids) for r in val)
    assert not {r.playlist_id for r in val} & set(per_playlist)


def test_cluster_strategy_keeps_the_original_shape(work):
    run_stage("prepare_corpus.py", "--corpus.collision_strategy", "cluster", "--corpus.target_mode", "sequence",
              cwd=work)
    v = vocab(work)
    assert v.id_length == v.levels
    assert v.largest_group() > 1, "tiny data has collisions; cluster mode must let songs share an ID"
    train = corpus(work, "train")
    assert len({r.playlist_id for r in train}) == len(train)
    for row in train[:50]:
        ids = v.parse(row.target_text)
        assert len(ids) == len(row.song_ids)
        assert all(song in v.songs_of(i) for song, i in zip(row.song_ids, ids))


def test_truncation_keeps_whole_songs(work):
    # 13 tokens: 3 IDs of 4 tokens, then </s>.
    run_stage("prepare_corpus.py", "--corpus.target_mode", "sequence", "--corpus.max_target_length", "14", cwd=work)
    v = vocab(work)
    for row in corpus(work, "train") + corpus(work, "val"):
        ids = v.parse(row.target_text)
        assert row.target_text.count("<") == len(ids) * v.id_length <= 13
        assert [v.songs_of(i)[0] for i in ids] == row.song_ids[:3]


def test_titles_with_chinese_and_emoji_survive(work):
    run_stage("prepare_corpus.py", cwd=work)
    info = pd.read_csv(work / "data/demo/gen_playlist_info.csv", dtype=str, keep_default_na=False)
    titles = dict(zip(info["glid"], info["listname"].map(clean_title)))
    rows = corpus(work, "train") + corpus(work, "val")
    assert all(r.input_text == titles[r.playlist_id] for r in rows)
    assert any(not t.isascii() for t in (r.input_text for r in rows))
    tokenizer = train_title_tokenizer([r.input_text for r in rows], 300)
    for title in ["夏日海边 🏖️ vibes", "👨‍👩‍👧 family mix", "Ça va — naïve", "深夜 drive 🌙"]:
        ids = tokenizer(title)["input_ids"]
        assert tokenizer.unk_token_id not in ids
        assert tokenizer.decode(ids, skip_special_tokens=True) == unicodedata.normalize("NFKC", title).lower()


def test_fold_script_writes_chinese_in_one_script_and_leaves_the_rest():
    assert fold_script("夏日海邊 Chill 🌊", "simplified") == "夏日海边 Chill 🌊"
    assert fold_script("夏日海边 Chill 🌊", "traditional") == "夏日海邊 Chill 🌊"
    assert fold_script("夏日海邊", "") == "夏日海邊"
    assert fold_script("late night drive", "simplified") == "late night drive"


def test_title_script_folds_the_corpus_titles_and_is_recorded(work):
    info_file = work / "data/demo/gen_playlist_info.csv"
    info = pd.read_csv(info_file, dtype=str, keep_default_na=False)
    # Half the titles in Traditional script: the folded corpus must not tell the two halves apart.
    info.loc[::2, "listname"] = info.loc[::2, "listname"].map(lambda t: fold_script(t, "traditional"))
    info.to_csv(info_file, index=False)
    titles = dict(zip(info["glid"], info["listname"].map(clean_title)))
    run_stage("prepare_corpus.py", "--corpus.title_script", "simplified", cwd=work)
    rows = corpus(work, "train") + corpus(work, "test")
    assert all(r.input_text == fold_script(titles[r.playlist_id], "simplified") for r in rows)
    assert any(r.input_text != titles[r.playlist_id] for r in rows), "some demo titles must have been folded"
    assert not any("邊" in r.input_text for r in rows) and any("边" in r.input_text for r in rows)
    manifest = json.loads((work / "outputs/train.tsv.manifest.json").read_text(encoding="utf-8"))
    assert manifest["summary"]["title_script"] == "simplified"
    proc = run_stage("prepare_corpus.py", "--corpus.title_script", "cantonese", cwd=work, check=False)
    assert proc.returncode != 0 and "corpus.title_script must be one of" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_split_is_stable_across_runs_with_and_without_split_file(work):
    run_stage("prepare_corpus.py", cwd=work)
    first = (work / "outputs/test.tsv").read_bytes()
    run_stage("prepare_corpus.py", cwd=work)
    assert (work / "outputs/test.tsv").read_bytes() == first
    (work / "data/demo/playlist_split.csv").unlink()
    run_stage("prepare_corpus.py", cwd=work)
    hashed = (work / "outputs/test.tsv").read_bytes()
    run_stage("prepare_corpus.py", cwd=work)
    assert (work / "outputs/test.tsv").read_bytes() == hashed


def test_a_named_split_file_that_does_not_exist_is_refused_and_old_corpus_kept(work):
    run_stage("prepare_corpus.py", cwd=work)
    before = (work / "outputs/train.tsv").read_bytes()
    proc = run_stage("prepare_corpus.py", "--data.split_file", "data/demo/split_typo.csv", cwd=work, check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "data/demo/split_typo.csv: split file not found" in proc.stderr
    assert (work / "outputs/train.tsv").read_bytes() == before
    run_stage("prepare_corpus.py", "--data.split_file", "", cwd=work)  # '' asks for the hash split


def test_missing_semantic_ids_is_one_line_error(work):
    (work / "outputs/song_semantic_ids.jsonl").unlink()
    proc = run_stage("prepare_corpus.py", cwd=work, check=False)
    assert proc.returncode == 1
    assert "train_rq_kmeans.py" in proc.stderr and "Traceback" not in proc.stderr


def test_empty_split_is_refused_and_old_corpus_kept(work):
    run_stage("prepare_corpus.py", cwd=work)
    before = (work / "outputs/train.tsv").read_bytes()
    split_file = work / "data/demo/playlist_split.csv"
    frame = pd.read_csv(split_file, dtype=str)
    frame["split"] = frame["split"].replace("val", "train")
    frame.to_csv(split_file, index=False)
    proc = run_stage("prepare_corpus.py", cwd=work, check=False)
    assert proc.returncode == 1 and "val split has no playlist" in proc.stderr
    assert (work / "outputs/train.tsv").read_bytes() == before


def test_target_length_too_short_for_one_id(work):
    proc = run_stage("prepare_corpus.py", "--corpus.max_target_length", "3", cwd=work, check=False)
    assert proc.returncode == 1 and "max_target_length" in proc.stderr


def test_read_corpus_names_the_bad_line(tmp_path):
    path = tmp_path / "train.tsv"
    write_corpus(path, [CorpusRow("p1", "夏日 ✨", "<a_1><b_2>", ["s1", "s2"])])
    assert read_corpus(path) == [CorpusRow("p1", "夏日 ✨", "<a_1><b_2>", ["s1", "s2"])]
    path.write_text(path.read_text(encoding="utf-8") + "p2\tonly two\n", encoding="utf-8")
    with pytest.raises(DataError, match="line 3"):
        read_corpus(path)
