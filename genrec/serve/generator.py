"""Stage 5: titles to playlists with the trained model, for the prompt, one title, or a file of titles.

The generator loads the model, the semantic-ID vocabulary and the song info once (seconds), then
answers each title with one batched decoding call. With ``collision_strategy=cluster`` an ID names a
cluster of songs; the generator shows one of them (genrec.decode.decoding.expand_ids, as the evaluation
scores it) and says how many the cluster holds. With ``hybrid`` on, the model's ranking is fused
with title kNN's, or with the list a retrieval model reads, exactly as evaluate_tiger.py tuned it.
"""

from __future__ import annotations

import json
import logging
import random
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch

from config import Config

from genrec.artifacts import atomic_path
from genrec.evaluate.baselines import Hybrid, PopularityBaseline, TrainingPlaylists, load_hybrid
from genrec.corpus.build import corpus_path, read_corpus
from genrec.data.files import load_song_info
from genrec.errors import DataError, GenrecError
from genrec.decode.decoding import DecodingSettings, decode
from genrec.model.t5 import load_tiger, resolve_device, tiger_final_dir
from genrec.text import clean_title

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
    """What the prompt's commands change between titles: the decoding settings, the seed and the system."""

    decoding: DecodingSettings
    seed: int
    system: str

    @classmethod
    def from_config(cls, cfg: Config) -> "GenerateOptions":
        return cls(DecodingSettings.from_config(cfg.decode, cfg.generate.num_songs), cfg.run.seed,
                   cfg.generate.system)


class PlaylistGenerator:
    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.bundle = load_tiger(tiger_final_dir(cfg), resolve_device(cfg.run.device))
        self.info = load_song_info(cfg.data)
        self.options = GenerateOptions.from_config(cfg)
        self._training: TrainingPlaylists | None = None
        self._hybrid: Hybrid | None = None
        log.info("model %s loaded (%s mode, %d songs)", tiger_final_dir(cfg), self.bundle.target_mode,
                 len(self.bundle.vocab.songs))

    def training(self) -> TrainingPlaylists:
        """Training playlists, read once and only when needed (cluster popularity, the hybrid's kNN)."""
        if self._training is None:
            self._training = TrainingPlaylists.from_corpus(read_corpus(corpus_path(self.cfg, "train")))
        return self._training

    def hybrid(self) -> Hybrid:
        if self._hybrid is None:
            retriever = self.bundle.retriever
            self._hybrid = load_hybrid(self.cfg, self.training, retriever.rank if retriever else None)
        return self._hybrid

    def generate(self, titles: list[str], progress: bool = False) -> list[list[Song]]:
        """One playlist per title; the same options and seed always give the same playlists."""
        cleaned = self.bundle.model_titles([clean_title(t) for t in titles])
        torch.manual_seed(self.options.seed)
        vocab = self.bundle.vocab
        popularity = None
        if vocab.collision_strategy == "cluster":
            popularity = PopularityBaseline(self.training().songs).counts
        settings = self.options.decoding
        rng = random.Random(self.options.seed) if settings.sample else None
        decoded = decode(self.bundle, cleaned, settings, constrained=True, popularity=popularity,
                         progress=progress, rng=rng)
        rankings = [d.songs for d in decoded]
        if self.options.system == "hybrid":
            fused = self.hybrid().rank(cleaned, [[song for song, _ in r] for r in rankings], settings.num_songs)
            rankings = [[(song, 0.0) for song in songs] for songs in fused]
        return [[self._song(song, score) for song, score in ranking] for ranking in rankings]

    def _song(self, song_id: str, score: float) -> Song:
        cluster_size = len(self.bundle.vocab.songs_of(self.bundle.vocab.songs[song_id]))
        return Song(song_id, self.info.names.get(song_id, ""), self.info.singers.get(song_id, ""), score,
                    cluster_size)


def as_evaluated(cfg: Config) -> Config:
    """``cfg`` with the generator decoding as evaluate_tiger.py's model system does: the model's own ranking
    (generate.system model) and eval.num_songs songs, so a bench can compare with its figures."""
    return replace(cfg, generate=replace(cfg.generate, num_songs=cfg.eval.num_songs, system="model"))


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

