"""The T5 model: building it, saving the final one atomically, and loading it for later stages.

``models/tiger_final/`` holds the weights and tokenizer (``from_pretrained`` loads both), a copy of
the semantic-ID vocabulary the model was trained with, the config it was trained with
(``config.yaml``, readable by ``--config``), ``manifest.json``, and with ``retrieval.songs``
``retrieval.json`` (genrec.model.retrieval), and when the retriever mixes in title vectors ``retrieval_title_vectors.npz``
(its training titles' vectors, genrec.model.title_vectors.TitleVectorEncoder.save, so loading does not encode them
again; without it they are encoded). The decoder starts from the pad
token (T5's default, id 0); an ID's tokens follow in order, then ``</s>``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from safetensors import SafetensorError
from transformers import AutoTokenizer, PreTrainedTokenizerBase, T5Config, T5ForConditionalGeneration

from config import Config, NetworkConfig

from genrec.artifacts import atomic_path, build_manifest, read_manifest, sha256_of, write_json
from config import config_as_dict, save_config
from genrec.model.copy_head import CopyHead
from genrec.errors import ArtifactError
from genrec.corpus.id_tokens import VOCAB_FILE, SemanticIdVocab
from genrec.model.loaded import TITLE_VECTORS_FILE, TigerBundle, assemble_bundle, resolve_device
from genrec.model.retrieval import RetrievalSetup, SongRetriever
from genrec.model.seed_songs import with_seeds
from genrec.model.title_vectors import TitleVectorEncoder
from genrec.model.tokenizer import check_id_tokens, check_pretrained_folder

log = logging.getLogger(__name__)

FINAL_DIR = "tiger_final"
CHECKPOINT_DIR = "tiger_checkpoints"


def tiger_final_dir(cfg: Config) -> Path:
    return Path(cfg.run.model_dir) / FINAL_DIR


def checkpoint_dir(cfg: Config) -> Path:
    return Path(cfg.run.model_dir) / CHECKPOINT_DIR


class TigerT5(T5ForConditionalGeneration):
    """T5 that may read more than the title's tokens; without the two config fields below, a plain T5.

    - ``config.title_vector_dim``: one sentence vector per title (``network.title_encoder``,
      genrec.model.title_vectors), through a learned projection, as an extra encoder token.
    - ``config.retrieved_songs``: title kNN's top songs (genrec.model.retrieval), which a copy head
      (genrec.model.copy_head) lets the decoder write out token by token; the logits are then log-probabilities.
    - ``config.seed_songs``: seed songs of the playlist to continue, one encoder token each
      (genrec.model.seed_songs).

    Encoder input order: [title vector] [title tokens] [seed songs] [padding], so the title vector sits at a
    fixed position.
    """

    def __init__(self, config: T5Config):
        super().__init__(config)
        dim = getattr(config, "title_vector_dim", None)
        self.title_projection = torch.nn.Linear(dim, config.d_model) if dim else None
        slots = getattr(config, "retrieved_songs", 0) or 0
        self.copy_head = CopyHead(config.d_model, slots, config.eos_token_id) if slots else None
        seeds = getattr(config, "seed_songs", 0) or 0
        self.seed_position = torch.nn.Embedding(seeds, config.d_model) if seeds else None

    def input_embeddings(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                         title_vectors: torch.Tensor | None = None,
                         retrieved_ids: torch.Tensor | None = None,
                         seed_ids: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Encoder input embeddings and mask with the title vector (see the class docstring) first and the seed
        songs last; retrieved songs go to the copy head, not the encoder."""
        tokens = self.get_input_embeddings()(input_ids)
        parts, masks = [tokens], [attention_mask]
        if title_vectors is not None:
            parts.insert(0, self.title_projection(title_vectors.to(tokens.dtype)).unsqueeze(1))
            masks.insert(0, attention_mask.new_ones((attention_mask.shape[0], 1)))
        embeds, mask = torch.cat(parts, dim=1), torch.cat(masks, dim=1)
        if seed_ids is None or not seed_ids.shape[1]:
            return embeds, mask
        if self.seed_position is None:
            raise ValueError("this model was trained without seed songs (targets.seeded_share 0)")
        return with_seeds(embeds, mask, seed_ids, self.get_input_embeddings(), self.seed_position.weight,
                          self.config.pad_token_id)

    def forward(self, input_ids=None, attention_mask=None, title_vectors=None, retrieved_ids=None,
                decoder_prefix_ids=None, seed_ids=None, **kwargs):
        """T5's forward; ``retrieved_ids`` (batch, songs, id_length) feed the encoder and/or the copy head.

        Generation passes the encoder's output instead of input ids (its embeddings came from
        :func:`title_inputs`), and ``decoder_prefix_ids``, the whole decoder input so far, since with a
        cache ``decoder_input_ids`` holds the last token only and the copy head matches whole prefixes.
        """
        if input_ids is not None and (title_vectors is not None or retrieved_ids is not None or seed_ids is not None):
            kwargs["inputs_embeds"], attention_mask = self.input_embeddings(input_ids, attention_mask, title_vectors,
                                                                            retrieved_ids, seed_ids)
            input_ids = None
        if self.copy_head is None or retrieved_ids is None:
            return super().forward(input_ids=input_ids, attention_mask=attention_mask, **kwargs)
        labels = kwargs.pop("labels", None)
        if labels is not None and kwargs.get("decoder_input_ids") is None:
            kwargs["decoder_input_ids"] = self._shift_right(labels)
        out = super().forward(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True, **kwargs)
        prefix = decoder_prefix_ids if decoder_prefix_ids is not None else kwargs["decoder_input_ids"]
        out.logits = self.copy_head(out.logits, out.decoder_hidden_states[-1], prefix, retrieved_ids,
                                    self.get_input_embeddings())
        if labels is not None:
            out.loss = torch.nn.functional.nll_loss(out.logits.flatten(0, 1), labels.flatten(), ignore_index=-100)
        return out

    def prepare_inputs_for_generation(self, input_ids, *args, **kwargs):
        inputs = super().prepare_inputs_for_generation(input_ids, *args, **kwargs)
        if self.copy_head is not None:
            inputs["decoder_prefix_ids"] = input_ids
        return inputs


