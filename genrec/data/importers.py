"""Reading real playlist collections into one in-memory shape, before cleaning and song vectors.

Two sources:

- ``mpd``: a folder of Spotify Million Playlist Dataset slices (``mpd.slice.*.json``, or ``.json.gz``),
  read one file at a time, so memory holds the catalogue and compact per-playlist song codes, never
  more than one JSON document. Song id = the id part of ``track_uri``; song info from ``track_name`` /
  ``artist_name``. Fields other than ``pid``, ``name``, ``tracks`` and ``track_uri`` are optional.
- ``csv``: a folder with the seed's files (``gen_playlist_info``, ``gen_playlist_song``, optionally
  ``gen_song_info`` and ``song_vectors``; ``.csv``/``.tsv``, optionally ``.gz``), read with the data
  contract's readers and DataConfig's column names.

Songs are coded as integers (index into ``song_ids``) so a million playlists stay compact.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from config import DataConfig

from genrec.data.files import SongVectors, load_playlist_info, load_song_vectors, read_table
from genrec.data.dataset import INFO_FILE, SONG_INFO_FILE, SONGS_FILE, VECTOR_FILE
from genrec.errors import DataError

log = logging.getLogger(__name__)

_WHITESPACE = re.compile(r"\s")
_SLICE_NUMBER = re.compile(r"mpd\.slice\.(\d+)")
TABLE_SUFFIXES = (".csv", ".tsv", ".csv.gz", ".tsv.gz")


@dataclass
class ImportedPlaylists:
    """Playlists in input order with songs as codes into ``song_ids`` (repeats already collapsed)."""

    ids: list[str]
    titles: list[str]
    songs: list[np.ndarray]  # int32 codes, playlist order
    song_ids: list[str]
    song_names: list[str]
    singers: list[str]
    report: dict
    inputs: list[Path]
    vectors: SongVectors | None = None
    suspect_ids: dict[str, DataError] = field(default_factory=dict)
    """Ids containing whitespace, with the error to raise should one survive the import."""


class SongTable:
    """Song id -> code, with the first name and singer seen for each song."""

    def __init__(self) -> None:
        self.code: dict[str, int] = {}
        self.ids: list[str] = []
        self.names: list[str] = []
        self.singers: list[str] = []

    def add(self, song_id: str, name: str, singer: str) -> int:
        code = self.code.get(song_id)
        if code is None:
            code = self.code[song_id] = len(self.ids)
            self.ids.append(song_id)
            self.names.append(name)
            self.singers.append(singer)
        return code


def _note_whitespace(suspects: dict[str, DataError], value: str, error: DataError) -> None:
    if _WHITESPACE.search(value) and value not in suspects:
        suspects[value] = error


# ----------------------------------------------------------------------------------------- MPD


def mpd_slice_files(folder: str | Path) -> list[Path]:
    """Slice files in numeric order (0-999 before 1000-1999), so the import order is reproducible."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(folder, "MPD input folder not found (--prepare.input)")
    files = [p for p in folder.iterdir() if p.name.startswith("mpd.slice.")
             and (p.name.endswith(".json") or p.name.endswith(".json.gz"))]
    if not files:
        raise DataError(folder, "no mpd.slice.*.json or mpd.slice.*.json.gz files")

    def order(path: Path) -> tuple[int, str]:
        number = _SLICE_NUMBER.match(path.name)
        return (int(number.group(1)) if number else -1, path.name)
    return sorted(files, key=order)


def read_slice(path: Path) -> list[dict]:
    """The ``playlists`` list of one slice file, or a DataError saying what is wrong with it."""
    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rt", encoding="utf-8") as handle:
            document = json.load(handle)
    except json.JSONDecodeError as err:
        raise DataError(path, f"invalid JSON at char {err.colno} ({err.msg}): truncated or damaged file?",
                        line=err.lineno) from None
    except UnicodeDecodeError as err:
        raise DataError(path, f"not UTF-8 text (byte {err.start}: {err.reason})") from None
    except (OSError, EOFError) as err:
        raise DataError(path, f"cannot read slice file ({err})") from None
    playlists = document.get("playlists") if isinstance(document, dict) else None
    if not isinstance(playlists, list):
        raise DataError(path, "no 'playlists' list at the top level: not an MPD slice file")
    return playlists


