"""The data contract: reading and validating the four input files every stage uses.

Files are CSV or TSV by extension (``.csv``, ``.tsv``, optionally ``.gz``), UTF-8 with or without
BOM, with a header row. Ids are read as strings end to end ("007" stays "007"). Every problem is
raised as :class:`DataError` naming the file, the line (1 = header) and the column.
"""

from __future__ import annotations

import csv
import logging
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd

from config import DataConfig

from genrec.errors import DataError
from genrec.text import clean_title

log = logging.getLogger(__name__)


def separator_for(path: str | Path) -> str:
    name = str(path).lower().removesuffix(".gz")
    return "\t" if name.endswith(".tsv") or name.endswith(".txt") else ","


def read_table(path: str | Path, required: list[str], what: str) -> pd.DataFrame:
    """Read a CSV/TSV as strings and check that ``required`` columns are present."""
    return next(read_table_chunks(path, required, what, rows=None))


def read_table_chunks(path: str | Path, required: list[str], what: str, rows: int | None) -> Iterator[pd.DataFrame]:
    """:func:`read_table` ``rows`` rows at a time (None: the whole table in one frame), so a table of tens of
    millions of rows is never held whole; each chunk's index counts rows from the start of the file."""
    path = Path(path)
    if not path.exists():
        raise DataError(path, f"{what} file not found")
    if path.is_dir():
        raise DataError(path, f"{what} path is a folder, not a file")
    try:
        reader = pd.read_csv(path, sep=separator_for(path), dtype=str, keep_default_na=False, encoding="utf-8-sig",
                             quoting=csv.QUOTE_MINIMAL, on_bad_lines="error", chunksize=rows)
        chunks = [reader] if rows is None else reader
        number = -1
        for number, frame in enumerate(chunks):
            frame.columns = [str(c).strip() for c in frame.columns]
            missing = [c for c in required if c not in frame.columns]
            if missing:
                raise DataError(path, f"missing column(s) {', '.join(missing)}; the header has "
                                f"{', '.join(map(str, frame.columns)) or 'no columns'}", line=1)
            if frame.empty and number == 0:
                raise DataError(path, f"{what} file has a header but no rows")
            yield frame
        if number < 0:
            raise DataError(path, f"{what} file has a header but no rows")
    except pd.errors.EmptyDataError:
        raise DataError(path, f"{what} file is empty") from None
    except UnicodeDecodeError as err:
        raise DataError(path, f"not UTF-8 text (byte {err.start}: {err.reason})") from None
    except pd.errors.ParserError as err:
        line = re.search(r"line (\d+)", str(err))
        raise DataError(path, f"malformed row ({err})".replace("\n", " "),
                        line=int(line.group(1)) if line else None) from None
    except (OSError, EOFError) as err:
        raise DataError(path, f"cannot read {what} file ({err})") from None


def _first_line_where(mask: np.ndarray, first_row: int = 0) -> int:
    """File line of the first True row (header is line 1; ``first_row``: the frame's first row in the file)."""
    return int(np.flatnonzero(mask)[0]) + 2 + first_row


def check_ids(frame: pd.DataFrame, column: str, path: Path, unique: bool, first_row: int = 0) -> None:
    """Ids present, without whitespace, and (``unique``) not repeated; ``first_row``: where a chunk of the file
    starts (read_table_chunks), so errors name the file's line."""
    ids = frame[column].str.strip()
    empty = (ids == "").to_numpy()
    if empty.any():
        raise DataError(path, "empty id", line=_first_line_where(empty, first_row), column=column)
    # Later stages write space-separated id lists, so an id must not contain whitespace.
    spaced = ids.str.contains(r"\s", regex=True).to_numpy()
    if spaced.any():
        line = _first_line_where(spaced, first_row)
        raise DataError(path, f"id {ids.iloc[line - 2 - first_row]!r} contains whitespace", line=line, column=column)
    if unique:
        dup = ids.duplicated().to_numpy()
        if dup.any():
            line = _first_line_where(dup)
            first = int(np.flatnonzero((ids == ids.iloc[line - 2]).to_numpy())[0]) + 2
            raise DataError(path, f"duplicate id {ids.iloc[line - 2]!r} (first seen on line {first})",
                            line=line, column=column)


@dataclass
class SongVectors:
    ids: list[str]
    vectors: np.ndarray  # float32, (n_songs, input_dim)

    def index(self) -> dict[str, int]:
        return {song: i for i, song in enumerate(self.ids)}


