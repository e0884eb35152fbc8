"""Training playlists on disk, compact: what a retrieval model (``retrieval_playlists.npz``) and a bundle
(``playlists.npz``) keep so title kNN, the walk and popularity can be fitted again where they are served.

JSON named every song once per playlist, and reading it made one string object per mention: at the full MPD's 66M
playlist-track rows that is gigabytes in every process that loads a model (docs/scaling.md, "The training
playlists beside a model"). Here each distinct song id is stored once and a playlist is a run of int32 indices
into that table; read back, every mention of a song is the same string object. Strings are stored as UTF-8 bytes
with end offsets, so the file is plain arrays (``np.load`` with ``allow_pickle=False``):

    ids, titles, song_table    each as <name>_utf8 (uint8) and <name>_ends (int64, one end offset per string)
    song_index                 int32, every playlist's songs in order, as rows of song_table
    playlist_ends              int64, where each playlist's run in song_index ends
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Sequence

import numpy as np

from genrec.artifacts import atomic_path
from genrec.errors import ArtifactError
from genrec.evaluate.baselines import TrainingPlaylists

FORMAT_ARRAYS = ("ids_utf8", "ids_ends", "titles_utf8", "titles_ends", "song_table_utf8", "song_table_ends",
                 "song_index", "playlist_ends")


def _packed(strings: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    encoded = [s.encode("utf-8") for s in strings]
    ends = np.cumsum([len(b) for b in encoded], dtype=np.int64)
    return np.frombuffer(b"".join(encoded), dtype=np.uint8), ends


def _unpacked(data: np.ndarray, ends: np.ndarray) -> list[str]:
    raw = data.tobytes()
    starts = [0, *ends[:-1].tolist()]
    return [raw[a:b].decode("utf-8") for a, b in zip(starts, ends.tolist())]


def write_playlists(path: str | Path, playlists: TrainingPlaylists) -> None:
    """Write ``playlists`` to ``path`` (a .npz), atomically."""
    table: dict[str, int] = {}
    index = np.fromiter((table.setdefault(song, len(table)) for songs in playlists.songs for song in songs),
                        dtype=np.int32)
    ends = np.cumsum([len(songs) for songs in playlists.songs], dtype=np.int64)
    arrays = {}
    for name, strings in (("ids", playlists.ids), ("titles", playlists.titles), ("song_table", list(table))):
        arrays[f"{name}_utf8"], arrays[f"{name}_ends"] = _packed(strings)
    with atomic_path(path) as staged:
        with open(staged, "wb") as handle:  # a handle: np.savez would add .npz to the staging name
            np.savez(handle, song_index=index, playlist_ends=ends, **arrays)


def read_playlists(path: str | Path, remedy: str) -> TrainingPlaylists:
    """The playlists :func:`write_playlists` wrote, or a one-line ArtifactError naming ``path`` and ``remedy``
    (what makes the file again)."""
    try:
        with np.load(path, allow_pickle=False) as saved:
            arrays = {name: saved[name] for name in FORMAT_ARRAYS}
        ids = _unpacked(arrays["ids_utf8"], arrays["ids_ends"])
        titles = _unpacked(arrays["titles_utf8"], arrays["titles_ends"])
        table = np.array(_unpacked(arrays["song_table_utf8"], arrays["song_table_ends"]) or [""], dtype=object)
        index, ends = arrays["song_index"], arrays["playlist_ends"]
        if len(ends) != len(ids) or len(titles) != len(ids) or (len(ends) and ends[-1] != len(index)):
            raise ValueError("its arrays disagree in length")
        if len(index) and (index.min() < 0 or index.max() >= len(table)):
            raise ValueError("a song index is outside its song table")
    except (OSError, ValueError, KeyError, UnicodeDecodeError, EOFError, zipfile.BadZipFile) as err:
        raise ArtifactError(f"{path} is missing or unreadable ({err}): {remedy}") from None
    songs = [part.tolist() for part in np.split(table[index], ends[:-1])] if len(ids) else []
    return TrainingPlaylists(titles, songs, ids)
