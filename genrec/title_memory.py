"""Title memory: one learned vector per training title, an extra encoder token (``tiger.title_memory``).

Title kNN beats a plain model on titles seen a few times in training because it remembers them: it
returns those playlists' songs. The model is taught the same songs (its pooled targets hold them) but
does not learn them: on MPD its top 100 for a training title seen once held 18% of that title's own
songs, where its targets ranked 88% of them there (``bench/title_fit.py``). Wider or longer-trained
models did no better. A title reaches the model only through its tokens, shared with every title that
uses them, so remembering thousands of rare titles competes with generalising across them.

The memory gives each distinct training title (its exact token ids) a vector of its own, looked up
inside the model from ``input_ids``, so every path that feeds the model titles (training, validation,
generation) gets it with no extra input. Any other title, unseen in training, gets row 0, which
training also teaches: each example's title is sent to row 0 with probability
``tiger.title_memory_dropout``, so the model still learns to read the title's tokens and vector.

Keys are two 31-bit polynomial hashes of the token ids, side by side in one int64 (no overflow on
any device); the sorted keys are a buffer of the model, saved with its weights.
"""

from __future__ import annotations

import torch

MODULUS = 2_147_483_647  # 2**31 - 1: a hash times a multiplier below 2**17 stays below 2**48
MULTIPLIERS = (65_599, 31_337)


def title_keys(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """One int64 key per row, from its unmasked token ids (padding on either side is ignored)."""
    ids, mask = input_ids.long() + 1, attention_mask.bool()
    halves = []
    for multiplier in MULTIPLIERS:
        key = torch.zeros(len(ids), dtype=torch.long, device=ids.device)
        for j in range(ids.shape[1]):
            key = torch.where(mask[:, j], (key * multiplier + ids[:, j]) % MODULUS, key)
        halves.append(key)
    return halves[0] * MODULUS + halves[1]


def memory_keys(titles: list[list[int]]) -> torch.Tensor:
    """Sorted distinct keys of these titles' token ids (the model's memory rows 1..n)."""
    distinct = sorted({tuple(t) for t in titles})
    width = max(map(len, distinct))
    ids = torch.zeros((len(distinct), width), dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, title in enumerate(distinct):
        ids[i, :len(title)] = torch.tensor(title)
        mask[i, :len(title)] = 1
    return torch.unique(title_keys(ids, mask))


class TitleMemory(torch.nn.Module):
    """Row i + 1 for the title with the i-th smallest key; row 0 for every other title (and for dropped ones)."""

    def __init__(self, size: int, dim: int, dropout: float):
        super().__init__()
        self.register_buffer("keys", torch.zeros(size, dtype=torch.long))
        self.table = torch.nn.Embedding(size + 1, dim)
        self.dropout = dropout

    def set_keys(self, keys: torch.Tensor) -> None:
        if keys.shape != self.keys.shape:
            raise ValueError(f"title memory has {len(self.keys)} rows, got {len(keys)} keys")
        self.keys.copy_(keys)

    def slots(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        query = title_keys(input_ids, attention_mask)
        at = torch.searchsorted(self.keys, query).clamp(max=len(self.keys) - 1)
        found = torch.where(self.keys[at] == query, at + 1, 0)
        if self.training and self.dropout:
            found = torch.where(torch.rand(found.shape, device=found.device) < self.dropout, 0, found)
        return found

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """(batch, dim): each title's memory vector."""
        return self.table(self.slots(input_ids, attention_mask))
