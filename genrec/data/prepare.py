"""Stage 0: produce a dataset folder in the input schema (demo data, or imported playlists).

An import (``mpd`` or ``csv``) runs these steps, each counted in the data report:

1. read the playlists (repeated songs inside a playlist collapsed);
2. clean titles (genrec.text.clean_title) and drop playlists whose title is then empty;
3. drop playlists with fewer than ``prepare.min_playlist_songs`` distinct songs;
4. split playlists into train / val / test (genrec.data.split, the same hash split the corpus stage reuses);
5. catalogue cut: keep songs in at least ``prepare.min_song_playlists`` TRAINING playlists (skipped
   when the input brings its own vectors: then the catalogue is the songs with vectors);
6. learn item2vec vectors from the training playlists; songs without a vector leave the catalogue;
7. training playlists keep only catalogue songs; playlists left with no catalogue song are dropped;
   val/test playlists keep all their songs, so the evaluation counts songs no system can recommend
   as misses (the report says how many rows that is).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from pathlib import Path

import numpy as np

from config import Config, PrepareConfig

from genrec.artifacts import write_json
from config import config_as_dict
from genrec.data.files import SongVectors
from genrec.data.dataset import Dataset, write_dataset
from genrec.data.demo import generate_demo
from genrec.errors import ConfigError, DataError
from genrec.data.importers import ImportedPlaylists, read_csv_source, read_mpd
from genrec.data import item2vec
from genrec.data.item2vec import format_quality, quality_check, train_item2vec
from genrec.data.split import SPLITS, assign_splits
from genrec.text import clean_title, script_counts

DEMO_TASTES = 40
"""Demo data: latent tastes (moods, genres, activities, eras) that titles reveal and songs follow (fewer for
fewer than 50 songs a taste)."""

log = logging.getLogger(__name__)


def prepare_demo(cfg: Config) -> dict:
    p = cfg.prepare
    tastes = min(DEMO_TASTES, max(4, p.demo_songs // 50))  # a small demo keeps enough songs per taste to learn
    demo = generate_demo(p.demo_songs, p.demo_playlists, tastes, cfg.data.input_dim, cfg.run.seed)
    split = assign_splits(demo.playlist_ids, cfg.split, cfg.run.seed)
    report = {
        "source": "demo",
        "songs": len(demo.song_ids),
        "playlists": len(demo.playlist_ids),
        "rows": sum(map(len, demo.playlist_songs)),
        "split": dict(Counter(split.values())),
    }
    dataset = Dataset(demo.song_ids, demo.vectors, demo.song_names, demo.singers, demo.playlist_ids,
                      demo.titles, demo.playlist_songs, split)
    write_dataset(p.output, dataset, {}, [], config_as_dict(cfg, ["prepare", "split", "run"]), report)
    return report


def import_output_folder(p: PrepareConfig) -> Path:
    """``prepare.output``, except that an import never lands on the demo folder by default."""
    if p.output == PrepareConfig.output:
        return Path(PrepareConfig.output).parent / Path(p.input).resolve().name
    return Path(p.output)


def run_overrides(cfg: Config, name: str) -> dict:
    """Per-dataset artifact folders, so runs on different datasets never overwrite each other."""
    return {"run": {"output_dir": str(Path(cfg.run.output_dir) / name),
                    "model_dir": str(Path(cfg.run.model_dir) / name)}}


class Steps:
    """Counts of playlists, rows and songs after each cleaning step (per split once there is one)."""

    def __init__(self) -> None:
        self.steps: list[dict] = []

    def record(self, step: str, songs: list[np.ndarray], split: list[str] | None = None) -> None:
        entry = {"step": step, "playlists": len(songs), "rows": int(sum(len(s) for s in songs)),
                 "songs": int(len(np.unique(np.concatenate(songs)))) if songs else 0}
        if split is not None:
            for name in SPLITS:
                mine = [s for s, where in zip(songs, split) if where == name]
                entry[name] = {"playlists": len(mine), "rows": int(sum(len(s) for s in mine))}
        self.steps.append(entry)
        log.info("%-45s %9d playlists %11d rows %9d songs", step, entry["playlists"], entry["rows"], entry["songs"])


def _keep(data: ImportedPlaylists, keep: list[bool], split: list[str] | None = None) -> list[str] | None:
    """Keep the playlists marked True (in place); return the matching split labels."""
    data.ids = [x for x, k in zip(data.ids, keep) if k]
    data.titles = [x for x, k in zip(data.titles, keep) if k]
    data.songs = [x for x, k in zip(data.songs, keep) if k]
    return None if split is None else [x for x, k in zip(split, keep) if k]


def _restrict_songs(data: ImportedPlaylists, in_catalogue: np.ndarray) -> None:
    data.songs = [codes[in_catalogue[codes]] for codes in data.songs]


def _training_counts(data: ImportedPlaylists, split: list[str]) -> np.ndarray:
    """Number of training playlists each song code appears in."""
    train = [codes for codes, where in zip(data.songs, split) if where == "train"]
    flat = np.concatenate(train) if train else np.zeros(0, np.int32)
    return np.bincount(flat, minlength=len(data.song_ids))


def _eval_rows(data: ImportedPlaylists, split: list[str]) -> dict:
    return {name: int(sum(len(c) for c, where in zip(data.songs, split) if where == name)) for name in ("val", "test")}


def _restore_eval_songs(data: ImportedPlaylists, split: list[str], uncut: dict[str, np.ndarray]) -> int:
    """Val/test playlists get back the songs the catalogue cut removed, so that evaluation counts them
    as misses for every system (their share is reported) instead of silently scoring an easier task.
    Ids that could not be written (whitespace) stay out. Returns the number of rows given back."""
    restored = 0
    for i, (pid, where) in enumerate(zip(data.ids, split)):
        if where == "train":
            continue
        full = [c for c in uncut[pid] if data.song_ids[c] not in data.suspect_ids]
        restored += len(full) - len(data.songs[i])
        data.songs[i] = np.asarray(full, dtype=data.songs[i].dtype)
    return restored


def _check_ids(data: ImportedPlaylists, catalogue: list[str]) -> None:
    """Later stages write space-separated id lists, so no surviving id may contain whitespace."""
    for song_or_playlist in (*data.ids, *catalogue):
        if song_or_playlist in data.suspect_ids:
            raise data.suspect_ids[song_or_playlist]


def song_vectors_for(data: ImportedPlaylists, split: list[str], cfg: Config, steps: Steps,
                     report: dict) -> SongVectors:
    """The catalogue's vectors: the input's own, or item2vec learned from the training playlists."""
    p = cfg.prepare
    code = {song: i for i, song in enumerate(data.song_ids)}
    if data.vectors is not None:
        in_catalogue = np.zeros(len(data.song_ids), bool)
        in_catalogue[[code[s] for s in data.vectors.ids]] = True
        _restrict_songs(data, in_catalogue)
        steps.record("keep songs with the input's own vectors", data.songs, split)
        report["vectors"] = {"source": "input", "songs": len(data.vectors.ids)}
        return data.vectors

    counts = _training_counts(data, split)
    _restrict_songs(data, counts >= p.min_song_playlists)
    steps.record(f"catalogue cut: songs in >= {p.min_song_playlists} training playlists", data.songs, split)
    started = time.perf_counter()
    train = [codes for codes, where in zip(data.songs, split) if where == "train"]
    if not any(len(codes) > 1 for codes in train):  # item2vec learns from songs side by side in a playlist
        raise DataError(p.input, f"nothing is left after the catalogue cut: no training playlist keeps two songs "
                        f"heard in >= {p.min_song_playlists} training playlists (lower prepare.min_song_playlists)")
    vectors, epochs = train_item2vec(train, data.song_ids, cfg.data.input_dim, p, cfg.run.seed)
    has_vector = np.zeros(len(data.song_ids), bool)
    has_vector[[code[s] for s in vectors.ids]] = True
    _restrict_songs(data, has_vector)
    steps.record("songs without an item2vec vector leave", data.songs, split)
    report["vectors"] = {"source": "item2vec (training playlists only)", "songs": len(vectors.ids),
                         "dim": cfg.data.input_dim, "window": item2vec.WINDOW, "epochs": epochs,
                         "negative": item2vec.NEGATIVE, "min_count": 1,
                         "seconds": round(time.perf_counter() - started, 1)}
    return vectors


def prepare_import(cfg: Config) -> tuple[dict, Path]:
    p = cfg.prepare
    if not p.input:
        raise ConfigError(f"prepare.source={p.source} needs --prepare.input FOLDER")
    output = import_output_folder(p)
    overrides = run_overrides(cfg, output.name)
    started = time.perf_counter()
    data = read_mpd(p.input) if p.source == "mpd" else read_csv_source(p.input, cfg.data)
    read_seconds = time.perf_counter() - started
    steps = Steps()
    steps.steps.append({"step": "read", "playlists": data.report["playlists"], "rows": data.report["rows"],
                        "songs": data.report["songs"]})
    steps.record("repeated songs inside a playlist collapsed", data.songs)

    data.titles = [clean_title(t) for t in data.titles]
    _keep(data, [bool(t) for t in data.titles])
    steps.record("titles cleaned; playlists with an empty title dropped", data.songs)
    _keep(data, [len(s) >= p.min_playlist_songs for s in data.songs])
    steps.record(f"playlists with >= {p.min_playlist_songs} distinct songs", data.songs)
    if not data.ids:
        raise DataError(p.input, f"no playlist has {p.min_playlist_songs} or more songs "
                        "(prepare.min_playlist_songs)")

    assignment = assign_splits(data.ids, cfg.split, cfg.run.seed)
    split = [assignment[pid] for pid in data.ids]
    eval_rows_before = _eval_rows(data, split)
    uncut_songs = dict(zip(data.ids, data.songs))
    report = {"source": p.source, "input": str(p.input), "output": str(output), "read": data.report}
    vectors = song_vectors_for(data, split, cfg, steps, report)
    popularity = _training_counts(data, split)
    eval_rows_after = _eval_rows(data, split)
    split = _keep(data, [len(s) > 0 for s in data.songs], split)
    steps.record("playlists left without catalogue songs dropped", data.songs, split)
    if not data.ids or not vectors.ids:
        raise DataError(p.input, "nothing is left after the filters: lower prepare.min_song_playlists "
                        "or prepare.min_playlist_songs")
    _check_ids(data, vectors.ids)
    kept_outside = _restore_eval_songs(data, split, uncut_songs)

    code = {song: i for i, song in enumerate(data.song_ids)}
    catalogue = np.array([code[s] for s in vectors.ids], dtype=np.int64)
    quality = quality_check(vectors, [data.song_names[c] for c in catalogue], [data.singers[c] for c in catalogue],
                            popularity[catalogue], cfg.run.seed)
    log.info("song vector quality check:\n%s", format_quality(quality))
    report.update({
        "songs": len(vectors.ids),
        "playlists": len(data.ids),
        "rows": int(sum(map(len, data.songs))),
        "split": dict(Counter(split)),
        "filters": steps.steps,
        "eval_rows_outside_catalogue": {name: eval_rows_before[name] - eval_rows_after[name]
                                        for name in eval_rows_before},
        "eval_rows_outside_catalogue_kept": kept_outside,
        "title_scripts": title_script_hint(data.titles),
        "quality": quality,
        "seconds": {"read": round(read_seconds, 1), "total": round(time.perf_counter() - started, 1)},
        "config": overrides,
    })
    dataset = Dataset(vectors.ids, vectors.vectors, [data.song_names[c] for c in catalogue],
                      [data.singers[c] for c in catalogue], data.ids, data.titles,
                      [[data.song_ids[c] for c in codes] for codes in data.songs], dict(zip(data.ids, split)))
    write_dataset(output, dataset, overrides, data.inputs, config_as_dict(cfg, ["prepare", "split", "data", "run"]),
                  {k: report[k] for k in ("source", "songs", "playlists", "rows", "split")})
    return report, Path(overrides["run"]["output_dir"])


def title_script_hint(titles: list[str]) -> dict[str, int]:
    """Count the titles written in each Chinese script, and say how to let users type either."""
    counts = script_counts(titles)
    if counts["traditional"] or counts["simplified"]:
        log.info("%d of %d titles change when written in Simplified Chinese, %d in Traditional: with "
                 "--corpus.title_script simplified (or traditional) a user may type titles in either script",
                 counts["traditional"], counts["titles"], counts["simplified"])
    return counts


def prepare(cfg: Config) -> dict:
    if cfg.prepare.source == "demo":
        report, report_dir = prepare_demo(cfg), Path(cfg.run.output_dir)
    else:
        report, report_dir = prepare_import(cfg)
    report_path = report_dir / "data_report.json"
    write_json(report_path, report)
    log.info("report: %s", report_path)
    return report
