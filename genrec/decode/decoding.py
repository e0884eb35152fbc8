"""Decoding titles into songs with a trained TIGER model: shared by the evaluation and the generator.

Single mode (one ID per example): beam search with ``num_beams >= num_songs`` returns ``num_songs``
sequences of one ID each, ranked by sequence score; under the trie every one is a real song and the
beams are distinct token sequences, so the songs are distinct (suffix IDs) by construction.
Sequence mode: one long sequence per title, the trie resetting at each song boundary and banning
songs already generated; songs are ranked by their position.

With ``collision_strategy=cluster`` an ID names a group of songs; :func:`expand_ids` picks one song
per ID (the original's cluster expansion): the one most popular in training under beam search or
greedy decoding, a popularity-weighted draw from a seeded ``rng`` when sampling. The evaluation and
the generator both use it, so song-level metrics score what the generator shows.
"""

from __future__ import annotations

import logging
import random
from dataclasses import asdict, dataclass, field, replace
from typing import Sequence

import torch
from tqdm import tqdm

from config import DecodeConfig

from genrec.decode.constrained import IdTrie, TrieLogitsProcessor
from genrec.corpus.id_tokens import SemanticIdVocab
from genrec.model.seed_songs import seed_tensor

log = logging.getLogger(__name__)


@dataclass
class DecodingSettings(DecodeConfig):
    """How titles are decoded: the ``decode`` group and the number of songs asked.

    Single mode: beam search (num_beams, raised to num_songs) or sampling. Sequence mode: greedy or sampled
    whole playlists, with </s> allowed only after num_songs songs and never a song twice.
    """

    num_songs: int = 20

    @classmethod
    def from_config(cls, decode: DecodeConfig, num_songs: int) -> "DecodingSettings":
        return cls(**{**asdict(decode), "num_beams": max(decode.num_beams, num_songs)}, num_songs=num_songs)


@dataclass
class Decoded:
    """One title's decoding: the ranked songs, and what the raw output held."""

    songs: list[tuple[str, float]]
    ids: list[tuple[str, ...]] = field(default_factory=list)
    """Every generated ID, in rank order, valid or not, repeats included."""
    invalid: int = 0
    """Generated IDs (or trailing partial IDs) that name no song."""
    duplicates: int = 0
    """Valid IDs that repeat an earlier one of the same title."""
    partial: int = 0
    """Outputs that ended inside an ID (counted in ``invalid`` too)."""

    @property
    def generated(self) -> int:
        """Everything the model emitted, counted in IDs (a trailing partial ID counts as one)."""
        return len(self.ids) + self.partial


def build_trie(bundle) -> IdTrie:
    """The trie for a loaded model, cached on the bundle (building it walks the whole vocabulary once)."""
    trie = getattr(bundle, "_id_trie", None)
    if trie is None:
        trie = IdTrie.from_vocab(bundle.vocab, bundle.tokenizer)
        bundle._id_trie = trie
    return trie


def seed_input(bundle, seeds: Sequence[Sequence[str]] | None) -> tuple[torch.Tensor | None, int]:
    """What a batch's seed songs change in its decoding: the seeds' tensor for a model that reads them
    (genrec.model.seed_songs; None for one that does not, or without seeds), and how many more songs to decode,
    so that the list is still full once the seeds are left out of it."""
    if not seeds or not any(seeds):
        return None, 0
    extra = max(len(set(songs)) for songs in seeds)
    if not getattr(bundle, "seed_songs", 0):
        return None, extra
    return seed_tensor(seeds, bundle.seed_token_ids, bundle.vocab.id_length, bundle.tokenizer.pad_token_id), extra


def recommend(bundle, titles: Sequence[str], num_songs: int, settings: DecodingSettings | None = None,
              constrained: bool = True, popularity: dict[str, int] | None = None,
              progress: bool = False) -> list[list[tuple[str, float]]]:
    """Ranked (song_id, score) lists, one per title; ``popularity`` orders cluster members."""
    settings = settings or DecodingSettings()
    settings = replace(settings, num_songs=num_songs)
    return [d.songs for d in decode(bundle, titles, settings, constrained, popularity, progress)]


def decode(bundle, titles: Sequence[str], settings: DecodingSettings, constrained: bool = True,
           popularity: dict[str, int] | None = None, progress: bool = False,
           rng: random.Random | None = None, seeds: Sequence[Sequence[str]] | None = None) -> list[Decoded]:
    """Decode every title in batches; see the module docstring for the two target modes. ``seeds``: per title, the
    songs its playlist starts with, which a model that reads seeds reads, and which are never among its songs."""
    results: list[Decoded] = []
    batches = range(0, len(titles), settings.batch_size)
    for start in tqdm(batches, desc="decoding", unit="batch", disable=not progress):
        batch = list(titles[start:start + settings.batch_size])
        batch_seeds = list(seeds[start:start + settings.batch_size]) if seeds is not None else None
        results.extend(_decode_batch(bundle, batch, settings, constrained, popularity, rng, batch_seeds))
    return results


