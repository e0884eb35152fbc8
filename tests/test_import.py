"""Stage 0 imports: MPD slices and CSV tables into a dataset folder with item2vec song vectors."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from config import SplitConfig
from genrec.cli import parse_config
from genrec.errors import DataError
from genrec.data.importers import read_csv_source, read_mpd
from genrec.data.split import assign_splits
from genrec.text import clean_title
from tests.conftest import run_stage, shared_dataset

# Tiny vectors and few epochs: these tests check plumbing, not vector quality.
FAST = ["--data.input_dim", "8", "--prepare.min_song_playlists", "1",
        "--split.min_eval_playlists", "0", "--split.val_ratio", "0.2", "--split.test_ratio", "0.2"]
TASTES = [[f"rock{i}" for i in range(12)], [f"jazz{i}" for i in range(12)], [f"pop{i}" for i in range(12)]]


def track(song: str, artist: str = "Band") -> dict:
    return {"pos": 0, "artist_name": artist, "track_uri": f"spotify:track:{song}", "track_name": f"Song {song}"}


def mpd_playlists(start: int, count: int) -> list[dict]:
    """Playlists drawing 8 songs from one of three tastes (no album fields, no description)."""
    playlists = []
    for pid in range(start, start + count):
        songs = TASTES[pid % 3]
        chosen = [songs[(pid + k) % len(songs)] for k in range(8)]
        playlists.append({"name": f"  {['rock', 'jazz', 'pop'][pid % 3]} mix {pid}  ", "pid": pid,
                          "num_tracks": 8, "tracks": [track(s) for s in chosen]})
    return playlists


def write_slice(folder: Path, name: str, playlists: list[dict]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    text = json.dumps({"info": {"slice": name}, "playlists": playlists}, ensure_ascii=False)
    path = folder / f"mpd.slice.{name}.json"
    if name.endswith(".gz"):
        path = folder / f"mpd.slice.{name.removesuffix('.gz')}.json.gz"
        with gzip.open(path, "wt", encoding="utf-8") as out:
            out.write(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def val_pid(pids: list[str]) -> str:
    """A playlist that the FAST split puts in val (the split is a pure function of id and seed)."""
    split = assign_splits(pids, SplitConfig(val_ratio=0.2, test_ratio=0.2, min_eval_playlists=0), 42)
    return next(pid for pid in pids if split[pid] == "val")


@pytest.fixture
def mpd_folder(workdir) -> Path:
    folder = workdir / "mpd_in"
    first = mpd_playlists(0, 30)
    first[0]["name"] = "🔥🎧"  # a title that is only emoji
    first[1]["tracks"].append(dict(first[1]["tracks"][0]))  # a repeated song inside one playlist
    first.append({"name": "too short", "pid": 30, "tracks": [track("rock0"), track("rock1")]})
    eval_pid = int(val_pid([str(p["pid"]) for p in first[:30]] + [str(p) for p in range(31, 61)]))
    # A song heard only in one val playlist: item2vec never sees it, so it leaves the catalogue.
    playlists = first + mpd_playlists(31, 30)
    next(p for p in playlists if p["pid"] == eval_pid)["tracks"].append(track("evalonly"))
    write_slice(folder, "0-999", playlists[:31])
    write_slice(folder, "1000-1999.gz", playlists[31:])
    return folder


def test_mpd_import_writes_a_dataset_that_the_pipeline_can_use(mpd_folder, workdir):
    run_stage("prepare_data.py", "--prepare.source", "mpd", "--prepare.input", str(mpd_folder),
              "--prepare.output", "data/tiny_mpd", *FAST, cwd=workdir)
    folder = workdir / "data" / "tiny_mpd"
    stage_config = yaml.safe_load((folder / "config.yaml").read_text(encoding="utf-8"))
    assert stage_config["run"] == {"output_dir": "outputs/tiny_mpd", "model_dir": "models/tiny_mpd"}
    cfg, _ = parse_config(["--config", str(folder / "config.yaml")])
    assert cfg.data.song_vector_file == "data/tiny_mpd/song_vectors.csv" and cfg.data.input_dim == 8

    info = pd.read_csv(folder / "gen_playlist_info.csv", dtype=str, keep_default_na=False)
    titles = dict(zip(info.glid, info.listname))
    assert titles["0"] == "🔥🎧" and titles["2"] == "pop mix 2"  # emoji kept, spaces trimmed
    assert "30" not in titles  # fewer than min_playlist_songs distinct songs
    rows = pd.read_csv(folder / "gen_playlist_song.csv", dtype=str)
    assert not rows.duplicated().any()
    vectors = pd.read_csv(folder / "song_vectors.csv", dtype={"song_id": str})
    assert vectors.shape[1] == 9
    catalogue = set(vectors.song_id)
    split = pd.read_csv(folder / "playlist_split.csv", dtype=str)
    training_rows = rows[rows.special_gid.isin(split.playlist_id[split.split == "train"])]
    assert set(training_rows.mixsongid) <= catalogue and "evalonly" not in catalogue and "rock0" in catalogue
    assert "evalonly" in set(rows.mixsongid)  # kept in its val playlist: a miss for every system
    song_info = pd.read_csv(folder / "gen_song_info.csv", dtype=str)
    assert list(song_info.mixsongid) == list(vectors.song_id)
    assert dict(zip(song_info.mixsongid, song_info.songname))["jazz3"] == "Song jazz3"
    assert set(split.playlist_id) == set(info.glid) and set(split.split) == {"train", "val", "test"}

    report = json.loads((workdir / "outputs" / "tiny_mpd" / "data_report.json").read_text(encoding="utf-8"))
    assert report["read"] == {"files": 2, "playlists": 61, "rows": 60 * 8 + 2 + 1 + 1, "rows_repeated_song": 1,
                              "songs": 37}
    steps = {step["step"]: step for step in report["filters"]}
    assert steps["playlists with >= 5 distinct songs"]["playlists"] == 60
    assert report["eval_rows_outside_catalogue"]["val"] == 1 and report["eval_rows_outside_catalogue_kept"] == 1
    assert report["quality"]["popular_song_neighbours"] and report["quality"]["same_singer"]["k"] == 10
    assert not (workdir / "outputs" / "data_report.json").exists()  # the demo's report is not touched


def test_mpd_slices_are_read_in_numeric_order(workdir):
    folder = workdir / "mpd_in"
    write_slice(folder, "10000-10999", mpd_playlists(10000, 2))
    write_slice(folder, "2000-2999", mpd_playlists(2000, 2))
    data = read_mpd(folder)
    assert data.ids == ["2000", "2001", "10000", "10001"]
    assert data.song_ids[0] == TASTES[2000 % 3][2000 % 12]


@pytest.mark.parametrize("content, problem", [
    ('{"info": {}, "playlists": [{"name": "x", "pid": 1, "tracks": [', "invalid JSON"),
    ('{"info": {"slice": "0-999"}}', "no 'playlists' list"),
    ('{"playlists": [{"pid": 1, "tracks": []}]}', "playlist 0 has no 'name'"),
    ('{"playlists": [{"name": "x", "pid": 1, "tracks": [{"track_name": "a"}]}]}', "track 0: no 'track_uri'"),
])
def test_bad_mpd_slices_are_data_errors_naming_the_file(workdir, content, problem):
    (workdir / "mpd.slice.0-999.json").write_text(content, encoding="utf-8")
    with pytest.raises(DataError, match=problem) as err:
        read_mpd(workdir)
    assert "mpd.slice.0-999.json" in str(err.value)


def test_truncated_slice_stops_the_script_with_one_line(workdir):
    write_slice(workdir / "in", "0-999", mpd_playlists(0, 3))
    path = workdir / "in" / "mpd.slice.0-999.json"
    path.write_text(path.read_text(encoding="utf-8")[:200], encoding="utf-8")
    proc = run_stage("prepare_data.py", "--prepare.source", "mpd", "--prepare.input", "in", cwd=workdir, check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith(f"error: {Path('in') / 'mpd.slice.0-999.json'}, line 1")
    assert not (workdir / "data").exists()


def write_csv_source(folder: Path, extra_rows: str = "") -> None:
    """Seed-schema tables with renamed columns, ids with leading zeros and a row for an unknown playlist."""
    folder.mkdir(parents=True, exist_ok=True)
    titles = ["🎶🎶", " 夏日海边 ", "late night drive"] * 9 + ["🎶", "夏日海邊", "深夜"]
    (folder / "gen_playlist_info.csv").write_text(
        "pid,title\n" + "".join(f"00{i},{t}\n" for i, t in enumerate(titles)), encoding="utf-8")
    rows = [f"00{i},0{s}\n" for i in range(30) for s in TASTES[i % 3][i % 4:i % 4 + 6]]
    (folder / "gen_playlist_song.csv").write_text(
        "pid,song\n" + "".join(rows) + "999,0rock1\n" + extra_rows, encoding="utf-8")
    (folder / "gen_song_info.csv").write_text(
        "song,name,singer\n" + "".join(f"0{s},{s} 歌,{s.rstrip('0123456789')}\n" for t in TASTES for s in t), encoding="utf-8")


CSV_COLUMNS = ["--data.playlist_id_column", "pid", "--data.title_column", "title",
               "--data.membership_playlist_column", "pid", "--data.song_id_column", "song",
               "--data.song_name_column", "name", "--data.singer_column", "singer"]


def test_csv_import_keeps_ids_titles_and_counts_unknown_rows(workdir):
    write_csv_source(workdir / "csv_in")
    run_stage("prepare_data.py", "--prepare.source", "csv", "--prepare.input", "csv_in", *FAST, *CSV_COLUMNS,
              cwd=workdir)
    folder = workdir / "data" / "csv_in"  # default output for an import: data/<input folder name>
    info = pd.read_csv(folder / "gen_playlist_info.csv", dtype=str, keep_default_na=False)
    assert info.glid.iloc[0] == "000" and info.listname.iloc[0] == "🎶🎶" and info.listname.iloc[1] == "夏日海边"
    songs = pd.read_csv(folder / "gen_song_info.csv", dtype=str)
    assert songs.mixsongid.str.startswith("0").all() and set(songs.singername) == {"rock", "jazz", "pop"}
    report = json.loads((workdir / "outputs" / "csv_in" / "data_report.json").read_text(encoding="utf-8"))
    assert report["read"]["rows_unknown_playlist"] == 1 and report["read"]["rows"] == 180
    assert report["vectors"]["source"].startswith("item2vec")
    # 夏日海边 is Simplified (Traditional script would change it), 夏日海邊 Traditional; 深夜 is both.
    assert report["title_scripts"] == {"titles": 30, "traditional": 1, "simplified": 9}


def test_csv_ids_with_whitespace_that_survive_are_data_errors(workdir):
    write_csv_source(workdir / "csv_in", extra_rows="".join(f"00{i},0bad id\n" for i in range(30)))
    cfg, _ = parse_config(["--prepare.source", "csv", "--prepare.input", str(workdir / "csv_in"), *FAST, *CSV_COLUMNS])
    assert "0bad id" in read_csv_source(workdir / "csv_in", cfg.data).suspect_ids
    proc = run_stage("prepare_data.py", "--prepare.source", "csv", "--prepare.input", "csv_in", *FAST, *CSV_COLUMNS,
                     cwd=workdir, check=False)
    assert proc.returncode == 1
    assert "gen_playlist_song.csv, line 183, column 'song': id '0bad id' contains whitespace" in proc.stderr


def test_csv_input_with_its_own_vectors_keeps_them_and_gets_the_split(workdir):
    write_csv_source(workdir / "csv_in")
    ids = [f"0{s}" for t in TASTES for s in t]
    vectors = pd.DataFrame([[i / 10, -i / 10] for i in range(len(ids))], columns=["v0", "v1"])
    vectors.insert(0, "song_id", ids)
    vectors.to_csv(workdir / "csv_in" / "song_vectors.csv", index=False)
    run_stage("prepare_data.py", "--prepare.source", "csv", "--prepare.input", "csv_in", "--prepare.output",
              "data/own", *FAST, *CSV_COLUMNS, "--data.input_dim", "2", cwd=workdir)
    written = pd.read_csv(workdir / "data" / "own" / "song_vectors.csv", dtype={"song_id": str})
    assert list(written.song_id) == ids and written.v0.tolist() == vectors.v0.tolist()
    split = pd.read_csv(workdir / "data" / "own" / "playlist_split.csv", dtype=str)
    expected = assign_splits([f"00{i}" for i in range(30)], SplitConfig(val_ratio=0.2, test_ratio=0.2,
                                                                          min_eval_playlists=0), 42)
    assert dict(zip(split.playlist_id, split.split)) == expected


def test_netease_import_keeps_chinese_titles_byte_for_byte(workdir):
    source = shared_dataset("netease")
    run_stage("prepare_data.py", "--prepare.source", "csv", "--prepare.input", str(source), "--prepare.output",
              "data/netease", "--data.input_dim", "16", cwd=workdir)
    report = json.loads((workdir / "outputs" / "netease" / "data_report.json").read_text(encoding="utf-8"))
    assert report["read"]["playlists"] == 634 and report["read"]["rows"] == 72343
    assert report["read"]["songs"] == 38553 and report["read"]["song_info"]
    original = pd.read_csv(source / "gen_playlist_info.csv", dtype=str, keep_default_na=False)
    written = pd.read_csv(workdir / "data" / "netease" / "gen_playlist_info.csv", dtype=str, keep_default_na=False)
    expected = dict(zip(original.glid, original.listname.map(clean_title)))
    assert len(written) == report["playlists"] >= 500  # the rest have no song in >= 5 training playlists
    for pid, title in zip(written.glid, written.listname):
        assert title.encode("utf-8") == expected[pid].encode("utf-8")
    assert "欧美R&B入坑曲：封神旋律 是谁的一代青春" in set(written.listname)
    names = pd.read_csv(workdir / "data" / "netease" / "gen_song_info.csv", dtype=str, keep_default_na=False)
    assert names.songname.str.contains(r"[\u4e00-\u9fff]").any()


def test_a_catalogue_cut_that_leaves_nothing_is_one_line_before_item2vec(mpd_folder, workdir):
    proc = run_stage("prepare_data.py", "--prepare.source", "mpd", "--prepare.input", "mpd_in", *FAST,
                     "--prepare.min_song_playlists", "100000", cwd=workdir, check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "nothing is left after the catalogue cut" in proc.stderr.strip().splitlines()[-1]
    assert not (workdir / "data").exists()
