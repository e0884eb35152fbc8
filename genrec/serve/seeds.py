"""Seed songs for the generator: a title plus songs the listener has in, the rest of the playlist out.

- :class:`SeedResolver` turns what a listener types into song ids: a song id of the catalogue, or "song - artist"
  matched exactly or case- and accent-folded ("Dont Stop Me Now - queen" finds "Don't Stop Me Now - Queen" only if
  the folded texts are equal: folding drops case and accents, not punctuation). An unknown seed, or text that
  names several songs, is a GenrecError naming it.
- :class:`SeededRanking` ranks a playlist's continuation as the continuation evaluation did
  (genrec.evaluate.continuation): the co-occurrence walk from the seeds mixed with the title's retrieved list
  (``seed_walk``), or that fused with the model's ranking (``seed_hybrid``), with the parameters the evaluation
  tuned for the nearest seed count, which export_bundle.py records in serving.json (``seeded``). A bundle
  without that record serves the walk with :data:`DEFAULT_SEEDED`.
The seeds themselves are never recommended (the generator excludes them).
"""

from __future__ import annotations

import unicodedata
from collections import defaultdict
from typing import Callable, Sequence

from genrec.errors import GenrecError
from genrec.evaluate.baselines import PopularityBaseline, TitleKNN, fused_scores
from genrec.evaluate.continuation import (WALK_SONGS, Cases, Category, ItemCooccurrence, PlaylistNeighbours, SeededWalk,
                                          TitleScores, nearest_mix, top_songs)
from genrec.model.retrieval import SEEDED_MIX
from genrec.train.neighbour_targets import CooccurrenceWalk

SEED_WALK, SEED_HYBRID = "seed_walk", "seed_hybrid"
DEFAULT_SEEDED = {"system": SEED_WALK, "by_seeds": [{"seeds": 1, "title": True, **SEEDED_MIX, "weight": 0.0,
                                                      "c": 60.0}]}
"""What a bundle without a continuation evaluation serves: the seeds' walk, the title's list at a quarter share."""


def split_seeds(text: str) -> list[str]:
    """Seeds typed on one line, separated by ';' (the prompt's ``TITLE | SONG; SONG``, the script's --seeds)."""
    return [seed.strip() for seed in text.split(";") if seed.strip()]


def fold_song_text(text: str) -> str:
    """Case, accents and spacing folded: "  Beyoncé  -  HALO " and "beyonce - halo" are equal."""
    decomposed = unicodedata.normalize("NFKD", text)
    bare = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(bare.casefold().split())


class SeedResolver:
    """Seeds as typed (song ids or "song - artist") -> catalogue song ids, or a one-line GenrecError."""

    def __init__(self, names: dict[str, str], artists: dict[str, str]):
        self.names = names
        self.exact: dict[str, list[str]] = defaultdict(list)
        self.folded: dict[str, list[str]] = defaultdict(list)
        for song, name in names.items():
            if not name:
                continue
            text = f"{name} - {artists.get(song, '')}" if artists.get(song) else name
            self.exact[" ".join(text.split())].append(song)
            self.folded[fold_song_text(text)].append(song)

    def resolve(self, seeds: Sequence[str]) -> list[str]:
        if isinstance(seeds, str) or not all(isinstance(seed, str) for seed in seeds):
            raise GenrecError("seeds must be a list of song ids or 'song - artist' texts (strings)")
        out = []
        for seed in seeds:
            song = self.one(seed)
            if song not in out:
                out.append(song)
        return out

    def one(self, seed: str) -> str:
        text = " ".join(seed.split())
        if text in self.names:
            return text
        found = self.exact.get(text) or self.folded.get(fold_song_text(text), [])
        if len(found) == 1:
            return found[0]
        if found:
            raise GenrecError(f"seed {seed!r} names {len(found)} songs of the catalogue ({', '.join(found[:3])}): "
                              "give one of their song ids")
        raise GenrecError(f"seed {seed!r} is not a song of this model's catalogue: give a song id or "
                          "'song - artist' as the song list shows it")


class SeededRanking:
    """A title's (possibly '') continuation of the seeds: the seeded walk, or its hybrid with the model's ranking."""

    def __init__(self, knn: TitleKNN, popularity: PopularityBaseline, title_scores: TitleScores, seeded: dict | None):
        self.seeded = seeded or DEFAULT_SEEDED
        self.system = self.seeded["system"]
        cooccurrence = ItemCooccurrence(knn)
        self.walk = SeededWalk(CooccurrenceWalk(knn), title_scores, cooccurrence, PlaylistNeighbours(cooccurrence))
        self.popularity = popularity

    def parameters(self, seeds: int, titled: bool) -> dict:
        """The tuned parameters of the evaluated category nearest this request: same title use, nearest seed count
        (first-songs categories before random ones)."""
        return nearest_mix(self.seeded["by_seeds"], seeds, titled)

    def rank(self, titles: Sequence[str], seeds: list[str], n: int,
             model_ranked: Callable[[list[str], int], list[list[tuple[str, float]]]]) -> list[list[tuple[str, float]]]:
        """Per title: (song, score), best first, at most ``n`` songs after the seeds are left out."""
        cases = Cases(Category("served", len(seeds)), list(range(len(titles))), list(titles),
                      [seeds] * len(titles), [[] for _ in titles])
        given = set(seeds)
        out = []
        model = {}
        if self.system == SEED_HYBRID and any(titles):
            read = [t for t in titles if t]
            model = dict(zip(read, model_ranked(read, n + len(seeds))))
        for title, part in zip(titles, self.walk.parts(cases)):
            p = self.parameters(len(seeds), bool(title))
            scores = SeededWalk.mixed(part, p, self.popularity.counts)
            walk = [s for s in top_songs(scores, self.popularity.rank, WALK_SONGS) if s not in given]
            if title in model:
                ranked = fused_scores([s for s, _ in model[title] if s not in given], walk, p["weight"], p["c"])
            else:
                ranked = [(s, scores[s]) for s in walk]
            out.append(ranked[:n])
        return out
