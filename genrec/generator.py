"""Stage 5: titles to playlists with the trained model, for the prompt, one title, or a file of titles.

The generator loads the model, the semantic-ID vocabulary and the song info once (seconds), then
answers each title with one batched decoding call. With ``collision_strategy=cluster`` an ID names a
cluster of songs; the generator picks one of them (seeded) and says how many the cluster holds.
"""

from __future__ import annotations

import json
import logging
import random
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from config import Config, GenerateConfig

from .artifacts import atomic_path
from .data import load_song_info
from .errors import DataError, GenrecError
from .generation import DecodingSettings, decode
from .model import load_tiger, resolve_device, tiger_final_dir
from .text import clean_title

log = logging.getLogger(__name__)


@dataclass
class Song:
    song_id: str
    name: str
    singer: str
    score: float
    cluster_size: int = 1


@dataclass
class GenerateOptions:
    """What the prompt's commands change between titles."""

    num_songs: int
    do_sample: bool
    temperature: float
    top_p: float
    num_beams: int
    seed: int

    @classmethod
    def from_config(cls, gcfg: GenerateConfig, seed: int) -> "GenerateOptions":
        return cls(gcfg.num_songs, gcfg.do_sample, gcfg.temperature, gcfg.top_p, gcfg.num_beams, seed)


class PlaylistGenerator:
    def __init__(self, cfg: Config):
        self.bundle = load_tiger(tiger_final_dir(cfg), resolve_device(cfg.run.device))
        self.info = load_song_info(cfg.data)
        self.options = GenerateOptions.from_config(cfg.generate, cfg.run.seed)
        self.batch_size = cfg.eval.batch_size
        log.info("model %s loaded (%s mode, %d songs)", tiger_final_dir(cfg), self.bundle.target_mode,
                 len(self.bundle.vocab.songs))

    @property
    def cluster_mode(self) -> bool:
        return self.bundle.vocab.collision_strategy == "cluster"

    def settings(self) -> DecodingSettings:
        o = self.options
        return DecodingSettings(num_songs=o.num_songs, num_beams=max(o.num_beams, o.num_songs), do_sample=o.do_sample,
                                temperature=o.temperature, top_p=o.top_p, min_songs=o.num_songs,
                                batch_size=self.batch_size)

    def generate(self, titles: list[str], progress: bool = False) -> list[list[Song]]:
        """One playlist per title; the same options and seed always give the same playlists."""
        cleaned = [clean_title(t) for t in titles]
        torch.manual_seed(self.options.seed)
        picker = random.Random(self.options.seed)
        decoded = decode(self.bundle, cleaned, self.settings(), constrained=True, progress=progress)
        return [self._songs(d.ids, d.songs, picker) for d in decoded]

    def _songs(self, ids, ranked, picker: random.Random) -> list[Song]:
        if not self.cluster_mode:
            return [self._song(song, score) for song, score in ranked]
        songs, seen = [], set()
        for tokens in ids:
            members = self.bundle.vocab.songs_of(tokens)
            if not members or tokens in seen:
                continue
            seen.add(tokens)
            songs.append(self._song(picker.choice(members), 0.0, len(members)))
            if len(songs) == self.options.num_songs:
                break
        return songs

    def _song(self, song_id: str, score: float, cluster_size: int = 1) -> Song:
        return Song(song_id, self.info.names.get(song_id, ""), self.info.singers.get(song_id, ""), score,
                    cluster_size)


def format_playlist(title: str, songs: list[Song]) -> str:
    if not songs:
        return f"{title}: no songs / 没有生成歌曲"
    lines = [f"{title}"]
    for rank, song in enumerate(songs, start=1):
        label = f"{song.name} - {song.singer}" if song.name and song.singer else song.name or song.song_id
        cluster = f"  (1 of {song.cluster_size} songs sharing this ID)" if song.cluster_size > 1 else ""
        lines.append(f"{rank:3d}. {label}{cluster}")
    return "\n".join(lines)


def playlist_record(title: str, songs: list[Song]) -> dict:
    return {"title": title, "songs": [asdict(s) for s in songs]}


def read_titles(path: str) -> list[str]:
    """Non-empty lines of a UTF-8 text file (BOM allowed); blank lines are skipped."""
    file = Path(path)
    if not file.exists():
        raise DataError(file, "titles file not found")
    try:
        lines = file.read_text(encoding="utf-8-sig").splitlines()
    except UnicodeDecodeError as err:
        raise DataError(file, f"not UTF-8 text (byte {err.start})") from None
    titles = [clean_title(line) for line in lines]
    titles = [t for t in titles if t]
    if not titles:
        raise DataError(file, "no titles in the file (one title per line)")
    return titles


def generate_file(generator: PlaylistGenerator, input_path: str, output_path: str) -> int:
    """Batch mode: every title of ``input_path`` to one JSON line of ``output_path`` (atomic)."""
    titles = read_titles(input_path)
    playlists = generator.generate(titles, progress=True)
    with atomic_path(output_path) as tmp, open(tmp, "w", encoding="utf-8") as out:
        for title, songs in zip(titles, playlists):
            out.write(json.dumps(playlist_record(title, songs), ensure_ascii=False) + "\n")
    return len(titles)


def one_title(generator: PlaylistGenerator, title: str, as_json: bool) -> str:
    cleaned = clean_title(title)
    if not cleaned:
        raise GenrecError("the title is empty after removing invisible characters / 标题为空")
    songs = generator.generate([cleaned])[0]
    if as_json:
        return json.dumps(playlist_record(cleaned, songs), ensure_ascii=False)
    return format_playlist(cleaned, songs)

