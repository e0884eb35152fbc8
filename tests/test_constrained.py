"""The trie constraint: every generated ID is a real song, for every decoding method and target mode."""

from __future__ import annotations

import pytest
import torch

from genrec.decode.constrained import IdTrie, TrieLogitsProcessor
from genrec.decode.decoding import DecodingSettings, decode, recommend
from tiny_tiger import TITLES, tiny_bundle


def test_trie_holds_exactly_the_vocabulary_ids():
    bundle = tiny_bundle()
    trie = IdTrie.from_vocab(bundle.vocab, bundle.tokenizer)
    assert trie.size == len(bundle.vocab.by_tokens) and trie.id_length == bundle.vocab.id_length
    for tokens in bundle.vocab.by_tokens:
        assert trie.contains(tuple(bundle.tokenizer.convert_tokens_to_ids(list(tokens))))
    first = next(iter(bundle.vocab.by_tokens))
    ids = bundle.tokenizer.convert_tokens_to_ids(list(first))
    assert not trie.contains(tuple(ids[:-1]))  # a prefix is not an ID
    assert trie.node(tuple(ids[:1]) + (bundle.tokenizer.eos_token_id,)) is None


def test_processor_allows_eos_only_at_a_song_boundary():
    bundle = tiny_bundle()
    trie = IdTrie.from_vocab(bundle.vocab, bundle.tokenizer)
    eos, pad = bundle.tokenizer.eos_token_id, bundle.tokenizer.pad_token_id
    processor = TrieLogitsProcessor(trie, eos, pad, max_songs=3, min_songs=1)
    first = next(iter(trie.root.children))
    whole = tuple(bundle.tokenizer.convert_tokens_to_ids(list(next(iter(bundle.vocab.by_tokens)))))
    empty = torch.zeros(1, len(bundle.tokenizer))
    start = processor(torch.tensor([[pad]]), empty)[0]
    inside = processor(torch.tensor([[pad, first]]), empty)[0]
    after_one = processor(torch.tensor([[pad, *whole]]), empty)[0]
    after_max = processor(torch.tensor([[pad, *whole * 3]]), empty)[0]
    assert torch.isinf(start[eos])  # no song yet, min_songs=1
    assert torch.isinf(inside[eos])  # inside an ID
    assert torch.isfinite(after_one[eos])  # a boundary after a whole song
    assert torch.isfinite(after_max).sum() == 1 and torch.isfinite(after_max[eos])  # max_songs reached
    assert set(torch.nonzero(torch.isfinite(inside)).ravel().tolist()) == set(trie.root.children[first].children)
    again = processor(torch.tensor([[pad, *whole, *whole[:-1]]]), empty)[0]
    assert torch.isinf(again[whole[-1]])  # the same song cannot be completed twice
    allowed_first = set(torch.nonzero(torch.isfinite(start)).ravel().tolist())
    assert allowed_first == set(trie.root.children)


@pytest.mark.parametrize("strategy", ["suffix", "cluster"])
def test_batched_beam_search_gives_distinct_valid_songs(strategy):
    bundle = tiny_bundle(strategy=strategy)
    decoded = decode(bundle, TITLES, DecodingSettings(num_songs=8, num_beams=8, batch_size=3))
    for d in decoded:
        assert d.invalid == 0 and d.partial == 0
        assert all(bundle.vocab.songs_of(tokens) for tokens in d.ids)
        assert len(set(d.ids)) == len(d.ids) == 8  # K distinct IDs from one beam of K
        songs = [s for s, _ in d.songs]
        assert len(songs) == len(set(songs)) == 8
        scores = [score for _, score in d.songs]
        assert scores == sorted(scores, reverse=True)


@pytest.mark.parametrize("sample", [False, True])
def test_sequence_mode_never_repeats_and_fills_the_playlist(sample):
    bundle = tiny_bundle(target_mode="sequence")
    torch.manual_seed(0)
    settings = DecodingSettings(num_songs=15, num_beams=2, sample=sample, top_p=0.9, batch_size=4)
    for d in decode(bundle, TITLES, settings):
        assert d.invalid == 0 and d.duplicates == 0
        assert len(d.ids) == len(set(d.ids)) == 15


def test_sequence_mode_stops_when_the_catalogue_is_used_up():
    bundle = tiny_bundle(target_mode="sequence", n_songs=6)
    decoded = decode(bundle, TITLES[:2], DecodingSettings(num_songs=10, num_beams=1))
    for d in decoded:
        assert sorted(s for s, _ in d.songs) == sorted(bundle.vocab.songs)  # every song once, then </s>


def test_unconstrained_decoding_reports_invalid_ids():
    bundle = tiny_bundle()
    decoded = decode(bundle, TITLES, DecodingSettings(num_songs=4, num_beams=4), constrained=False)
    assert sum(d.invalid for d in decoded) > 0  # a random model emits text tokens and broken IDs
    assert all(len(d.songs) <= 4 for d in decoded)


def test_sampling_single_mode_and_recommend_wrapper():
    bundle = tiny_bundle()
    torch.manual_seed(1)
    ranked = recommend(bundle, TITLES[:3], 5, DecodingSettings(sample=True, temperature=0.7))
    for songs in ranked:
        assert songs and all(song in bundle.vocab.songs for song, _ in songs)
