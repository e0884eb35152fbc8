"""The held-out playlists an evaluation scores: the val/test split of the corpus or an external file, with ground
truth from the data files (songs outside the catalogue kept: they are misses for every system)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from config import Config

from genrec.artifacts import require_fresh
from genrec.corpus.build import corpus_path, read_corpus
from genrec.data.files import load_playlists
from genrec.errors import DataError
from genrec.text import fold_script

log = logging.getLogger(__name__)


@dataclass
class EvalPlaylists:
    """Playlists to score: titles, and ground truth with songs outside the catalogue kept."""

    ids: list[str]
    titles: list[str]
    truths: list[list[str]]
    source: str
    report: dict = field(default_factory=dict)

    def head(self, n: int) -> "EvalPlaylists":
        if not n or n >= len(self.ids):
            return self
        return EvalPlaylists(self.ids[:n], self.titles[:n], self.truths[:n], self.source, self.report)


def split_playlists(cfg: Config, split: str, catalogue: dict) -> EvalPlaylists:
    """val/test playlists of the corpus; ground truth from the data files, so songs outside the
    catalogue stay in it (as misses for every system)."""
    path = corpus_path(cfg, split)
    require_fresh(path, "prepare_corpus.py")
    rows = read_corpus(path)
    raw = load_playlists(cfg.data)
    raw_songs = dict(zip(raw.ids, raw.songs))
    missing = [r.playlist_id for r in rows if r.playlist_id not in raw_songs]
    if missing:
        raise DataError(cfg.data.playlist_info_file, f"{len(missing)} {split} playlists of {path} are not in the "
                        f"data files (e.g. {missing[0]!r}): rerun prepare_corpus.py")
    truths = [raw_songs[r.playlist_id] for r in rows]
    return EvalPlaylists([r.playlist_id for r in rows], [r.input_text for r in rows], truths, str(path),
                         truth_report(truths, catalogue))


def external_playlists(cfg: Config, catalogue: dict, title_script: str) -> EvalPlaylists:
    """Playlists from --eval.playlist_info_file / --eval.playlist_songs_file, in the input schema, their
    titles folded into the model's ``title_script`` as its training titles were."""
    ecfg = cfg.eval
    if not ecfg.playlist_songs_file:
        raise DataError(ecfg.playlist_info_file, "--eval.playlist_songs_file is needed with --eval.playlist_info_file")
    raw = load_playlists(cfg.data, ecfg.playlist_info_file, ecfg.playlist_songs_file)
    keep = [i for i, songs in enumerate(raw.songs) if songs]
    if not keep:
        raise DataError(ecfg.playlist_songs_file, "no playlist of the file has a song")
    report = truth_report([raw.songs[i] for i in keep], catalogue)
    report["playlists_without_songs"] = len(raw.ids) - len(keep)
    if report["truth_songs_outside_catalogue"]:
        log.warning("%s: %.1f%% of the playlists' songs are not in the catalogue (every system misses them)",
                    ecfg.playlist_songs_file, 100 * report["share_outside_catalogue"])
    titles = [fold_script(raw.titles[i], title_script) for i in keep]
    return EvalPlaylists([raw.ids[i] for i in keep], titles, [raw.songs[i] for i in keep],
                         ecfg.playlist_info_file, report)


def truth_report(truths: list[list[str]], catalogue: dict) -> dict:
    total = sum(map(len, truths))
    outside = sum(song not in catalogue for songs in truths for song in songs)
    return {"playlists": len(truths), "truth_songs": total, "truth_songs_outside_catalogue": outside,
            "share_outside_catalogue": outside / total if total else 0.0,
            "playlists_without_catalogue_song": sum(all(s not in catalogue for s in songs) for songs in truths)}