def _required(playlist: dict, key: str, path: Path, index: int):
    if not isinstance(playlist, dict) or key not in playlist or playlist[key] is None:
        raise DataError(path, f"playlist {index} has no '{key}'")
    return playlist[key]


def read_mpd(folder: str | Path) -> ImportedPlaylists:
    files = mpd_slice_files(folder)
    table = SongTable()
    ids: list[str] = []
    titles: list[str] = []
    songs: list[np.ndarray] = []
    seen_pids: dict[str, Path] = {}
    suspects: dict[str, DataError] = {}
    rows = repeats = 0
    progress = tqdm(files, desc="reading MPD slices", unit="file")
    for path in progress:
        for index, playlist in enumerate(read_slice(path)):
            pid = str(_required(playlist, "pid", path, index)).strip()
            if pid in seen_pids:
                raise DataError(path, f"playlist {index}: pid {pid!r} already used in {seen_pids[pid]}")
            seen_pids[pid] = path
            _note_whitespace(suspects, pid, DataError(path, f"playlist {index}: pid {pid!r} contains whitespace"))
            title = str(_required(playlist, "name", path, index))
            tracks = _required(playlist, "tracks", path, index)
            codes: dict[int, None] = {}  # insertion-ordered set: playlist order, repeats collapsed
            for position, track in enumerate(tracks):
                uri = track.get("track_uri") if isinstance(track, dict) else None
                if not isinstance(uri, str) or not uri.strip():
                    raise DataError(path, f"playlist {index} (pid {pid}), track {position}: no 'track_uri'")
                song_id = uri.strip().rsplit(":", 1)[-1]
                _note_whitespace(suspects, song_id, DataError(
                    path, f"playlist {index} (pid {pid}), track {position}: song id {song_id!r} contains whitespace"))
                codes[table.add(song_id, str(track.get("track_name") or "").strip(),
                                str(track.get("artist_name") or "").strip())] = None
                rows += 1
            repeats += len(tracks) - len(codes)
            ids.append(pid)
            titles.append(title)
            songs.append(np.fromiter(codes, dtype=np.int32, count=len(codes)))
        progress.set_postfix(playlists=len(ids), songs=len(table.ids))
    report = {"files": len(files), "playlists": len(ids), "rows": rows, "rows_repeated_song": repeats,
              "songs": len(table.ids)}
    log.info("read %d playlists, %d rows, %d distinct songs from %d slice files", len(ids), rows,
             len(table.ids), len(files))
    return ImportedPlaylists(ids, titles, songs, table.ids, table.names, table.singers, report, files,
                             suspect_ids=suspects)


# ----------------------------------------------------------------------------------------- CSV


def find_table(folder: Path, file_name: str, required: bool) -> Path | None:
    """``folder/<stem>`` with any table suffix (stem from the dataset folder's file name)."""
    stem = file_name.removesuffix(".csv")
    for suffix in TABLE_SUFFIXES:
        candidate = folder / (stem + suffix)
        if candidate.exists():
            return candidate
    if required:
        raise DataError(folder / file_name, f"not found (also tried {', '.join(stem + s for s in TABLE_SUFFIXES[1:])})")
    return None


def _stripped_ids(frame: pd.DataFrame, column: str, path: Path) -> pd.Series:
    ids = frame[column].str.strip()
    empty = (ids == "").to_numpy()
    if empty.any():
        raise DataError(path, "empty id", line=int(np.flatnonzero(empty)[0]) + 2, column=column)
    return ids


def _note_whitespace_ids(ids: pd.Series, path: Path, column: str, suspects: dict[str, DataError]) -> None:
    """Remember where ids with inner whitespace first occur; they are an error only if they survive.

    (The data contract's check_ids rejects them on sight; an import must first see whether the
    catalogue cut removes them, as it does for the one odd id in the netease sample.)
    """
    for row in np.flatnonzero(ids.str.contains(r"\s", regex=True).to_numpy()):
        _note_whitespace(suspects, ids.iat[row], DataError(
            path, f"id {ids.iat[row]!r} contains whitespace", line=int(row) + 2, column=column))