MAX_VECTOR_VALUE = 1e6
"""The largest magnitude a song vector's value may have: k-means squares distances in float32, which larger values
overflow (embeddings are normally within a few units)."""


def _parsed_as_floats(path: Path, input_dim: int) -> tuple[pd.DataFrame, np.ndarray] | None:
    """The id column and the vectors, parsed straight into floats (a string per value would take gigabytes for a
    million songs); None when anything is off, so that load_song_vectors's checks find and name it."""
    try:
        header = pd.read_csv(path, sep=separator_for(path), nrows=0, encoding="utf-8-sig").columns
        if len(header) - 1 != input_dim:
            return None
        kinds = {name: (str if i == 0 else np.float64) for i, name in enumerate(header)}
        frame = pd.read_csv(path, sep=separator_for(path), dtype=kinds, keep_default_na=False, na_filter=False,
                            encoding="utf-8-sig", quoting=csv.QUOTE_MINIMAL, on_bad_lines="error")
    except (ValueError, OSError, EOFError, pd.errors.ParserError, pd.errors.EmptyDataError):
        return None
    numeric = frame.iloc[:, 1:].to_numpy(dtype=np.float64)
    if frame.empty or not np.isfinite(numeric).all() or (np.abs(numeric) > MAX_VECTOR_VALUE).any():
        return None
    frame = frame.iloc[:, :1]
    frame.columns = [str(header[0]).strip()]
    return frame, numeric


def load_song_vectors(cfg: DataConfig) -> SongVectors:
    """Song ids (first column) and their ``input_dim`` floats; rejects NaN/inf and wrong widths."""
    path = Path(cfg.song_vector_file)
    parsed = _parsed_as_floats(path, cfg.input_dim) if path.is_file() else None
    if parsed is not None:
        frame, numeric = parsed
        check_ids(frame, frame.columns[0], path, unique=True)
        return _checked_vectors(path, frame[frame.columns[0]], numeric)
    frame = read_table(path, [], "song vector")
    id_column = frame.columns[0]
    width = len(frame.columns) - 1
    if width != cfg.input_dim:
        raise DataError(path, f"expected {cfg.input_dim} vector columns after the id (data.input_dim), "
                        f"found {width}", line=1)
    check_ids(frame, id_column, path, unique=True)
    cells = frame.iloc[:, 1:]
    numeric = cells.apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(numeric)
    if bad.any():
        row, col = map(int, np.argwhere(bad)[0])
        raw = cells.iat[row, col]
        problem = "missing value" if raw.strip() == "" else f"value {raw!r} is not a finite number"
        raise DataError(path, problem, line=row + 2, column=str(cells.columns[col]))
    huge = np.abs(numeric) > MAX_VECTOR_VALUE
    if huge.any():
        row, col = map(int, np.argwhere(huge)[0])
        raise DataError(path, f"value {cells.iat[row, col]!r} is out of range (song vectors must lie within "
                        f"±{MAX_VECTOR_VALUE:g}: rescale them)", line=row + 2, column=str(cells.columns[col]))
    return _checked_vectors(path, frame[id_column], numeric)


def _checked_vectors(path: Path, ids: pd.Series, numeric: np.ndarray) -> SongVectors:
    """The vectors once every value is a finite number in range: refused when all are equal, warned when some are."""
    distinct = len(np.unique(numeric, axis=0))
    if distinct == 1 and len(numeric) > 1:
        raise DataError(path, f"all {len(numeric)} songs have the same vector: there is nothing to tell them apart by")
    if distinct < len(numeric):
        log.warning("%s: %d of %d songs share their vector with another song; such songs get the same codes "
                    "(collision_strategy suffix still gives each its own ID)", path, len(numeric) - distinct,
                    len(numeric))
    ids = ids.str.strip().tolist()
    log.info("read %d song vectors of width %d from %s", len(ids), numeric.shape[1], path)
    return SongVectors(ids=ids, vectors=numeric.astype(np.float32))


@dataclass
class Playlists:
    """Playlists in file order; ``songs[i]`` keeps playlist order with repeats collapsed."""

    ids: list[str]
    titles: list[str]
    songs: list[list[str]]
    report: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.ids)

    def subset(self, keep: list[int]) -> "Playlists":
        return Playlists([self.ids[i] for i in keep], [self.titles[i] for i in keep],
                         [self.songs[i] for i in keep], dict(self.report))


