"""Seed songs as encoder input (``targets.seeded_share``): what a model that continues a playlist reads of its seeds.

Each seed song is one encoder token, right after the title's tokens: the sum of its ID tokens' embeddings (the
table the decoder writes with, as the copy head's song keys are made, genrec.model.copy_head) plus a learned
embedding of its position among the seeds. A model that reads seeds records ``seed_songs`` (:data:`MAX_SEEDS`) in its
config.json. Seeds come as a ``(titles, seeds, id_length)`` tensor of ID token ids, padded with the pad token: an ID
token is never the pad token, so a row whose first token is the pad token is no seed. Imports neither transformers
nor the training code: the transformers model (genrec.model.t5) and the plain-torch one (genrec.serve.inference)
both compute the seed tokens here.
"""

from __future__ import annotations

from typing import Sequence

import torch

MAX_SEEDS = 25
"""Seeds the model reads, the last ones given: the challenge's 100-seed categories would make the encoder input five
times longer than a title for what the last songs mostly tell already (the seeds' co-occurrence walk reads all of
them beside the model in the continuation's hybrid)."""


def kept_seeds(seeds: Sequence[str], token_ids: dict[str, tuple[int, ...]]) -> list[str]:
    """The seeds the model reads: those with a semantic ID, the last :data:`MAX_SEEDS` of them, in order."""
    return [song for song in dict.fromkeys(seeds) if song in token_ids][-MAX_SEEDS:]


def seed_tensor(seeds: Sequence[Sequence[str]], token_ids: dict[str, tuple[int, ...]], id_length: int,
                pad_id: int) -> torch.Tensor:
    """(titles, most seeds kept, id_length) ID token ids of each title's :func:`kept_seeds`, padded with ``pad_id``."""
    kept = [kept_seeds(songs, token_ids) for songs in seeds]
    out = torch.full((len(kept), max(map(len, kept), default=0), id_length), pad_id, dtype=torch.long)
    for i, songs in enumerate(kept):
        for j, song in enumerate(songs):
            out[i, j] = torch.tensor(token_ids[song])
    return out


def with_seeds(embeds: torch.Tensor, mask: torch.Tensor, seed_ids: torch.Tensor, token_embedding: torch.nn.Module,
               positions: torch.Tensor, pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Encoder embeddings and mask with each row's seed tokens right after its own title tokens, then the padding.

    ``embeds``, ``mask``: the title's tokens (right-padded); ``positions``: the seed-position embedding table
    (MAX_SEEDS, d_model). Packed per row, not appended after the batch's padding: T5's relative position bias would
    otherwise tell the seeds a title's distance from the batch's longest title, and a title's songs would depend on
    the titles decoded beside it."""
    seeds = token_embedding(seed_ids).sum(dim=2) + positions[:seed_ids.shape[1]].to(token_embedding.weight.dtype)
    embeds = torch.cat([embeds, seeds.to(embeds.dtype)], dim=1)
    mask = torch.cat([mask, (seed_ids[:, :, 0] != pad_id).to(mask.dtype)], dim=1)
    order = (mask == 0).to(torch.uint8).argsort(dim=1, stable=True)  # real tokens first, each kept in its order
    return embeds.gather(1, order[..., None].expand_as(embeds)), mask.gather(1, order)
