"""The served T5 in plain torch: its forward pass, trie-constrained beam search and sampling, without transformers.

Importing transformers costs a one-shot ``generate_playlist.py --title`` run most of its time, so the generator
computes what it needs from the bundle's ``model.safetensors``, ``config.json`` and ``tokenizer.json`` itself:

- the T5 encoder-decoder as transformers' T5ForConditionalGeneration computes it in eval mode (RMS layer norms,
  unscaled attention with relative position buckets shared across layers, ReLU or gated-GELU feed-forward, the
  tied output scaled by d_model^-0.5), plus TigerT5's extra input (the projected title vector, first; the seed
  songs after the title, genrec.model.seed_songs, the same code) and copy head (genrec.model.copy_head, the same
  module);
- beam search as ``generate(num_beams=K, num_return_sequences=K, length_penalty=0)`` runs it under the trie
  (genrec.decode.constrained.TrieLogitsProcessor, the same processor): log-softmax, mask, add to the beam's
  score, keep the K best of every beam's continuations, until every beam has written ``</s>``. A song's score is
  its ID's total log-probability, ``</s>`` included, as transformers reports it;
- sampling (``sample``): every one of ``num_songs`` rows draws its ID token by token from the masked
  distribution after temperature and top-p, as transformers' sampling does.

The decoder recomputes its few positions at every step instead of caching them: an ID is a handful of tokens.
``tests/test_serving.py`` checks the songs and scores against transformers' on trained tiny models, and
``bench/serving_quality.py`` the figures on a real one. A model this module does not cover (sequence mode,
another activation) loads through transformers instead (:func:`supports`).
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from genrec.artifacts import read_manifest
from genrec.corpus.id_tokens import VOCAB_FILE, SemanticIdVocab
from genrec.decode.constrained import TrieLogitsProcessor
from genrec.decode.decoding import Decoded, DecodingSettings, build_trie, collect_songs, seed_input, split_ids
from genrec.errors import ArtifactError
from genrec.model.copy_head import CopyHead
from genrec.model.loaded import TigerBundle, assemble_bundle, read_model_config
from genrec.model.seed_songs import with_seeds

ACTIVATIONS = {"relu": F.relu, "gelu": F.gelu, "gelu_new": lambda x: F.gelu(x, approximate="tanh")}


def supports(config: dict, manifest: dict) -> bool:
    """Whether this module computes the model in ``config`` (else it loads through transformers)."""
    return (config.get("model_type") == "t5" and config.get("dense_act_fn", "relu") in ACTIVATIONS
            and manifest.get("summary", {}).get("target_mode") == "single")


class ServingTokenizer:
    """The model's ``tokenizer.json`` through the tokenizers library, with the few methods decoding calls."""

    def __init__(self, model_dir: Path, max_length: int):
        from tokenizers import Tokenizer

        try:
            self.tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
            settings = json.loads((model_dir / "tokenizer_config.json").read_text(encoding="utf-8"))
        except Exception as err:  # tokenizers raises its own exception type for a malformed file
            raise ArtifactError(f"cannot load the tokenizer in {model_dir} ({err}): rerun train_tiger.py") from None
        self.pad_token_id = self.tokenizer.token_to_id(settings.get("pad_token", "<pad>"))
        self.eos_token_id = self.tokenizer.token_to_id(settings.get("eos_token", "</s>"))
        self.unk_token_id = self.tokenizer.token_to_id(settings.get("unk_token", "<unk>"))
        self.tokenizer.enable_truncation(max_length)
        self.tokenizer.enable_padding(pad_id=self.pad_token_id, pad_token=settings.get("pad_token", "<pad>"))

    def encode(self, titles: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Token ids and attention mask, padded to the longest title."""
        encodings = self.tokenizer.encode_batch(titles)
        return (torch.tensor([e.ids for e in encodings]), torch.tensor([e.attention_mask for e in encodings]))

    def convert_tokens_to_ids(self, token: str) -> int | None:
        return self.tokenizer.token_to_id(token)

    def convert_ids_to_tokens(self, ids: list[int]) -> list[str]:
        return [self.tokenizer.id_to_token(i) for i in ids]


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    return weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))


def relative_buckets(query_length: int, key_length: int, bidirectional: bool, num_buckets: int,
                     max_distance: int) -> torch.Tensor:
    """T5's bucket of every (query, key) offset: exact for small offsets, logarithmic up to ``max_distance``."""
    relative = torch.arange(key_length)[None, :] - torch.arange(query_length)[:, None]
    buckets = torch.zeros_like(relative)
    if bidirectional:
        num_buckets //= 2
        buckets += (relative > 0).long() * num_buckets
        relative = relative.abs()
    else:
        relative = -relative.clamp(max=0)
    exact = num_buckets // 2
    large = exact + (torch.log(relative.float() / exact) / math.log(max_distance / exact)
                     * (num_buckets - exact)).long()
    return buckets + torch.where(relative < exact, relative, large.clamp(max=num_buckets - 1))


class TigerInference:
    """TigerT5's eval-mode forward pass over a state dict (see the module docstring)."""

    def __init__(self, config: dict, weights: dict[str, torch.Tensor]):
        self.w = weights
        self.device = torch.device("cpu")
        self.heads, self.d_kv = int(config["num_heads"]), int(config["d_kv"])
        self.eps = float(config["layer_norm_epsilon"])
        self.encoder_layers = int(config["num_layers"])
        self.decoder_layers = int(config.get("num_decoder_layers") or config["num_layers"])
        self.num_buckets = int(config["relative_attention_num_buckets"])
        self.max_distance = int(config.get("relative_attention_max_distance", 128))
        self.gated = bool(config.get("is_gated_act", False))
        self.activation = ACTIVATIONS[config.get("dense_act_fn", "relu")]
        self.start_token = int(config.get("decoder_start_token_id") or 0)
        self.embedding = torch.nn.Embedding.from_pretrained(weights["shared.weight"])
        self.output = weights.get("lm_head.weight", weights["shared.weight"])
        self.output_scale = (float(config["d_model"]) ** -0.5
                             if config.get("scale_decoder_outputs", config.get("tie_word_embeddings", True)) else 1.0)
        self.copy_head = None
        if config.get("retrieved_songs"):
            self.copy_head = CopyHead(int(config["d_model"]), int(config["retrieved_songs"]),
                                      int(config["eos_token_id"]))
            self.copy_head.load_state_dict({k.removeprefix("copy_head."): v for k, v in weights.items()
                                            if k.startswith("copy_head.")})
            self.copy_head.eval()
        self.seed_positions = weights.get("seed_position.weight")
        self.pad_token_id = int(config.get("pad_token_id") or 0)

    def _heads(self, t: torch.Tensor) -> torch.Tensor:
        return t.view(t.shape[0], t.shape[1], self.heads, self.d_kv).transpose(1, 2)

    def _attention(self, prefix: str, x: torch.Tensor, keys: torch.Tensor, values: torch.Tensor,
                   bias: torch.Tensor) -> torch.Tensor:
        """Attention of ``x`` (batch, length, d_model) over keys and values already split into heads."""
        attention = (self._heads(F.linear(x, self.w[f"{prefix}.q.weight"])) @ keys.transpose(-1, -2) + bias).softmax(-1)
        out = (attention @ values).transpose(1, 2).reshape(x.shape[0], x.shape[1], self.heads * self.d_kv)
        return F.linear(out, self.w[f"{prefix}.o.weight"])

    def _norm(self, sublayer: str, x: torch.Tensor) -> torch.Tensor:
        return rms_norm(x, self.w[f"{sublayer}.layer_norm.weight"], self.eps)

    def _self_attention(self, layer: str, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        normed = self._norm(f"{layer}.0", x)
        keys, values = (self._heads(F.linear(normed, self.w[f"{layer}.0.SelfAttention.{n}.weight"])) for n in "kv")
        return self._attention(f"{layer}.0.SelfAttention", normed, keys, values, bias)

    def _feed_forward(self, prefix: str, x: torch.Tensor) -> torch.Tensor:
        w = self.w
        if self.gated:
            hidden = self.activation(F.linear(x, w[f"{prefix}.wi_0.weight"])) * F.linear(x, w[f"{prefix}.wi_1.weight"])
        else:
            hidden = self.activation(F.linear(x, w[f"{prefix}.wi.weight"]))
        return F.linear(hidden, w[f"{prefix}.wo.weight"])

    def _position_bias(self, stack: str, query_length: int, key_length: int) -> torch.Tensor:
        buckets = relative_buckets(query_length, key_length, stack == "encoder", self.num_buckets, self.max_distance)
        table = self.w[f"{stack}.block.0.layer.0.SelfAttention.relative_attention_bias.weight"]
        return table[buckets].permute(2, 0, 1).unsqueeze(0)

    @torch.no_grad()
    def encode(self, input_ids: torch.Tensor, mask: torch.Tensor, title_vectors: torch.Tensor | None = None,
               retrieved: torch.Tensor | None = None, seed_ids: torch.Tensor | None = None) -> "Encoded":
        """What the decoder reads of each title, computed once for all its beams: the encoder's output (with
        TigerT5.input_embeddings' projected title vector first and seed songs after the title) as every layer's
        cross-attention keys and values, and the copy head's keys of the retrieved songs."""
        x = self.embedding(input_ids)
        if title_vectors is not None:
            projected = F.linear(title_vectors.float(), self.w["title_projection.weight"],
                                 self.w["title_projection.bias"])
            x = torch.cat([projected.unsqueeze(1), x], dim=1)
            mask = torch.cat([mask.new_ones((mask.shape[0], 1)), mask], dim=1)
        if seed_ids is not None and seed_ids.shape[1]:
            if self.seed_positions is None:
                raise ValueError("this model was trained without seed songs (targets.seeded_share 0)")
            x, mask = with_seeds(x, mask, seed_ids, self.embedding, self.seed_positions, self.pad_token_id)
        additive = (1.0 - mask[:, None, None, :].float()) * torch.finfo(torch.float32).min
        bias = self._position_bias("encoder", x.shape[1], x.shape[1]) + additive
        for i in range(self.encoder_layers):
            p = f"encoder.block.{i}.layer"
            x = x + self._self_attention(p, x, bias)
            x = x + self._feed_forward(f"{p}.1.DenseReluDense", self._norm(f"{p}.1", x))
        x = rms_norm(x, self.w["encoder.final_layer_norm.weight"], self.eps)
        cross = [tuple(self._heads(F.linear(x, self.w[f"decoder.block.{i}.layer.1.EncDecAttention.{n}.weight"]))
                       for n in "kv") for i in range(self.decoder_layers)]
        copy_keys = (self.copy_head.song_keys(retrieved, self.embedding)
                     if self.copy_head is not None and retrieved is not None else None)
        return Encoded(cross, additive, retrieved, copy_keys)

    @torch.no_grad()
    def next_log_probs(self, encoded: "Encoded", prefix: torch.Tensor) -> torch.Tensor:
        """Log-probabilities of every row's next token given the decoder input so far: ``prefix`` (rows, length)
        holds the same number of consecutive rows for every title (its beams, or its samples)."""
        titles = encoded.mask.shape[0]
        rows, length = prefix.shape
        x = self.embedding(prefix)
        causal = torch.full((length, length), torch.finfo(torch.float32).min).triu(1)
        bias = self._position_bias("decoder", length, length) + causal
        for i, (keys, values) in enumerate(encoded.cross):
            p = f"decoder.block.{i}.layer"
            x = x + self._self_attention(p, x, bias)
            normed = self._norm(f"{p}.1", x)
            # A title's rows side by side as one longer query over that title's encoder output.
            grouped = normed.reshape(titles, -1, normed.shape[-1])
            x = x + self._attention(f"{p}.1.EncDecAttention", grouped, keys, values, encoded.mask).view_as(x)
            x = x + self._feed_forward(f"{p}.2.DenseReluDense", self._norm(f"{p}.2", x))
        states = rms_norm(x[:, -1:], self.w["decoder.final_layer_norm.weight"], self.eps)
        logits = F.linear(states * self.output_scale, self.output)
        if encoded.copy_keys is not None:
            retrieved = encoded.retrieved.repeat_interleave(rows // titles, dim=0)
            logits = self.copy_head(logits, states, prefix, retrieved, self.embedding, encoded.copy_keys)
        return logits[:, -1].float().log_softmax(dim=-1)


@dataclass
class Encoded:
    """:meth:`TigerInference.encode`'s output, one entry per title."""

    cross: list[tuple[torch.Tensor, torch.Tensor]]
    """Per decoder layer, the cross-attention keys and values (titles, heads, source length, d_kv)."""
    mask: torch.Tensor
    """(titles, 1, 1, source length): 0 on real tokens, the float minimum on padding."""
    retrieved: torch.Tensor | None
    copy_keys: torch.Tensor | None


def load_inference(model_dir: Path, title_encoder: str | Path | None = None) -> TigerBundle | None:
    """The model in ``model_dir`` loaded for serving, or None when this module does not cover it (:func:`supports`)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    manifest = read_manifest(model_dir, "train_tiger.py")
    config = read_model_config(model_dir)
    if not supports(config, manifest):
        return None
    try:
        weights = load_file(str(model_dir / "model.safetensors"))
    except (OSError, SafetensorError) as err:
        raise ArtifactError(f"cannot load the model in {model_dir} ({err}): rerun train_tiger.py") from None
    vocab = SemanticIdVocab.load(model_dir / VOCAB_FILE)
    tokenizer = ServingTokenizer(model_dir, int(manifest["summary"]["max_input_length"]))
    return assemble_bundle(TigerInference(config, {k: v.float() for k, v in weights.items()}), tokenizer, vocab,
                           model_dir, manifest, config, title_encoder, plain_torch=True)


def decode(bundle: TigerBundle, titles: list[str], settings: DecodingSettings, constrained: bool = True,
           popularity: dict[str, int] | None = None, progress: bool = False,
           rng: random.Random | None = None, seeds: list[list[str]] | None = None) -> list[Decoded]:
    """genrec.decode.decoding.decode for a bundle from :func:`load_inference` (single mode, always constrained)."""
    if not constrained:
        raise ValueError("the served model always decodes under the trie")
    out: list[Decoded] = []
    for start in tqdm(range(0, len(titles), settings.batch_size), desc="decoding", unit="batch", disable=not progress):
        batch_seeds = list(seeds[start:start + settings.batch_size]) if seeds is not None else None
        out.extend(_decode_batch(bundle, titles[start:start + settings.batch_size], settings, popularity, rng,
                                 batch_seeds))
    return out


def _decode_batch(bundle: TigerBundle, titles: list[str], settings: DecodingSettings,
                  popularity: dict[str, int] | None, rng: random.Random | None,
                  seeds: list[list[str]] | None = None) -> list[Decoded]:
    model, tokenizer, vocab = bundle.model, bundle.tokenizer, bundle.vocab
    num_songs = min(settings.num_songs, len(vocab.by_tokens))
    seed_ids, extra = seed_input(bundle, seeds)
    asked = min(num_songs + extra, len(vocab.by_tokens))
    input_ids, mask = tokenizer.encode(titles)
    vectors = bundle.title_encoder.encode(titles) if bundle.title_encoder else None
    read_seeds = seeds if seed_ids is not None else None  # a model that reads seeds copies from their walk
    retrieved = torch.tensor(bundle.retriever.inputs(titles, read_seeds)) if bundle.retriever else None
    encoded = model.encode(input_ids, mask, vectors, retrieved, seed_ids)
    processor = TrieLogitsProcessor(build_trie(bundle), tokenizer.eos_token_id, tokenizer.pad_token_id, max_songs=1,
                                    min_songs=1, unique=False)
    if settings.sample:
        rows, scores = _sample(model, processor, encoded, asked, vocab.id_length, settings)
    else:
        rows, scores = _beam_search(model, processor, encoded, max(settings.num_beams, asked), vocab.id_length)
    results = []
    for i, (title_rows, title_scores) in enumerate(zip(rows, scores)):
        ids, id_scores, partials = [], [], 0
        for row, score in sorted(zip(title_rows, title_scores), key=lambda pair: -pair[1]):  # samples come unranked
            chunks, partial = split_ids(tokenizer, row, vocab.id_length)
            partials += partial
            ids.extend(chunks)
            id_scores.extend([score] * len(chunks))
        results.append(collect_songs(vocab, ids, id_scores, partials, num_songs, popularity, rng,
                                     set(seeds[i]) if seeds else frozenset()))
    return results


def _beam_search(model: TigerInference, processor: TrieLogitsProcessor, encoded: Encoded, beams: int,
                 id_length: int) -> tuple[list[list[list[int]]], list[list[float]]]:
    """Per title, up to ``beams`` generated rows (start token dropped) and their scores, best first."""
    titles = encoded.mask.shape[0]
    sequences = torch.full((titles, 1), model.start_token, dtype=torch.long)
    scores, width = torch.zeros((titles, 1)), 1
    for _ in range(id_length + 1):  # the ID's tokens, then </s>
        log_probs = processor(sequences, model.next_log_probs(encoded, sequences))
        vocab_size = log_probs.shape[-1]
        candidates = (scores.view(titles, width, 1) + log_probs.view(titles, width, vocab_size)).view(titles, -1)
        top, index = candidates.topk(min(beams, candidates.shape[1]), dim=1)
        parent = (index // vocab_size) + torch.arange(titles)[:, None] * width
        sequences = torch.cat([sequences[parent.flatten()], (index % vocab_size).reshape(-1, 1)], dim=1)
        scores, width = top, top.shape[1]
    rows, kept = sequences[:, 1:].view(titles, width, -1).tolist(), torch.isfinite(scores).tolist()
    scores = scores.tolist()
    # A title with fewer IDs than beams keeps impossible (-inf) beams: they are no songs.
    return ([[r for r, ok in zip(*pair) if ok] for pair in zip(rows, kept)],
            [[x for x, ok in zip(*pair) if ok] for pair in zip(scores, kept)])


def _sample(model: TigerInference, processor: TrieLogitsProcessor, encoded: Encoded, num_songs: int, id_length: int,
            settings: DecodingSettings) -> tuple[list[list[list[int]]], list[list[float]]]:
    """Per title, ``num_songs`` rows drawn independently (torch's global generator: the caller seeds it)."""
    titles = encoded.mask.shape[0]
    sequences = torch.full((titles * num_songs, 1), model.start_token, dtype=torch.long)
    scores = torch.zeros(titles * num_songs)
    for _ in range(id_length + 1):
        logits = processor(sequences, model.next_log_probs(encoded, sequences))
        logits = top_p_filter(logits / settings.temperature, settings.top_p)
        chosen = torch.multinomial(logits.softmax(dim=-1), 1)
        scores += logits.log_softmax(dim=-1).gather(1, chosen).squeeze(1)
        sequences = torch.cat([sequences, chosen], dim=1)
    rows = sequences[:, 1:].view(titles, num_songs, -1).tolist()
    return rows, scores.view(titles, num_songs).tolist()


def top_p_filter(logits: torch.Tensor, top_p: float) -> torch.Tensor:
    """Keep the most likely tokens whose probabilities sum to ``top_p`` (at least one), as transformers does."""
    if top_p >= 1.0:
        return logits
    ordered, order = logits.sort(dim=-1)
    drop = ordered.softmax(dim=-1).cumsum(dim=-1) <= 1 - top_p
    drop[:, -1] = False
    return logits.masked_fill(drop.scatter(1, order, drop), float("-inf"))
