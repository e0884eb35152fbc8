"""Copying retrieved songs ID token by ID token: a pointer over title kNN's songs (``retrieval.songs``).

A model that reads kNN's songs as encoder tokens (genrec.model.retrieval) must learn to write their ID tokens
back out of summed embeddings; on MPD it learnt no use for them (docs/experiments/mpd.md, "Giving it kNN's
memory as input"). The copy head gives the decoder that path directly, as pointer-generator networks do for
summarisation (See et al., 2017). At each decoder position it attends over the retrieved songs whose ID
starts with the tokens written so far, and mixes their next tokens into the model's own distribution
with a learned gate:

    p(token) = (1 - g) * p_model(token) + g * sum_r a_r * [song r's next token == token]

``a_r``: a softmax over the matching songs of a query from the decoder state against a key made of the
song's ID token embeddings (shared with the decoder) and its kNN rank; ``g``: a sigmoid of the decoder
state, and 0 where no retrieved song matches. The model returns log p as its logits, so the losses,
beam search, sampling and the trie processor work unchanged. Single mode only: decoder position j
writes ID level j, and an ID's last level is followed by ``</s>``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


class CopyHead(torch.nn.Module):
    def __init__(self, d_model: int, songs: int, eos_token_id: int):
        super().__init__()
        self.query = torch.nn.Linear(d_model, d_model, bias=False)
        self.key = torch.nn.Linear(d_model, d_model, bias=False)
        self.rank = torch.nn.Embedding(songs, d_model)
        self.gate = torch.nn.Linear(d_model, 1)
        self.eos_token_id = eos_token_id

    def song_keys(self, retrieved: torch.Tensor, token_embedding: torch.nn.Embedding) -> torch.Tensor:
        """(batch, songs, d_model): each retrieved song's key, from its ID tokens' embeddings and its kNN rank."""
        return self.key(token_embedding(retrieved).sum(dim=2) + self.rank.weight[:retrieved.shape[1]])

    def forward(self, logits: torch.Tensor, states: torch.Tensor, prefix: torch.Tensor, retrieved: torch.Tensor,
                token_embedding: torch.nn.Embedding, keys: torch.Tensor | None = None) -> torch.Tensor:
        """Log-probabilities of the mixture for the last ``T`` decoder positions.

        logits, states: (batch, T, vocab) and (batch, T, d_model) of those positions; prefix: (batch, P) the
        whole decoder input so far (start token first, P >= T); retrieved: (batch, songs, id_length) token ids.
        ``keys``: :meth:`song_keys` computed once for groups of consecutive rows that share their retrieved songs
        (groups, songs, d_model), as a title's beams do; by default one group a row.
        """
        positions = logits.shape[1]
        matches, next_tokens = copy_targets(prefix, retrieved, self.eos_token_id)
        matches, next_tokens = matches[:, -positions:], next_tokens[:, -positions:]
        keys = self.song_keys(retrieved, token_embedding) if keys is None else keys
        queries = self.query(states)
        grouped = queries.view(keys.shape[0], -1, positions, queries.shape[-1])
        scores = torch.einsum("gwtd,gsd->gwts", grouped, keys).reshape(*matches.shape).float() / keys.shape[-1] ** 0.5
        # A finite floor, not -inf: a position with no match gets a harmless uniform row (the model alone is kept).
        attention = scores.masked_fill(~matches, torch.finfo(scores.dtype).min).softmax(dim=-1)
        copied = torch.zeros_like(logits, dtype=torch.float).scatter_add_(-1, next_tokens, attention * matches)
        gate = self.gate(states).float()
        model_log_probs = logits.float().log_softmax(dim=-1)
        mixed = torch.logaddexp(F.logsigmoid(-gate) + model_log_probs,
                                F.logsigmoid(gate) + copied.clamp_min(torch.finfo(copied.dtype).tiny).log())
        return torch.where(matches.any(dim=-1, keepdim=True), mixed, model_log_probs)


def copy_targets(prefix: torch.Tensor, retrieved: torch.Tensor, eos_token_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """For every decoder position of ``prefix``: which retrieved songs' IDs start with the tokens written so
    far (batch, P, songs), and the token each would write next (its next ID token, or ``</s>`` after the last)."""
    batch, songs, id_length = retrieved.shape
    written = prefix[:, 1:]
    matches, next_tokens = [], []
    for level in range(prefix.shape[1]):
        if level > id_length:  # past </s>: nothing to copy
            matches.append(retrieved.new_zeros((batch, songs), dtype=torch.bool))
            next_tokens.append(retrieved.new_zeros((batch, songs)))
            continue
        same = (retrieved[:, :, :level] == written[:, None, :level]).all(dim=-1)
        matches.append(same)
        next_tokens.append(retrieved[:, :, level] if level < id_length
                           else retrieved.new_full((batch, songs), eos_token_id))
    return torch.stack(matches, dim=1), torch.stack(next_tokens, dim=1)
