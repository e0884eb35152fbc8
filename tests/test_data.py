"""The data contract: every bad input gets a DataError naming file, line and column."""

import gzip
import re

import numpy as np
import pytest

from config import DataConfig
from genrec.data.files import load_playlists, load_song_info, load_song_vectors, restrict_to_catalogue
from genrec.errors import DataError


def data_config(tmp_path, **files) -> DataConfig:
    paths = {}
    for name, text in files.items():
        suffix = ".tsv" if "\t" in text.split("\n")[0] else ".csv"
        path = tmp_path / f"{name}{suffix}"
        path.write_text(text, encoding="utf-8")
        paths[name] = str(path)
    return DataConfig(input_dim=2, **paths)


VECTORS = "song_id,v0,v1\n007,0.1,0.2\n1234567890123456789,1,2\n"


def test_ids_stay_exact_strings(tmp_path):
    songs = load_song_vectors(data_config(tmp_path, song_vector_file=VECTORS))
    assert songs.ids == ["007", "1234567890123456789"]
    assert songs.vectors.dtype == np.float32 and songs.vectors.shape == (2, 2)


def test_bom_tsv_and_gzip_are_read(tmp_path):
    path = tmp_path / "v.tsv.gz"
    with gzip.open(path, "wt", encoding="utf-8") as out:
        out.write("\ufeffsong_id\tv0\tv1\na\t1\t2\n")
    songs = load_song_vectors(DataConfig(song_vector_file=str(path), input_dim=2))
    assert songs.ids == ["a"]


@pytest.mark.parametrize("text, message", [
    ("song_id,v0,v1\na,1,nan\n", "line 2, column 'v1': value 'nan' is not a finite number"),
    ("song_id,v0,v1\na,1,2\nb,inf,2\n", "line 3, column 'v0': value 'inf' is not a finite number"),
    ("song_id,v0,v1\na,1,x\n", "line 2, column 'v1': value 'x' is not a finite number"),
    ("song_id,v0,v1\na,1,\n", "line 2, column 'v1': missing value"),
    ("song_id,v0,v1,v2\na,1,2,3\n", "line 1: expected 2 vector columns after the id"),
    ("song_id,v0,v1\na,1,2\nb,1,2\na,3,4\n", "line 4, column 'song_id': duplicate id 'a' (first seen on line 2)"),
    ("song_id,v0,v1\n,1,2\n", "line 2, column 'song_id': empty id"),
    ("song_id,v0,v1\na b,1,2\n", "contains whitespace"),
    ("song_id,v0,v1\n", "header but no rows"),
    ("song_id,v0,v1\na,1,2\nb,1e300,2\n", "line 3, column 'v0': value '1e300' is out of range"),
    ("song_id,v0,v1\na,1,2\nb,1,2\nc,1,2\n", "all 3 songs have the same vector"),
    ("", "file is empty"),
])
def test_bad_vectors(tmp_path, text, message):
    cfg = data_config(tmp_path, song_vector_file=text)
    with pytest.raises(DataError, match=re.escape(message)) as err:
        load_song_vectors(cfg)
    assert cfg.song_vector_file in str(err.value)


def test_missing_file_and_wrong_columns(tmp_path):
    with pytest.raises(DataError, match="song vector file not found"):
        load_song_vectors(DataConfig(song_vector_file=str(tmp_path / "nope.csv")))
    cfg = data_config(tmp_path, playlist_info_file="id,title\n1,x\n", playlist_songs_file="special_gid,mixsongid\n1,a\n")
    with pytest.raises(DataError, match="line 1: missing column.s. glid, listname; the header has id, title"):
        load_playlists(cfg)


def test_playlists_keep_order_collapse_repeats_and_count_unknown_rows(tmp_path):
    cfg = data_config(tmp_path,
                      playlist_info_file="glid,listname\n01,  夏日海边 🌊 \n2,late\u200b night   drive\n",
                      playlist_songs_file="special_gid,mixsongid\n01,c\n01,a\n01,c\n2,b\n99,a\n99,b\n")
    playlists = load_playlists(cfg)
    assert playlists.ids == ["01", "2"]
    assert playlists.titles == ["夏日海边 🌊", "late night drive"]
    assert playlists.songs == [["c", "a"], ["b"]]
    assert playlists.report["rows_unknown_playlist"] == 2
    assert playlists.report["rows_repeated_song"] == 1
    restricted = restrict_to_catalogue(playlists, {"a", "b"})
    assert restricted.songs == [["a"], ["b"]]
    assert restricted.report["rows_song_not_in_catalogue"] == 1


@pytest.mark.parametrize("info, message", [
    ("glid,listname\n1,ok\n2,  \n", "line 3, column 'listname': empty title"),
    ("glid,listname\n1,ok\n2,\u200b\u200b\n", "line 3, column 'listname': empty title"),
    ("glid,listname\n1,a\n1,b\n", "line 3, column 'glid': duplicate id '1'"),
])
def test_bad_playlist_info(tmp_path, info, message):
    cfg = data_config(tmp_path, playlist_info_file=info, playlist_songs_file="special_gid,mixsongid\n1,a\n")
    with pytest.raises(DataError, match=message):
        load_playlists(cfg)


def test_malformed_row_and_non_utf8(tmp_path):
    cfg = data_config(tmp_path, playlist_info_file="glid,listname\n1,a\n2,b,extra,cells\n",
                      playlist_songs_file="special_gid,mixsongid\n1,a\n")
    with pytest.raises(DataError, match="line 3"):
        load_playlists(cfg)
    latin = tmp_path / "latin.csv"
    latin.write_bytes("mixsongid,songname,singername\n1,caf\xe9,x\n".encode("latin-1"))
    with pytest.raises(DataError, match="not UTF-8"):
        load_song_info(DataConfig(song_info_file=str(latin)))


def test_song_info_describes_songs(tmp_path):
    cfg = data_config(tmp_path, song_info_file="mixsongid,songname,singername\n007,晴天,周杰伦\n8,Intro,\n")
    info = load_song_info(cfg)
    assert info.describe("007") == "晴天 - 周杰伦"
    assert info.describe("8") == "Intro"
    assert info.describe("unknown") == "unknown"


def test_songs_sharing_a_vector_are_warned_about(tmp_path, caplog):
    cfg = data_config(tmp_path, song_vector_file="song_id,v0,v1\na,1,2\nb,1,2\nc,3,4\n")
    with caplog.at_level("WARNING"):
        assert load_song_vectors(cfg).ids == ["a", "b", "c"]
    assert "1 of 3 songs share their vector with another song" in caplog.text