def _read_song_info(path: Path, cfg: DataConfig, suspects: dict[str, DataError]) -> dict[str, tuple[str, str]]:
    frame = read_table(path, [cfg.song_id_column, cfg.song_name_column, cfg.singer_column], "song info")
    ids = _stripped_ids(frame, cfg.song_id_column, path)
    _note_whitespace_ids(ids, path, cfg.song_id_column, suspects)
    pairs = zip(frame[cfg.song_name_column].str.strip(), frame[cfg.singer_column].str.strip())
    info: dict[str, tuple[str, str]] = {}
    for song, pair in zip(ids, pairs):
        info.setdefault(song, pair)  # the first row of a repeated id wins
    return info


def read_csv_source(folder: str | Path, data_cfg: DataConfig) -> ImportedPlaylists:
    """The seed's tables, joined with pandas (one pass, no per-row Python) in playlist-file order."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(folder, "CSV input folder not found (--prepare.input)")
    info_path = find_table(folder, INFO_FILE, required=True)
    songs_path = find_table(folder, SONGS_FILE, required=True)
    song_info_path = find_table(folder, SONG_INFO_FILE, required=False)
    vector_path = find_table(folder, VECTOR_FILE, required=False)
    cfg = dataclasses.replace(data_cfg, song_vector_file=str(vector_path or ""))
    playlist_ids, titles = load_playlist_info(cfg, info_path)
    suspects: dict[str, DataError] = {}

    rows = read_table(songs_path, [cfg.membership_playlist_column, cfg.song_id_column], "playlist-song")
    pids = _stripped_ids(rows, cfg.membership_playlist_column, songs_path)
    songs = _stripped_ids(rows, cfg.song_id_column, songs_path)
    _note_whitespace_ids(songs, songs_path, cfg.song_id_column, suspects)
    position = pd.Series(np.arange(len(playlist_ids)), index=playlist_ids)
    known = pids.isin(position.index).to_numpy()
    if not known.all():
        log.warning("%s: %d rows name %d playlists missing from %s (e.g. %r); they are ignored", songs_path,
                    int((~known).sum()), pids[~known].nunique(), info_path, pids[~known].iat[0])
    pairs = pd.DataFrame({"playlist": position.loc[pids[known]].to_numpy(), "song": songs[known].to_numpy()})
    repeated = pairs.duplicated().to_numpy()
    pairs = pairs[~repeated]
    codes, song_ids = pd.factorize(pairs["song"])  # codes in order of first appearance
    order = np.argsort(pairs["playlist"].to_numpy(), kind="stable")  # stable: playlist order is kept
    lengths = np.bincount(pairs["playlist"].to_numpy(), minlength=len(playlist_ids))
    playlist_codes = np.split(codes[order].astype(np.int32), np.cumsum(lengths)[:-1])

    table = SongTable()
    info = _read_song_info(song_info_path, cfg, suspects) if song_info_path else {}
    for song in song_ids:
        table.add(song, *info.get(song, ("", "")))
    vectors = load_song_vectors(cfg) if vector_path else None
    for song in vectors.ids if vectors else []:  # songs with a vector but in no playlist stay recommendable
        table.add(song, *info.get(song, ("", "")))
    report = {"playlists": len(playlist_ids), "rows_read": len(rows), "rows": int(known.sum()),
              "rows_unknown_playlist": int((~known).sum()), "unknown_playlist_ids": int(pids[~known].nunique()),
              "rows_repeated_song": int(repeated.sum()), "playlists_without_songs": int((lengths == 0).sum()),
              "songs": len(song_ids), "song_info": bool(song_info_path), "song_vectors": bool(vectors)}
    inputs = [p for p in (info_path, songs_path, song_info_path, vector_path) if p]
    return ImportedPlaylists(playlist_ids, titles, playlist_codes, table.ids, table.names, table.singers,
                             report, inputs, vectors, suspects)
