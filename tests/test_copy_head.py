"""The copy head (retrieval.songs): a pointer over retrieved songs, ID token by ID token."""

import torch
from transformers import T5Config

from genrec.model.copy_head import copy_targets
from genrec.model.t5 import TigerT5

EOS = 1
# Three retrieved songs of two-token IDs: two share the first token.
RETRIEVED = torch.tensor([[[10, 20], [10, 21], [11, 22]]] * 2)


def tiny_model(retrieved_songs: int = 3) -> TigerT5:
    torch.manual_seed(0)
    return TigerT5(T5Config(vocab_size=30, d_model=16, d_kv=4, d_ff=32, num_layers=1, num_decoder_layers=1,
                            num_heads=2, decoder_start_token_id=0, eos_token_id=EOS, pad_token_id=0,
                            retrieved_songs=retrieved_songs)).eval()


def log_probs(model: TigerT5, decoder: torch.Tensor, retrieved: torch.Tensor = RETRIEVED) -> torch.Tensor:
    titles = torch.tensor([[3, 4, EOS], [5, EOS, 0]])
    with torch.no_grad():
        return model(input_ids=titles, attention_mask=(titles > 0).long(), retrieved_ids=retrieved,
                     decoder_input_ids=decoder).logits


def test_copy_targets_follow_the_written_prefix():
    prefix = torch.tensor([[0, 10, 21, EOS]])  # start, two ID tokens, </s>
    matches, next_tokens = copy_targets(prefix, RETRIEVED[:1], EOS)
    assert matches[0].tolist() == [[True, True, True], [True, True, False], [False, True, False],
                                   [False, False, False]]
    assert next_tokens[0, :3].tolist() == [[10, 10, 11], [20, 21, 22], [EOS, EOS, EOS]]


def test_the_mixture_is_a_distribution_that_favours_matching_songs_next_tokens():
    model = tiny_model()
    decoder = torch.tensor([[0, 10, 20], [0, 12, 22]])
    plain = tiny_model(retrieved_songs=0)
    plain.load_state_dict(model.state_dict(), strict=False)  # same T5 weights, no copy head
    mixed = log_probs(model, decoder)
    assert torch.allclose(mixed.logsumexp(-1), torch.zeros(2, 3), atol=1e-5)
    # Title 2 wrote 12, which starts no retrieved song: from there on it is the model alone.
    alone = plain(input_ids=torch.tensor([[5, EOS, 0]]), attention_mask=torch.tensor([[1, 1, 0]]),
                  decoder_input_ids=decoder[1:]).logits.log_softmax(-1)
    assert torch.allclose(mixed[1, 1:], alone[0, 1:], atol=1e-5)
    assert not torch.allclose(mixed[1, 0], alone[0, 0], atol=1e-3)  # at the start all three songs match
    # With the gate wide open only the matching songs' next tokens keep any mass.
    with torch.no_grad():
        model.copy_head.gate.bias.fill_(50.0)
    probs = log_probs(model, decoder).exp()
    assert probs[0, 0, [10, 11]].sum() > 0.999 and probs[0, 1, [20, 21]].sum() > 0.999
    assert probs[0, 2, EOS] > 0.999


def test_the_copy_head_reads_the_retrieved_songs_and_their_order():
    model = tiny_model()
    decoder = torch.tensor([[0, 10, 20], [0, 10, 20]])
    first, reordered = log_probs(model, decoder), log_probs(model, decoder, RETRIEVED.flip(1))
    assert not torch.allclose(first, reordered)


def song_log_probs(model: TigerT5, retrieved: torch.Tensor = RETRIEVED) -> torch.Tensor:
    """Each retrieved song's log-probability as a whole ID (its tokens, then </s>), per title: (batch, songs)."""
    per_song = []
    for song in range(retrieved.shape[1]):
        labels = torch.cat([retrieved[:, song], torch.full((retrieved.shape[0], 1), EOS)], dim=1)
        decoder = torch.cat([torch.zeros_like(labels[:, :1]), labels[:, :-1]], dim=1)
        per_song.append(log_probs(model, decoder, retrieved).gather(-1, labels[..., None]).sum(dim=(1, 2)))
    return torch.stack(per_song, dim=1)


def copying_without_query(model: TigerT5) -> TigerT5:
    """The decoder's own distribution and the copy query set aside: nothing tells the songs apart."""
    with torch.no_grad():
        model.copy_head.gate.bias.fill_(50.0)
        model.copy_head.query.weight.zero_()
    return model


def test_without_a_query_the_head_gives_every_retrieved_song_the_same_share():
    shares = song_log_probs(copying_without_query(tiny_model())).exp()
    assert torch.allclose(shares, torch.full((2, 3), 1 / 3), atol=1e-4)


def test_labels_give_the_loss_of_the_mixture_and_cached_generation_matches_uncached():
    model = tiny_model()
    titles = torch.tensor([[3, 4, EOS], [5, EOS, 0]])
    mask = (titles > 0).long()
    labels = torch.tensor([[10, 21, EOS], [11, 22, EOS]])
    with torch.no_grad():
        out = model(input_ids=titles, attention_mask=mask, retrieved_ids=RETRIEVED, labels=labels)
    assert torch.isclose(out.loss, torch.nn.functional.nll_loss(out.logits.flatten(0, 1), labels.flatten()))
    runs = [model.generate(input_ids=titles, attention_mask=mask, retrieved_ids=RETRIEVED, num_beams=4,
                           num_return_sequences=4, max_new_tokens=3, output_scores=True,
                           return_dict_in_generate=True, use_cache=cache) for cache in (True, False)]
    assert torch.equal(runs[0].sequences, runs[1].sequences)
    assert torch.allclose(runs[0].sequences_scores, runs[1].sequences_scores, atol=1e-5)