def load_playlist_info(cfg: DataConfig, path: str | Path | None = None) -> tuple[list[str], list[str]]:
    path = Path(path or cfg.playlist_info_file)
    frame = read_table(path, [cfg.playlist_id_column, cfg.title_column], "playlist info")
    check_ids(frame, cfg.playlist_id_column, path, unique=True)
    titles = frame[cfg.title_column].map(clean_title)
    empty = (titles == "").to_numpy()
    if empty.any():
        raise DataError(path, "empty title", line=_first_line_where(empty), column=cfg.title_column)
    return frame[cfg.playlist_id_column].str.strip().tolist(), titles.tolist()


PLAYLIST_SONG_CHUNK_ROWS = 2_000_000
"""Rows of the playlist-song table read at a time (a million playlists have tens of millions)."""


def load_playlists(cfg: DataConfig, info_file: str | Path | None = None,
                   songs_file: str | Path | None = None) -> Playlists:
    """Join playlist info with playlist-song rows; rows naming unknown playlists are counted, not used. The
    playlist-song table is read in chunks, and each song id is one string object however many playlists hold it."""
    ids, titles = load_playlist_info(cfg, info_file)
    path = Path(songs_file or cfg.playlist_songs_file)
    position = {pid: i for i, pid in enumerate(ids)}
    songs: list[list[str]] = [[] for _ in ids]
    shared: dict[str, str] = {}
    unknown = Counter()
    rows = 0
    for chunk in read_table_chunks(path, [cfg.membership_playlist_column, cfg.song_id_column], "playlist-song",
                                   PLAYLIST_SONG_CHUNK_ROWS):
        check_ids(chunk, cfg.membership_playlist_column, path, unique=False, first_row=rows)
        check_ids(chunk, cfg.song_id_column, path, unique=False, first_row=rows)
        rows += len(chunk)
        for pid, sid in zip(chunk[cfg.membership_playlist_column].str.strip(), chunk[cfg.song_id_column].str.strip()):
            i = position.get(pid)
            if i is None:
                unknown[pid] += 1
                continue
            songs[i].append(shared.setdefault(sid, sid))
    repeats = 0
    for i, listed in enumerate(songs):
        distinct = list(dict.fromkeys(listed))  # a song's first place in the playlist is kept
        repeats += len(listed) - len(distinct)
        songs[i] = distinct
    report = {
        "playlists": len(ids),
        "rows": rows,
        "rows_unknown_playlist": sum(unknown.values()),
        "unknown_playlist_ids": len(unknown),
        "rows_repeated_song": repeats,
        "playlists_without_songs": sum(1 for s in songs if not s),
    }
    if unknown:
        example = next(iter(unknown))
        log.warning("%s: %d rows name %d playlists missing from %s (e.g. %r); they are ignored",
                    path, report["rows_unknown_playlist"], len(unknown), cfg.playlist_info_file, example)
    if report["playlists_without_songs"]:
        log.warning("%d playlists have no songs in %s", report["playlists_without_songs"], path)
    return Playlists(ids, titles, songs, report)


def restrict_to_catalogue(playlists: Playlists, catalogue: set[str] | dict) -> Playlists:
    """Drop songs without vectors (they cannot be recommended); the report counts what went."""
    kept = [[s for s in songs if s in catalogue] for songs in playlists.songs]
    removed = sum(len(a) - len(b) for a, b in zip(playlists.songs, kept))
    report = dict(playlists.report, rows_song_not_in_catalogue=removed)
    if removed:
        log.warning("%d playlist rows name songs without a vector; they are not recommendable", removed)
    return Playlists(list(playlists.ids), list(playlists.titles), kept, report)


@dataclass
class SongInfo:
    names: dict[str, str]
    singers: dict[str, str]

    def describe(self, song_id: str) -> str:
        """"song - singer", or the id itself when the song has no info."""
        name = self.names.get(song_id, "")
        singer = self.singers.get(song_id, "")
        if not name:
            return song_id
        return f"{name} - {singer}" if singer else name


def load_song_info(cfg: DataConfig) -> SongInfo:
    path = Path(cfg.song_info_file)
    frame = read_table(path, [cfg.song_id_column, cfg.song_name_column, cfg.singer_column], "song info")
    check_ids(frame, cfg.song_id_column, path, unique=True)
    ids = frame[cfg.song_id_column].str.strip()
    return SongInfo(dict(zip(ids, frame[cfg.song_name_column].str.strip())),
                    dict(zip(ids, frame[cfg.singer_column].str.strip())))
