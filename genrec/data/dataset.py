"""Writing a dataset folder in the four-file input schema, plus its split and a config that points at it.

A dataset folder (``data/demo/``, ``data/spotify_mpd/``, ...) holds:

- ``song_vectors.csv``: ``song_id,v0,...,v{d-1}``
- ``gen_playlist_info.csv``: ``glid,listname``
- ``gen_playlist_song.csv``: ``special_gid,mixsongid`` (playlist order)
- ``gen_song_info.csv``: ``mixsongid,songname,singername``
- ``playlist_split.csv``: ``playlist_id,split`` (see genrec.data.split)
- ``config.yaml``: ``--config`` file that points every stage at this folder
- ``manifest.json``: what made the folder (see genrec.artifacts)

The folder is written whole into a temporary sibling and renamed into place, so a failed run never
leaves a half dataset where a good one was.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from genrec.artifacts import atomic_path, build_manifest, write_json
from genrec.data.split import write_split_file

log = logging.getLogger(__name__)

VECTOR_FILE = "song_vectors.csv"
INFO_FILE = "gen_playlist_info.csv"
SONGS_FILE = "gen_playlist_song.csv"
SONG_INFO_FILE = "gen_song_info.csv"
SPLIT_FILE = "playlist_split.csv"
CONFIG_FILE = "config.yaml"


@dataclass
class Dataset:
    song_ids: list[str]
    vectors: np.ndarray
    song_names: list[str]
    singers: list[str]
    playlist_ids: list[str]
    titles: list[str]
    playlist_songs: list[list[str]]
    split: dict[str, str]


def data_config_for(folder: str | Path) -> dict:
    """The ``data`` group that points at a dataset folder (default column names)."""
    folder = Path(folder)
    return {"song_vector_file": str(folder / VECTOR_FILE), "playlist_info_file": str(folder / INFO_FILE),
            "playlist_songs_file": str(folder / SONGS_FILE), "song_info_file": str(folder / SONG_INFO_FILE),
            "split_file": str(folder / SPLIT_FILE)}


PLAYLISTS_PER_WRITE = 100_000
"""Playlists whose (playlist, song) rows are made and written at a time (all at once would be tens of millions of
row objects for a million playlists)."""


def write_playlist_songs(path: Path, playlist_ids: list[str], playlist_songs: list[list[str]]) -> None:
    """The playlist-song table, one (playlist, song) row per song in playlist order, a block of playlists at a time."""
    with open(path, "w", encoding="utf-8", newline="") as out:
        for start in range(0, max(len(playlist_ids), 1), PLAYLISTS_PER_WRITE):
            block = playlist_songs[start:start + PLAYLISTS_PER_WRITE]
            pids = np.repeat(np.asarray(playlist_ids[start:start + PLAYLISTS_PER_WRITE], dtype=object),
                             [len(songs) for songs in block])
            frame = pd.DataFrame({"special_gid": pids, "mixsongid": [sid for songs in block for sid in songs]})
            frame.to_csv(out, index=False, header=start == 0)


def write_dataset(folder: str | Path, data: Dataset, run_overrides: dict, inputs: list, config: dict,
                  summary: dict) -> None:
    """Write every file of a dataset folder atomically, with a config.yaml and manifest.json."""
    folder = Path(folder)
    dim = data.vectors.shape[1]
    with atomic_path(folder) as tmp:
        tmp.mkdir()
        vectors = pd.DataFrame(data.vectors, columns=[f"v{i}" for i in range(dim)])
        vectors.insert(0, "song_id", data.song_ids)
        vectors.to_csv(tmp / VECTOR_FILE, index=False, float_format="%.6g", encoding="utf-8")
        pd.DataFrame({"glid": data.playlist_ids, "listname": data.titles}).to_csv(
            tmp / INFO_FILE, index=False, encoding="utf-8")
        write_playlist_songs(tmp / SONGS_FILE, data.playlist_ids, data.playlist_songs)
        pd.DataFrame({"mixsongid": data.song_ids, "songname": data.song_names, "singername": data.singers}).to_csv(
            tmp / SONG_INFO_FILE, index=False, encoding="utf-8")
        write_split_file(tmp / SPLIT_FILE, data.split)
        stage_config = {"data": dict(data_config_for(folder), input_dim=dim), **run_overrides}
        (tmp / CONFIG_FILE).write_text(yaml.safe_dump(stage_config, allow_unicode=True, sort_keys=False),
                                       encoding="utf-8")
        manifest = build_manifest(tmp, inputs, config, summary)
        manifest["artifact"] = str(folder)
        write_json(tmp / "manifest.json", manifest)
    log.info("wrote %d songs, %d playlists, %d rows to %s (use --config %s)", len(data.song_ids),
             len(data.playlist_ids), sum(map(len, data.playlist_songs)), folder, folder / CONFIG_FILE)
