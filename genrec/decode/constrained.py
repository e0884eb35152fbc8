"""Constrained decoding: a prefix trie of the catalogue's semantic IDs, applied as a LogitsProcessor.

Every ID has the same number of tokens (``SemanticIdVocab.id_length``), so a decoder row's position
inside the current song is ``generated_tokens % id_length`` and the current song's partial ID is the
tail of the row. The processor walks the trie along that tail (at most ``id_length`` dict lookups per
row and step, never a scan of the ID table) and lets through only:

- the children of the reached trie node (a real ID's next token);
- ``</s>`` only at a song boundary, and only once ``min_songs`` songs are complete;
- in sequence mode, no token that would complete a song already generated in this row, and no
  subtree whose every song is already used (so a row can never reach a dead end).

It reads only ``input_ids`` (the rows as generate() holds them), so it works the same for greedy,
sampling and beam search, batched, on CPU and GPU: beam search reorders rows freely between steps.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import torch

from genrec.errors import ArtifactError
from genrec.corpus.id_tokens import SemanticIdVocab


@dataclass
class TrieNode:
    children: dict[int, "TrieNode"] = field(default_factory=dict)
    leaves: int = 0
    """IDs below this node (to know when sequence mode has used a whole subtree)."""
    _allowed: torch.Tensor | None = None

    @property
    def allowed(self) -> torch.Tensor:
        """The children's token ids as a tensor, built when decoding first reaches this node (building one per
        node up front would cost the first title most of a second on a large catalogue)."""
        if self._allowed is None:
            self._allowed = torch.tensor(sorted(self.children), dtype=torch.long)
        return self._allowed


def id_token_ids(vocab: SemanticIdVocab, tokenizer) -> dict[str, int]:
    """Each semantic-ID token's id in the tokenizer (looked up once per token, not once per song)."""
    out = {}
    for token in vocab.all_tokens():
        token_id = tokenizer.convert_tokens_to_ids(token)
        if token_id is None or token_id == tokenizer.unk_token_id:
            raise ArtifactError(f"the tokenizer does not know the semantic-ID token {token}: the model and "
                                "semantic_id_vocab.json do not match; rerun train_tiger.py")
        out[token] = token_id
    return out


class IdTrie:
    """The catalogue's valid IDs as token-id sequences, in a prefix tree."""

    def __init__(self, id_sequences: list[tuple[int, ...]]):
        if not id_sequences:
            raise ArtifactError("the semantic-ID vocabulary is empty: nothing to decode into")
        lengths = {len(ids) for ids in id_sequences}
        if len(lengths) != 1:
            raise ArtifactError(f"semantic IDs of different lengths {sorted(lengths)}: rerun prepare_corpus.py")
        self.id_length = lengths.pop()
        self.root = TrieNode()
        self.size = 0
        for ids in dict.fromkeys(id_sequences):
            self._insert(ids)

    @classmethod
    def from_vocab(cls, vocab: SemanticIdVocab, tokenizer) -> "IdTrie":
        """The trie of every ID in ``vocab``, in the tokenizer's ids; each ID token must be one token."""
        token_ids = id_token_ids(vocab, tokenizer)
        return cls([tuple(token_ids[token] for token in tokens) for tokens in vocab.by_tokens])

    def _insert(self, ids: tuple[int, ...]) -> None:
        node = self.root
        node.leaves += 1
        for token in ids:
            node = node.children.setdefault(token, TrieNode())
            node.leaves += 1
        self.size += 1

    def node(self, prefix: tuple[int, ...]) -> TrieNode | None:
        """The node reached by ``prefix``, or None if no ID starts so."""
        node = self.root
        for token in prefix:
            node = node.children.get(token)
            if node is None:
                return None
        return node

    def contains(self, ids: tuple[int, ...]) -> bool:
        node = self.node(ids)
        return node is not None and len(ids) == self.id_length


class TrieLogitsProcessor:
    """Mask every token that would leave the trie (see the module docstring); a transformers LogitsProcessor by
    its call signature, with no import of transformers, so the generator's plain-torch decoding uses it too.

    ``prompt_length``: decoder tokens before the first generated one (1 for T5's decoder start).
    ``max_songs``: after this many songs only ``</s>`` is allowed (1 in single mode).
    ``unique``: ban songs already generated in the row (sequence mode).
    """

    def __init__(self, trie: IdTrie, eos_token_id: int, pad_token_id: int, max_songs: int, min_songs: int = 1,
                 unique: bool = True, prompt_length: int = 1):
        self.trie = trie
        self.eos = eos_token_id
        self.pad = pad_token_id
        self.max_songs = max_songs
        self.min_songs = min(min_songs, max_songs, trie.size)
        self.unique = unique
        self.prompt_length = prompt_length
        self._used_cache: dict[tuple[int, ...], Counter] = {}

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        allowed = [self._allowed(generated) for generated in input_ids[:, self.prompt_length:].tolist()]
        # One scatter for the whole batch (one host-to-device copy, not one per row).
        rows = torch.repeat_interleave(torch.arange(len(allowed)), torch.tensor([a.numel() for a in allowed]))
        columns = torch.cat(allowed)
        mask = torch.full_like(scores, float("-inf"))
        mask[rows.to(scores.device), columns.to(scores.device)] = 0
        return scores + mask

    def _allowed(self, generated: list[int]) -> torch.Tensor:
        if self.eos in generated or self.pad in generated:
            # A finished row: generate() pads it; keep it finite so no softmax sees an all -inf row.
            return torch.tensor([self.pad, self.eos])
        length = self.trie.id_length
        position = len(generated) % length
        complete = len(generated) // length
        if position == 0 and complete >= self.max_songs:
            return torch.tensor([self.eos])
        prefix = tuple(generated[len(generated) - position:])
        node = self.trie.node(prefix)
        if node is None:  # only reachable if the row did not start under this processor
            return torch.tensor([self.eos])
        allowed = node.allowed
        if self.unique and complete:
            allowed = self._drop_used(allowed, prefix, tuple(generated[:complete * length]), node)
        if position == 0 and (complete >= self.min_songs or allowed.numel() == 0):
            allowed = torch.cat([allowed, torch.tensor([self.eos])])
        return allowed

    def _drop_used(self, allowed: torch.Tensor, prefix: tuple[int, ...], done: tuple[int, ...],
                   node: TrieNode) -> torch.Tensor:
        """Children whose subtree still holds a song this row has not generated yet."""
        used = self._used(done)
        if not used:
            return allowed
        keep = [token for token in allowed.tolist()
                if used.get(prefix + (token,), 0) < node.children[token].leaves]
        return torch.tensor(keep, dtype=torch.long)

    def _used(self, done: tuple[int, ...]) -> Counter:
        """Count of generated songs under every prefix, built incrementally from the row's earlier state."""
        cached = self._used_cache.get(done)
        if cached is not None:
            return cached
        length = self.trie.id_length
        used = Counter(self._used(done[:-length])) if len(done) > length else Counter()
        song = done[-length:]
        if self.trie.contains(song) and used.get(song, 0) == 0:
            for depth in range(1, length + 1):
                used[song[:depth]] += 1
        self._used_cache[done] = used
        return used