def _decode_batch(bundle, titles: list[str], settings: DecodingSettings, constrained: bool,
                  popularity: dict[str, int] | None, rng: random.Random | None,
                  seeds: list[Sequence[str]] | None = None) -> list[Decoded]:
    from transformers import LogitsProcessorList  # here, so the generator's plain-torch path never imports it

    from genrec.model.t5 import title_inputs

    model, tokenizer, vocab = bundle.model, bundle.tokenizer, bundle.vocab
    single = bundle.target_mode == "single"
    id_length = vocab.id_length
    num_songs = min(settings.num_songs, len(vocab.by_tokens)) if single else settings.num_songs
    seed_ids, extra = seed_input(bundle, seeds)
    asked = min(num_songs + extra, len(vocab.by_tokens)) if single else num_songs + extra
    encoded = title_inputs(model, tokenizer, titles, bundle.max_input_length, bundle.title_encoder, bundle.retriever,
                           seed_ids, seeds if seed_ids is not None else None)
    kwargs = dict(max_new_tokens=id_length + 1 if single else asked * id_length + 1,
                  eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                  return_dict_in_generate=True, output_scores=True)
    if settings.sample:
        kwargs.update(do_sample=True, num_beams=1, temperature=settings.temperature, top_p=settings.top_p)
    else:
        kwargs.update(do_sample=False, num_beams=max(settings.num_beams, asked) if single else 1)
    kwargs["num_return_sequences"] = asked if single else 1
    if single and kwargs["num_beams"] > 1:
        kwargs["length_penalty"] = 0.0  # rank by total log-probability
    min_songs = 1 if single else asked
    if constrained:
        processor = TrieLogitsProcessor(build_trie(bundle), tokenizer.eos_token_id, tokenizer.pad_token_id,
                                        max_songs=1 if single else asked, min_songs=min_songs,
                                        unique=not single)
        kwargs["logits_processor"] = LogitsProcessorList([processor])
    else:
        kwargs["min_new_tokens"] = min_songs * id_length
    with torch.no_grad():
        out = model.generate(**encoded, **kwargs)
    scores = _sequence_scores(model, out, kwargs)
    per_title = kwargs["num_return_sequences"]
    sequences = out.sequences[:, 1:].tolist()  # drop the decoder start token
    results = []
    for i in range(len(titles)):
        rows = range(i * per_title, (i + 1) * per_title)
        ranked = sorted(rows, key=lambda r: -scores[r]) if single else list(rows)
        ids: list[tuple[str, ...]] = []
        id_scores: list[float] = []
        partials = 0
        for r in ranked:
            chunks, partial = split_ids(tokenizer, sequences[r], id_length)
            partials += partial
            for chunk in chunks:
                ids.append(chunk)
                # Sequence mode ranks by position; single mode by the beam's score.
                id_scores.append(scores[r] if single else -float(len(ids)))
        results.append(collect_songs(vocab, ids, id_scores, partials, num_songs, popularity, rng,
                                     set(seeds[i]) if seeds else frozenset()))
    return results


def _sequence_scores(model, out, kwargs) -> list[float]:
    if getattr(out, "sequences_scores", None) is not None:
        return out.sequences_scores.tolist()
    transition = model.compute_transition_scores(out.sequences, out.scores, normalize_logits=True)
    transition = torch.nan_to_num(transition, neginf=0.0)
    return transition.sum(dim=1).tolist()


def split_ids(tokenizer, token_ids: list[int], id_length: int) -> tuple[list[tuple[str, ...]], int]:
    """Generated tokens up to ``</s>``, cut into ID-sized chunks; the count of a trailing partial ID.

    Only ``</s>`` ends the output (generate() pads after it); a pad the model emits itself is junk
    and makes its chunk invalid.
    """
    kept = []
    for token in token_ids:
        if token == tokenizer.eos_token_id:
            break
        kept.append(token)
    tokens = tokenizer.convert_ids_to_tokens(kept)
    whole = len(tokens) - len(tokens) % id_length
    chunks = [tuple(tokens[i:i + id_length]) for i in range(0, whole, id_length)]
    return chunks, int(whole != len(tokens))


def collect_songs(vocab: SemanticIdVocab, ids: list[tuple[str, ...]], scores: list[float], partial: int,
                  num_songs: int, popularity: dict[str, int] | None, rng: random.Random | None,
                  exclude: set[str] | frozenset = frozenset()) -> Decoded:
    """One title's generated IDs (rank order) as a Decoded: invalid and repeated IDs counted, IDs of ``exclude``d
    songs (the seeds) left out, the rest expanded."""
    seen_ids: set[tuple[str, ...]] = set()
    invalid, duplicates = partial, 0
    kept: list[tuple[tuple[str, ...], float]] = []
    for tokens, score in zip(ids, scores):
        if not vocab.songs_of(tokens):
            invalid += 1
        elif tokens in seen_ids:
            duplicates += 1
        else:
            seen_ids.add(tokens)
            if not exclude.issuperset(vocab.songs_of(tokens)):
                kept.append((tokens, score))
    return Decoded(expand_ids(vocab, kept, num_songs, popularity, rng, exclude), ids, invalid, duplicates, partial)


def expand_ids(vocab: SemanticIdVocab, ids: list[tuple[tuple[str, ...], float]], num_songs: int,
               popularity: dict[str, int] | None = None, rng: random.Random | None = None,
               exclude: set[str] | frozenset = frozenset()) -> list[tuple[str, float]]:
    """One song per distinct ranked ID, none of ``exclude``: its only song (suffix IDs) or one of its cluster (see
    module doc)."""
    popularity = popularity or {}
    songs: list[tuple[str, float]] = []
    for tokens, score in ids[:num_songs]:
        members = [song for song in vocab.songs_of(tokens) if song not in exclude]
        weights = [popularity.get(s, 0) + 1 for s in members]
        song = rng.choices(members, weights)[0] if rng else members[weights.index(max(weights))]
        songs.append((song, score))
    return songs
