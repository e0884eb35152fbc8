"""Titles to playlists from a model bundle: the Python API behind the generator script, the REPL and the benches.

    from genrec import PlaylistGenerator
    generator = PlaylistGenerator.load("models/bundle")
    playlist = generator.generate("late night drive", num_songs=20, max_per_artist=2)
    for song in playlist.songs:
        print(song.name, song.artist, song.score, song.system)

The bundle (genrec.serve.bundle) is loaded once; each call answers a batch of titles with one decoding call.
Systems (``system=``; the bundle's default is the best on the validation split):

- ``model``: the T5's trie-constrained beam search (or sampling); a song's score is the probability of its ID
  given the title (sequence mode: 1 / its position).
- ``hybrid``: the model's ranking fused with title kNN's or the retrieved list, as evaluate_tiger.py tuned it;
  score: the fused reciprocal-rank score.
- ``retrieved`` (retrieval models): title kNN's list after the co-occurrence walk, the list the model copies from;
  score: its walked vote.
- ``knn``: title kNN with the parameters tuned on validation; score: its neighbours' summed vote.
- with ``seeds`` (and no ``system``): ``seed_walk`` or ``seed_hybrid``, whichever evaluate_continuation.py measured
  best (genrec.serve.seeds); the seeds themselves are never in the playlist. A model trained with seeds
  (``targets.seeded_share``) reads them wherever its ranking is used (``model``, ``hybrid``, ``seed_hybrid``).

Every playlist holds exactly ``num_songs`` distinct songs when the catalogue has that many after ``exclude`` and
``max_per_artist``: when a system's own list runs short, the rest comes from a fallback (the retrieved list or
title kNN for the model, then the most popular songs), and each song says which system placed it. A title that
resembles no training title is answered with the most popular songs and a note saying so.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections import Counter
from dataclasses import asdict, dataclass, fields, replace
from functools import cached_property
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import torch

from genrec.decode import decoding
from genrec.decode.decoding import DecodingSettings
from genrec.artifacts import atomic_path
from genrec.errors import DataError, GenrecError
from genrec.evaluate.baselines import KnnParams, TitleKNN, filled, fused_scores
from genrec.model.loaded import resolve_device
from genrec.serve import inference
from genrec.serve.bundle import ENCODER, MODEL, BundleFiles, find_bundle, read_bundle
from genrec.serve.seeds import SEED_HYBRID, SEED_WALK, SeededRanking, SeedResolver
from genrec.text import clean_title

MAX_SONGS = 1000
"""The most songs one playlist may ask for (a bound on work per request, far above any playlist's length)."""
MAX_TITLE_CHARACTERS = 500
MIN_TITLE_SIMILARITY = 0.1
"""Below this TF-IDF similarity to every training title (shared words or character n-grams), a title is one the
model cannot read: it is answered with the most popular songs and a note."""
POPULARITY = "popularity"


@dataclass
class Song:
    song_id: str
    name: str
    artist: str
    score: float
    system: str
    """The system that placed this song: the one asked, or a fallback that filled the list (``popularity``...)."""
    cluster_size: int = 1
    """Songs sharing this song's semantic ID (collision_strategy cluster shows one of them)."""


@dataclass
class Playlist:
    title: str
    songs: list[Song]
    system: str
    note: str = ""
    """Why the playlist is not what the system alone would give (an unreadable title), else empty."""

    def to_dict(self) -> dict:
        return {"title": self.title, "system": self.system, **({"note": self.note} if self.note else {}),
                "songs": [asdict(song) for song in self.songs]}


@dataclass(frozen=True)
class GenerateOptions:
    """What a caller may choose per request; :meth:`PlaylistGenerator.generate` takes each as a keyword."""

    num_songs: int = 20
    system: str = ""
    """'' serves the bundle's default (the best system on validation)."""
    exclude: tuple[str, ...] = ()
    """Song ids never to recommend (songs the listener already has, or skipped)."""
    max_per_artist: int = 0
    """At most this many songs by one artist (0: no cap)."""
    sample: bool = False
    """Sample the model's songs instead of beam search: another seed, another playlist."""
    temperature: float = 1.0
    top_p: float = 1.0
    num_beams: int = 50
    seed: int = 0
    seeds: tuple[str, ...] = ()
    """Songs the playlist starts with, by song id or "song - artist" (genrec.serve.seeds): the playlist continues
    them (the bundle's best seeded system, unless ``system`` names another) and never repeats them."""


def check_options(options: GenerateOptions, systems: Sequence[str]) -> GenerateOptions:
    """The options with exclude as a tuple of strings, or a one-line GenrecError naming the bad one."""
    def whole(name: str, value, low: int, high: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise GenrecError(f"{name} must be a whole number from {low} to {high} (got {value!r})")

    whole("num_songs", options.num_songs, 1, MAX_SONGS)
    whole("max_per_artist", options.max_per_artist, 0, MAX_SONGS)
    whole("num_beams", options.num_beams, 1, MAX_SONGS)
    whole("seed", options.seed, 0, 2 ** 63 - 1)
    for name, low, high in (("temperature", 0.0, 10.0), ("top_p", 0.0, 1.0)):
        value = getattr(options, name)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not low < value <= high:
            raise GenrecError(f"{name} must be a number above {low:g} and at most {high:g} (got {value!r})")
    if options.system and options.system not in systems:
        raise GenrecError(f"unknown system {options.system!r}: this bundle serves {', '.join(systems)}")
    exclude = (options.exclude,) if isinstance(options.exclude, str) else tuple(options.exclude or ())
    if not all(isinstance(song, str) for song in exclude):
        raise GenrecError("exclude must be a list of song ids (strings)")
    seeds = (options.seeds,) if isinstance(options.seeds, str) else tuple(options.seeds or ())
    return replace(options, exclude=exclude, seeds=seeds, sample=bool(options.sample))


def clean_titles(titles: Sequence[str]) -> list[str]:
    """Titles as the generator reads them (genrec.text.clean_title), or a GenrecError naming the bad one."""
    if isinstance(titles, str) or not isinstance(titles, Sequence):
        raise GenrecError("titles must be a list of strings")
    out = []
    for i, title in enumerate(titles, start=1):
        where = f"title {i}" if len(titles) > 1 else "the title"
        if not isinstance(title, str):
            raise GenrecError(f"{where} is not text (got {type(title).__name__})")
        cleaned = clean_title(title)
        if not cleaned:
            raise GenrecError(f"{where} is empty after removing invisible characters / 标题为空")
        if len(cleaned) > MAX_TITLE_CHARACTERS:
            raise GenrecError(f"{where} is {len(cleaned)} characters long; at most {MAX_TITLE_CHARACTERS} / 标题过长")
        out.append(cleaned)
    return out


Scored = list[tuple[str, float]]


class PlaylistGenerator:
    """A loaded bundle that turns titles into playlists (see the module docstring)."""

    def __init__(self, files: BundleFiles, device: str = "cpu"):
        serving = files.serving
        self.folder = files.folder
        self.systems: tuple[str, ...] = tuple(serving["systems"])
        self.default_system: str = serving["default_system"]
        self.serving = serving
        encoder = files.folder / ENCODER
        encoder = encoder if encoder.is_dir() else None
        device = resolve_device(device)
        # Plain torch where it covers the model (most of a one-shot run's time is importing transformers).
        self.tiger = inference.load_inference(files.folder / MODEL, encoder) if device == "cpu" else None
        self.decode = inference.decode
        if self.tiger is None:
            from genrec.model.t5 import load_tiger

            self.tiger = load_tiger(files.folder / MODEL, device, check_corpus=False, title_encoder=encoder)
            self.decode = decoding.decode
        songs = files.songs
        self.names = dict(zip(songs["ids"], songs["names"]))
        self.artists = dict(zip(songs["ids"], songs["artists"]))
        retriever = self.tiger.retriever
        if retriever is not None and files.playlists is None:
            fitted = retriever.knn  # the same training playlists: share its fitted matrices
        else:
            fitted = TitleKNN().fit(files.playlists.titles, files.playlists.songs)
        self.knn = fitted.with_params(KnnParams(**serving["title_knn"]))
        self.popularity = fitted.popularity
        self.playlist_count = fitted.members.shape[0]
        decode_defaults = {f.name: serving["decode"][f.name] for f in fields(GenerateOptions)
                           if f.name in serving["decode"]}
        self.batch_size = int(serving["decode"].get("batch_size", 16))
        self.options = check_options(GenerateOptions(**decode_defaults), self.systems)

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu") -> "PlaylistGenerator":
        """Load the bundle in ``path`` (a bundle folder, or a model folder holding ``bundle/``)."""
        return cls(read_bundle(find_bundle(path)), device)

    def generate(self, title: str, **options) -> Playlist:
        """One playlist; ``options`` are :class:`GenerateOptions` fields (num_songs, system, exclude, ...)."""
        return self.generate_batch([title], **options)[0]

    def generate_batch(self, titles: Sequence[str], progress: bool = False, **options) -> list[Playlist]:
        """One playlist per title, decoded in batches; the same options and seed always give the same playlists."""
        unknown = options.keys() - {f.name for f in fields(GenerateOptions)}
        if unknown:
            raise GenrecError(f"unknown option {sorted(unknown)[0]!r}; options: "
                              + ", ".join(f.name for f in fields(GenerateOptions)))
        opts = check_options(replace(self.options, **options), self.systems)
        cleaned = clean_titles(titles)
        excluded = set(opts.exclude)
        unknown_songs = sorted(excluded - self.names.keys())
        if unknown_songs:
            raise GenrecError(f"exclude: {unknown_songs[0]!r} is not a song of this model's catalogue "
                              f"({len(unknown_songs)} unknown id(s))")
        seeds = self.seed_resolver.resolve(opts.seeds) if opts.seeds else []
        excluded.update(seeds)  # a playlist never hands the listener's own songs back
        system = opts.system or (self.seeded.system if seeds else self.default_system)
        folded = self.tiger.model_titles(cleaned)
        readable = self.knn.best_similarity(folded) >= MIN_TITLE_SIMILARITY
        read = [t for t, ok in zip(folded, readable) if ok]
        # Enough candidates that exclusions and the artist cap rarely leave the system's own list short.
        want = min(len(self.names), opts.num_songs + len(excluded) + (2 * opts.num_songs if opts.max_per_artist else 0))
        if system in (SEED_WALK, SEED_HYBRID):  # the seeds carry an unreadable title's playlist
            read, readable = [t if ok else "" for t, ok in zip(folded, readable)], [True] * len(cleaned)
            ranked = iter([(system, r)] for r in self.seeded.rank(
                read, seeds, want, lambda titles, n: self.model_ranked(titles, n, opts, progress, seeds)))
        else:
            ranked = iter(self.ranked(system, read, want, opts, progress, seeds))
        playlists = []
        for title, ok in zip(cleaned, readable):
            if ok:
                streams = [*next(ranked), (POPULARITY, self.popular())]
                note = ""
            else:
                streams = [(POPULARITY, self.popular())]
                note = ("no training title resembles this one, so the model cannot read it: showing the most "
                        "popular songs / 无法理解该标题，显示最热门的歌曲")
            songs = assemble(streams, opts.num_songs, excluded, opts.max_per_artist, self.artists)
            playlists.append(Playlist(title, [self.song(s, score, by) for s, score, by in songs], system, note))
        return playlists

    def ranked(self, system: str, titles: list[str], n: int, opts: GenerateOptions,
               progress: bool = False, seeds: list[str] | None = None) -> list[list[tuple[str, Scored]]]:
        """Per title, the system's scored list then its fallback's: [(system, [(song, score), ...]), ...]; the model
        reads ``seeds`` when it was trained to."""
        if not titles:
            return []
        if system == "knn":
            return [[("knn", r)] for r in self.knn.scored(titles, n)]
        partner_name = "retrieved" if self.tiger.retriever is not None else "knn"
        if system == "retrieved":
            return [[("retrieved", r)] for r in self.partner("retrieved", titles, n)]
        if system == "model":
            model = self.model_ranked(titles, n, opts, progress, seeds)
            return [[("model", m), (partner_name, p)] for m, p in zip(model, self.partner(partner_name, titles, n))]
        # The hybrid fuses lists as deep as the evaluation's, so its top songs are the ones evaluated.
        depth = max(n, int(self.serving.get("fusion_depth", n)))
        fusion = self.serving["fusion"]
        partner = self.partner("retrieved" if fusion["partner"] == "retrieved" else "knn", titles, depth)
        # Filled with the most popular songs to the same depth, as the evaluation's partner lists are.
        partner = filled([[s for s, _ in p] for p in partner], self.popularity.ranking[:depth], depth)
        model = self.model_ranked(titles, depth, opts, progress, seeds)
        return [[("hybrid", fused_scores([s for s, _ in m], p, fusion["weight"], fusion["c"])[:n])]
                for m, p in zip(model, partner)]

    @cached_property
    def seed_resolver(self) -> SeedResolver:
        return SeedResolver(self.names, self.artists)

    @cached_property
    def seeded(self) -> SeededRanking:
        """The seeded system export_bundle.py recorded (serving.json ``seeded``), built on the first seeded request."""
        title_scores = self.tiger.retriever.scored if self.tiger.retriever is not None else self.knn.scored
        return SeededRanking(self.knn, self.popularity, title_scores, self.serving.get("seeded"))

    def partner(self, name: str, titles: list[str], n: int) -> list[Scored]:
        if name == "retrieved":
            return self.tiger.retriever.scored(titles, n)
        return self.knn.scored(titles, n)

    def model_ranked(self, titles: list[str], n: int, opts: GenerateOptions, progress: bool,
                     seeds: list[str] | None = None) -> list[Scored]:
        """The model's songs, scored by their ID's probability (sequence mode: 1 / position), never a seed; a model
        trained with seeds reads them."""
        # Sampling draws songs independently, so some repeat: draw more than needed.
        settings = DecodingSettings(num_beams=max(opts.num_beams, n), sample=opts.sample,
                                    temperature=opts.temperature, top_p=opts.top_p, batch_size=self.batch_size,
                                    num_songs=min(2 * n if opts.sample else n, len(self.tiger.vocab.by_tokens)))
        torch.manual_seed(opts.seed)
        rng = random.Random(opts.seed) if opts.sample else None
        popularity = self.popularity.counts if self.tiger.vocab.collision_strategy == "cluster" else None
        decoded = self.decode(self.tiger, titles, settings, constrained=True, popularity=popularity,
                              progress=progress, rng=rng, seeds=[seeds] * len(titles) if seeds else None)
        single = self.tiger.target_mode == "single"
        return [[(song, math.exp(score) if single else 1.0 / rank) for rank, (song, score) in enumerate(d.songs, 1)]
                for d in decoded]

    def popular(self) -> Iterator[tuple[str, float]]:
        """The most popular training songs (score: the share of training playlists holding them), then the rest
        of the catalogue (score 0)."""
        counts = self.popularity.counts
        for song in self.popularity.ranking:
            yield song, counts[song] / self.playlist_count
        for song in self.names:
            if song not in counts:
                yield song, 0.0

    def song(self, song_id: str, score: float, system: str) -> Song:
        vocab = self.tiger.vocab
        return Song(song_id, self.names.get(song_id, ""), self.artists.get(song_id, ""), float(score), system,
                    len(vocab.songs_of(vocab.songs[song_id])) if song_id in vocab.songs else 1)


def assemble(streams: Iterable[tuple[str, Iterable[tuple[str, float]]]], n: int, exclude: set[str],
             max_per_artist: int, artists: dict[str, str]) -> list[tuple[str, float, str]]:
    """The first ``n`` songs over the streams in order: no repeats, none excluded, at most ``max_per_artist`` per
    artist (songs without a known artist are not capped); each as (song, score, the stream's system)."""
    taken: set[str] = set()
    per_artist: Counter = Counter()
    out = []
    for system, ranked in streams:
        for song, score in ranked:
            if song in taken or song in exclude:
                continue
            artist = artists.get(song, "")
            if max_per_artist and artist:
                if per_artist[artist] >= max_per_artist:
                    continue
                per_artist[artist] += 1
            taken.add(song)
            out.append((song, score, system))
            if len(out) == n:
                return out
    return out


def format_playlist(playlist: Playlist) -> str:
    """The title, a line naming the system (and the note, if any), then one numbered line per song with its score
    (and the fallback that placed it, when not the system asked)."""
    lines = [playlist.title, f"  ({playlist.system}{'; ' + playlist.note if playlist.note else ''})"]
    if not playlist.songs:
        return "\n".join(lines + ["  no songs / 没有生成歌曲"])
    for rank, song in enumerate(playlist.songs, start=1):
        label = f"{song.name} - {song.artist}" if song.name and song.artist else song.name or song.song_id
        extra = f" (1 of {song.cluster_size} songs sharing this ID)" if song.cluster_size > 1 else ""
        by = f", {song.system}" if song.system != playlist.system else ""
        lines.append(f"{rank:3d}. {label}{extra}  ({song.score:.4g}{by})")
    return "\n".join(lines)


def read_titles(path: str) -> list[str]:
    """Non-empty lines of a UTF-8 text file (BOM allowed); blank lines are skipped."""
    file = Path(path)
    if not file.is_file():
        raise DataError(file, "titles file not found" if not file.exists() else "not a file")
    try:
        lines = file.read_text(encoding="utf-8-sig").splitlines()
    except UnicodeDecodeError as err:
        raise DataError(file, f"not UTF-8 text (byte {err.start})") from None
    titles = [clean_title(line) for line in lines]
    numbered = [(number, t) for number, t in enumerate(titles, start=1) if t]
    if not numbered:
        raise DataError(file, "no titles in the file (one title per line)")
    for number, title in numbered:
        if len(title) > MAX_TITLE_CHARACTERS:
            raise DataError(file, f"the title is {len(title)} characters long; at most {MAX_TITLE_CHARACTERS}",
                            line=number)
    return [t for _, t in numbered]


def generate_file(generator: PlaylistGenerator, input_path: str, output_path: str,
                  fmt: str = "jsonl") -> tuple[int, float]:
    """Batch mode: every title of ``input_path`` to one JSON line of ``output_path`` (``fmt`` jsonl), or to one
    file per title in the folder ``output_path`` (jspf, m3u8, csv: ``001-<title>.<fmt>``), written atomically;
    returns the number of titles and the seconds the generation took."""
    from genrec.serve.exports import FORMATS, export

    if fmt != "jsonl" and fmt not in FORMATS:
        raise GenrecError(f"unknown format {fmt!r}: jsonl (one file) or one of {', '.join(FORMATS)} (one file each)")
    titles = read_titles(input_path)
    start = time.perf_counter()
    playlists = generator.generate_batch(titles, progress=True)
    seconds = time.perf_counter() - start
    if fmt == "jsonl":
        with atomic_path(output_path) as tmp, open(tmp, "w", encoding="utf-8") as out:
            for playlist in playlists:
                out.write(json.dumps(playlist.to_dict(), ensure_ascii=False) + "\n")
    else:
        if Path(output_path).is_file():
            raise GenrecError(f"{output_path} is a file; with --format {fmt} --output names a folder (one file a title)")
        with atomic_path(output_path) as tmp:
            tmp.mkdir()
            for number, playlist in enumerate(playlists, start=1):
                (tmp / f"{number:03d}-{file_stem(playlist.title)}.{fmt}").write_text(export(playlist, fmt),
                                                                                      encoding="utf-8")
    return len(titles), seconds


def file_stem(title: str, limit: int = 60) -> str:
    """A title as a file name part: letters, digits (any script) and dashes."""
    stem = "-".join("".join(ch if ch.isalnum() else " " for ch in title).split())
    return stem[:limit] or "playlist"


def one_title(generator: PlaylistGenerator, title: str, as_json: bool) -> str:
    playlist = generator.generate(title)
    return json.dumps(playlist.to_dict(), ensure_ascii=False) if as_json else format_playlist(playlist)
