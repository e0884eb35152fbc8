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
from tqdm import tqdm

from config import DataConfig

from .data import SongVectors, load_playlists, load_song_info, load_song_vectors, read_table
from .dataset import INFO_FILE, SONG_INFO_FILE, SONGS_FILE, VECTOR_FILE
from .errors import DataError

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


def _locate_whitespace_ids(path: Path, columns: list[str], what: str, suspects: dict[str, DataError]) -> None:
    """Record file, line and column of ids with inner whitespace (rare, so a second read is cheap)."""
    frame = read_table(path, columns, what)
    for column in columns:
        values = frame[column].str.strip()
        for row in np.flatnonzero(values.str.contains(r"\s", regex=True).to_numpy()):
            _note_whitespace(suspects, values.iat[row], DataError(
                path, f"id {values.iat[row]!r} contains whitespace", line=int(row) + 2, column=column))


def read_csv_source(folder: str | Path, data_cfg: DataConfig) -> ImportedPlaylists:
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(folder, "CSV input folder not found (--prepare.input)")
    info_path = find_table(folder, INFO_FILE, required=True)
    songs_path = find_table(folder, SONGS_FILE, required=True)
    song_info_path = find_table(folder, SONG_INFO_FILE, required=False)
    vector_path = find_table(folder, VECTOR_FILE, required=False)
    cfg = dataclasses.replace(data_cfg, playlist_info_file=str(info_path), playlist_songs_file=str(songs_path),
                              song_info_file=str(song_info_path or ""), song_vector_file=str(vector_path or ""))
    playlists = load_playlists(cfg)
    info = load_song_info(cfg) if song_info_path else None
    vectors = load_song_vectors(cfg) if vector_path else None

    table = SongTable()
    describe = (lambda s: (info.names.get(s, ""), info.singers.get(s, ""))) if info else (lambda s: ("", ""))
    codes = [np.array([table.add(s, *describe(s)) for s in songs], dtype=np.int32) for songs in playlists.songs]
    songs_in_playlists = len(table.ids)
    for song in vectors.ids if vectors else []:  # songs with a vector but in no playlist stay recommendable
        table.add(song, *describe(song))

    suspects: dict[str, DataError] = {}
    if any(_WHITESPACE.search(pid) for pid in playlists.ids) or any(_WHITESPACE.search(s) for s in table.ids):
        _locate_whitespace_ids(info_path, [cfg.playlist_id_column], "playlist info", suspects)
        _locate_whitespace_ids(songs_path, [cfg.membership_playlist_column, cfg.membership_song_column],
                               "playlist-song", suspects)
    report = dict(playlists.report, songs=songs_in_playlists, song_info=bool(info), song_vectors=bool(vectors))
    report["rows_read"] = report["rows"]
    report["rows"] -= report["rows_unknown_playlist"]  # rows that belong to a known playlist
    inputs = [p for p in (info_path, songs_path, song_info_path, vector_path) if p]
    return ImportedPlaylists(playlists.ids, playlists.titles, codes, table.ids, table.names, table.singers,
                             report, inputs, vectors, suspects)
