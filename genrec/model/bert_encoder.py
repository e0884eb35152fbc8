"""A sentence-transformers BERT folder (Transformer, mean Pooling, Normalize) run in plain torch.

The generator encodes every new title with the title encoder; loading it through sentence-transformers imports
transformers, most of a one-shot run's start-up. The packaged MiniLM and folders of the same shape are a BERT
encoder whose token vectors are mean-pooled and L2-normalised, which these few lines compute from the folder's
``model.safetensors`` and ``tokenizer.json`` alone. ``tests/test_title_vectors.py`` checks the vectors against
sentence-transformers'. A folder of another shape (CLS pooling, a dense layer, another architecture) is
:func:`supported`'s ``False``: its caller loads it with sentence-transformers instead.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
import torch.nn.functional as F


def _json(path: Path):
    return json.loads(path.read_text(encoding="utf-8"))


def supported(folder: Path) -> bool:
    """Whether ``folder`` is a BERT + mean pooling (+ normalize) sentence-transformers folder with safetensors."""
    try:
        modules = [m["type"].rsplit(".", 1)[-1] for m in _json(folder / "modules.json")]
        pooling = _json(folder / "1_Pooling" / "config.json")
        config = _json(folder / "config.json")
    except (OSError, ValueError, KeyError, TypeError):
        return False
    modes = {key for key, on in pooling.items() if key.startswith("pooling_mode") and on}
    return (modules in (["Transformer", "Pooling"], ["Transformer", "Pooling", "Normalize"])
            and modes == {"pooling_mode_mean_tokens"} and config.get("model_type") == "bert"
            and config.get("hidden_act") == "gelu" and config.get("position_embedding_type", "absolute") == "absolute"
            and (folder / "model.safetensors").is_file() and (folder / "tokenizer.json").is_file())


class BertSentenceEncoder:
    """``encode(texts)`` gives one L2-normalised float32 vector per text, as SentenceTransformer.encode with
    ``normalize_embeddings=True`` would."""

    def __init__(self, folder: str | Path):
        from safetensors.torch import load_file
        from tokenizers import Tokenizer

        folder = Path(folder)
        config = _json(folder / "config.json")
        self.heads = int(config["num_attention_heads"])
        self.layers = int(config["num_hidden_layers"])
        self.eps = float(config["layer_norm_eps"])
        self.dim = int(config["hidden_size"])
        weights = load_file(str(folder / "model.safetensors"))
        self.w = {name.removeprefix("bert."): tensor.float() for name, tensor in weights.items()}
        settings_file = folder / "sentence_bert_config.json"
        settings = _json(settings_file) if settings_file.is_file() else {}
        max_length = min(int(settings.get("max_seq_length", config["max_position_embeddings"])),
                         int(config["max_position_embeddings"]))
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.enable_truncation(max_length)
        self.tokenizer.enable_padding(pad_id=int(config.get("pad_token_id", 0)))

    def _layer_norm(self, x: torch.Tensor, name: str) -> torch.Tensor:
        return F.layer_norm(x, (self.dim,), self.w[name + ".weight"], self.w[name + ".bias"], self.eps)

    def _linear(self, x: torch.Tensor, name: str) -> torch.Tensor:
        return F.linear(x, self.w[name + ".weight"], self.w[name + ".bias"])

    @torch.no_grad()
    def encode(self, texts: list[str], batch_size: int = 256) -> torch.Tensor:
        """(len(texts), dim) float32, in the order given."""
        out = [self._encode_batch(texts[i:i + batch_size]) for i in range(0, len(texts), batch_size)]
        return torch.cat(out) if out else torch.zeros((0, self.dim))

    def _encode_batch(self, texts: list[str]) -> torch.Tensor:
        encodings = self.tokenizer.encode_batch(texts)
        ids = torch.tensor([e.ids for e in encodings])
        mask = torch.tensor([e.attention_mask for e in encodings], dtype=torch.float32)
        batch, length = ids.shape
        w = self.w
        x = (w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][:length]
             + w["embeddings.token_type_embeddings.weight"][0])
        x = self._layer_norm(x, "embeddings.LayerNorm")
        additive = (1.0 - mask)[:, None, None, :] * torch.finfo(torch.float32).min
        head_dim = self.dim // self.heads
        for i in range(self.layers):
            p = f"encoder.layer.{i}."

            def heads(t: torch.Tensor) -> torch.Tensor:
                return t.view(batch, length, self.heads, head_dim).transpose(1, 2)

            q, k, v = (heads(self._linear(x, p + f"attention.self.{n}")) for n in ("query", "key", "value"))
            attention = (q @ k.transpose(-1, -2) / math.sqrt(head_dim) + additive).softmax(dim=-1)
            context = (attention @ v).transpose(1, 2).reshape(batch, length, self.dim)
            attended = self._linear(context, p + "attention.output.dense")
            x = self._layer_norm(attended + x, p + "attention.output.LayerNorm")
            hidden = F.gelu(self._linear(x, p + "intermediate.dense"))
            x = self._layer_norm(self._linear(hidden, p + "output.dense") + x, p + "output.LayerNorm")
        pooled = (x * mask[:, :, None]).sum(dim=1) / mask.sum(dim=1, keepdim=True).clamp_min(1e-9)
        return F.normalize(pooled, p=2, dim=1)