def build_model(tcfg: NetworkConfig, retrieved_songs: int, tokenizer: PreTrainedTokenizerBase,
                title_vector_dim: int | None = None, title_script: str = "", seed_songs: int = 0) -> TigerT5:
    """A fresh T5 sized by the config, or the pretrained one with its embeddings grown for the ID tokens.

    ``title_script`` is the corpus's (genrec.text.fold_script), kept in the config so prompts are folded alike.
    ``seed_songs``: the most seed songs the model reads (0: none; the key is left out of config.json then, so a
    title-only model's files stay as they were).
    """
    extra = dict(title_vector_dim=title_vector_dim, title_encoder=tcfg.title_encoder or None, title_script=title_script,
                 retrieved_songs=retrieved_songs, **({"seed_songs": seed_songs} if seed_songs else {}))
    if tcfg.pretrained:
        model = TigerT5.from_pretrained(check_pretrained_folder(tcfg.pretrained), local_files_only=True, **extra)
        model.resize_token_embeddings(len(tokenizer))
    else:
        model = TigerT5(T5Config(
            vocab_size=len(tokenizer), d_model=tcfg.d_model, d_kv=tcfg.d_kv, d_ff=tcfg.d_ff,
            num_layers=tcfg.num_layers, num_decoder_layers=tcfg.num_decoder_layers, num_heads=tcfg.num_heads,
            dropout_rate=tcfg.dropout, pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
            decoder_start_token_id=tokenizer.pad_token_id, **extra))
    for target in (model.config, model.generation_config):
        target.pad_token_id = tokenizer.pad_token_id
        target.eos_token_id = tokenizer.eos_token_id
        target.decoder_start_token_id = tokenizer.pad_token_id
    log.info("model: %.2fM parameters%s", model.num_parameters() / 1e6,
             f" (from {tcfg.pretrained})" if tcfg.pretrained else "")
    return model


def save_final(final_dir: Path, model: TigerT5, tokenizer: PreTrainedTokenizerBase,
               vocab_file: Path, cfg: Config, inputs: list[Path], summary: dict,
               retrieval: RetrievalSetup | None = None, title_encoder: TitleVectorEncoder | None = None) -> None:
    """Write the whole folder beside the old one and swap it in, so a crash never leaves half a model."""
    with atomic_path(final_dir) as staged:
        staged.mkdir()
        model.save_pretrained(staged)
        tokenizer.save_pretrained(staged)
        if retrieval is not None:
            retrieval.save(staged)
            if retrieval.params.vector_weight and title_encoder is not None:
                title_encoder.save(staged / TITLE_VECTORS_FILE, retrieval.playlists.titles)
        (staged / VOCAB_FILE).write_bytes(Path(vocab_file).read_bytes())
        save_config(cfg, staged / "config.yaml")
        summary = dict(summary, corpus_vocab=str(vocab_file), vocab_sha256=sha256_of(vocab_file))
        # Only the groups that shape the model: changing evaluation or generation settings must not make it stale.
        manifest = build_manifest(staged, inputs, config_as_dict(cfg, ["data", "corpus", "network", "train", "targets", "retrieval", "run"]), summary)
        manifest["artifact"] = str(final_dir)
        write_json(staged / "manifest.json", manifest)


