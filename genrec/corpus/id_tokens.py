"""Semantic IDs as T5 tokens: the one mapping between songs and token sequences every stage shares.

A song with codes (12, 3, 200) becomes the tokens ``<a_12><b_3><c_200>``: the letter is the level, since
code 12 means different things at different levels (one token per code shared by all levels, the original's
``<id_12>``, lost on validation: docs/experiments/).

Collisions (songs whose code tuples are equal), by ``collision_strategy``:
- ``suffix``: every song gets one more token, its rank inside its group (``<d_0>``, ``<d_1>``, ...),
  so every song has its own ID of fixed length levels + 1 (as in TIGER).
- ``cluster``: songs keep the shared tuple; an ID then stands for a cluster of songs, and the
  generator picks among them (the original's "cluster expansion").

Saved as ``semantic_id_vocab.json``: ``{"levels", "vocab_size", "collision_strategy",
"songs": {song_id: [token, ...]}}``; the song order inside a collision group is the order of the
semantic-ID file, so the mapping is deterministic.
"""

from __future__ import annotations

import json
import re
import string
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from genrec.artifacts import write_json
from genrec.errors import ArtifactError

VOCAB_FILE = "semantic_id_vocab.json"
TOKEN_PATTERN = re.compile(r"<[a-z]+_\d+>")


def code_token(level: int, code: int) -> str:
    return f"<{string.ascii_lowercase[level]}_{code}>"


@dataclass
class SemanticIdVocab:
    levels: int
    vocab_size: int
    collision_strategy: str
    songs: dict[str, tuple[str, ...]]
    by_tokens: dict[tuple[str, ...], list[str]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.songs = {song: tuple(tokens) for song, tokens in self.songs.items()}
        groups: dict[tuple[str, ...], list[str]] = defaultdict(list)
        for song, tokens in self.songs.items():
            groups[tokens].append(song)
        self.by_tokens = dict(groups)

    @classmethod
    def build(cls, song_ids: list[str], codes: np.ndarray, vocab_size: int,
              collision_strategy: str) -> "SemanticIdVocab":
        levels = codes.shape[1]
        rank_in_group: dict[tuple[int, ...], int] = defaultdict(int)
        songs = {}
        for song, row in zip(song_ids, map(tuple, codes.tolist())):
            tokens = [code_token(level, code) for level, code in enumerate(row)]
            if collision_strategy == "suffix":
                tokens.append(code_token(levels, rank_in_group[row]))
                rank_in_group[row] += 1
            songs[song] = tuple(tokens)
        return cls(levels, vocab_size, collision_strategy, songs)

    @property
    def id_length(self) -> int:
        """Tokens per song ID."""
        return self.levels + (1 if self.collision_strategy == "suffix" else 0)

    def all_tokens(self) -> list[str]:
        """Every token any ID uses, in a stable order (to add to a tokenizer)."""
        seen = dict.fromkeys(token for tokens in sorted(self.by_tokens) for token in tokens)
        return sorted(seen, key=lambda t: (t.split("_")[0], int(t[:-1].split("_")[1])))

    def target_string(self, song_ids: list[str]) -> str:
        return "".join("".join(self.songs[s]) for s in song_ids)

    def parse(self, text: str) -> list[tuple[str, ...]]:
        """Split generated text into whole IDs (a trailing partial ID is dropped)."""
        tokens = TOKEN_PATTERN.findall(text)
        n = self.id_length
        return [tuple(tokens[i:i + n]) for i in range(0, len(tokens) - n + 1, n)]

    def songs_of(self, tokens: tuple[str, ...]) -> list[str]:
        """Songs behind an ID: one with suffixes, the whole cluster without; empty if invalid."""
        return self.by_tokens.get(tuple(tokens), [])

    def largest_group(self) -> int:
        return max(map(len, self.by_tokens.values()))

    def save(self, path: str | Path) -> None:
        write_json(path, {"levels": self.levels, "vocab_size": self.vocab_size,
                          "collision_strategy": self.collision_strategy,
                          "songs": {song: list(tokens) for song, tokens in self.songs.items()}})

    @classmethod
    def load(cls, path: str | Path) -> "SemanticIdVocab":
        path = Path(path)
        if not path.exists():
            raise ArtifactError(f"{path} does not exist: run prepare_corpus.py first")
        payload = json.loads(path.read_text(encoding="utf-8"))
        return cls(payload["levels"], payload["vocab_size"], payload["collision_strategy"], payload["songs"])