def title_inputs(model: TigerT5, tokenizer: PreTrainedTokenizerBase, titles: list[str], max_length: int,
                 title_encoder: TitleVectorEncoder | None = None, retriever: SongRetriever | None = None,
                 seed_ids: torch.Tensor | None = None, seeds: list[list[str]] | None = None) -> dict:
    """What generate() takes for these titles: token ids, or embeddings with the extra tokens first (and the
    seed songs last: ``seed_ids``, genrec.model.seed_songs.seed_tensor, of the song ids ``seeds``, which a copy head
    copies the seeds' walk for: genrec.model.retrieval.SongRetriever.inputs)."""
    encoded = tokenizer(titles, padding=True, truncation=True, max_length=max_length,
                        return_tensors="pt").to(model.device)
    if title_encoder is None and retriever is None and seed_ids is None:
        return dict(encoded)
    vectors = title_encoder.encode(titles).to(model.device) if title_encoder else None
    retrieved = torch.tensor(retriever.inputs(titles, seeds), device=model.device) if retriever else None
    seed_ids = seed_ids.to(model.device) if seed_ids is not None else None
    embeds, mask = model.input_embeddings(encoded["input_ids"], encoded["attention_mask"], vectors, retrieved,
                                          seed_ids)
    inputs = {"inputs_embeds": embeds, "attention_mask": mask}
    if model.copy_head is not None:
        inputs["retrieved_ids"] = retrieved
    return inputs


def check_vocab_matches(model_dir: Path, manifest: dict, corpus_vocab: str | Path | None) -> None:
    """Refuse a model trained on other semantic IDs than the corpus now in place."""
    summary = manifest.get("summary", {})
    recorded = summary.get("vocab_sha256")
    if recorded is None or sha256_of(model_dir / VOCAB_FILE) != recorded:
        raise ArtifactError(f"{model_dir / VOCAB_FILE} is missing or changed after training: rerun train_tiger.py")
    current = Path(corpus_vocab or summary.get("corpus_vocab", ""))
    if not current.is_file():
        if corpus_vocab:
            raise ArtifactError(f"{current} does not exist: run prepare_corpus.py first")
        log.warning("cannot check %s against the corpus: %s is absent here", model_dir, current)
        return
    if sha256_of(current) != recorded:
        raise ArtifactError(f"{model_dir} was trained on other semantic IDs than {current} (the corpus was "
                            "rebuilt since): rerun train_tiger.py")


def load_tiger(model_dir: str | Path, device: str = "cpu", corpus_vocab: str | Path | None = None,
               check_corpus: bool = True, title_encoder: str | Path | None = None) -> TigerBundle:
    """Load a model written by train_tiger.py, checked against the current corpus vocabulary.

    ``corpus_vocab`` defaults to the vocabulary file the model was trained from (as recorded); a model bundle,
    whose files its own manifest checks, loads with ``check_corpus`` off. ``title_encoder`` overrides where the
    title encoder the model was trained with is loaded from (a bundle's copy of a local encoder folder).
    """
    model_dir = Path(model_dir)
    manifest = read_manifest(model_dir, "train_tiger.py")
    if check_corpus:
        check_vocab_matches(model_dir, manifest, corpus_vocab)
    vocab = SemanticIdVocab.load(model_dir / VOCAB_FILE)
    try:
        model = TigerT5.from_pretrained(model_dir, local_files_only=True)
        tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    except (OSError, ValueError, SafetensorError) as err:  # SafetensorError: a truncated or corrupt weights file
        raise ArtifactError(f"cannot load the model in {model_dir} ({err}): rerun train_tiger.py") from None
    check_id_tokens(tokenizer, vocab)
    return assemble_bundle(model.to(resolve_device(device)).eval(), tokenizer, vocab, model_dir, manifest,
                           model.config.to_dict(), title_encoder)
