"""One configuration module for every stage of the pipeline: the option groups, their rules, reading and saving.

Each group is a dataclass; every field can be set on the command line as ``--group.field value`` or in a
YAML/JSON file given with ``--config FILE`` (command line wins over file, file over defaults). A script's
``--help`` lists the groups that script reads; ``docs/options.md`` lists them all (``python
-m genrec.options_doc`` writes it from this module).

Importing this module has no side effects: it defines the groups, the rules that :func:`validate` applies,
the renamed and removed option names (:data:`RENAMED`, :data:`REMOVED`), and :func:`save_config` /
:func:`load_config`, which write and read the resolved config kept beside a run's artifacts.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field


@dataclass
class RunConfig:
    """Where artifacts go, the seed, the device."""

    output_dir: str = "outputs"
    """Folder for corpus files, semantic IDs, reports and evaluation results."""
    model_dir: str = "models"
    """Folder for trained quantizers and the T5 model (--model)."""
    seed: int = 42
    """Seed for every random choice (sampling, initialisation, shuffling) (--seed)."""
    device: str = "auto"
    """'auto' (GPU when present, for training, decoding and faiss), 'cpu' or 'cuda'."""


@dataclass
class DataConfig:
    """The four input files (CSV or TSV by extension, UTF-8 with or without BOM, .gz accepted) and their columns."""

    song_vector_file: str = "data/demo/song_vectors.csv"
    """Song vectors: header row, first column song id, then input_dim floats."""
    playlist_info_file: str = "data/demo/gen_playlist_info.csv"
    """Playlist info: playlist id and title."""
    playlist_songs_file: str = "data/demo/gen_playlist_song.csv"
    """Playlist-song rows: playlist id and song id, one row per song, in playlist order."""
    song_info_file: str = "data/demo/gen_song_info.csv"
    """Song info: song id, song name, singer name."""
    split_file: str = "data/demo/playlist_split.csv"
    """Playlist split written by prepare_data.py (playlist_id, split); a hash split is used when absent."""
    input_dim: int = 100
    """Width of the song vectors (an import learns vectors of this width)."""
    playlist_id_column: str = "glid"
    """Playlist id column in the playlist info file."""
    title_column: str = "listname"
    """Title column in the playlist info file."""
    membership_playlist_column: str = "special_gid"
    """Playlist id column in the playlist-song file."""
    song_id_column: str = "mixsongid"
    """Song id column in the playlist-song file and the song info file."""
    song_name_column: str = "songname"
    """Song name column in the song info file."""
    singer_column: str = "singername"
    """Singer column in the song info file."""


@dataclass
class SplitConfig:
    """How playlists are divided into train / val / test (a stable hash of playlist id and seed)."""

    val_ratio: float = 0.01
    """Share of playlists held out for validation (raised to reach min_eval_playlists)."""
    test_ratio: float = 0.01
    """Share of playlists held out for testing (raised to reach min_eval_playlists)."""
    min_eval_playlists: int = 300
    """Val and test each get at least this many playlists when the data allows it (at most a tenth each)."""


@dataclass
class PrepareConfig:
    """Stage 0: where the four input files come from."""

    source: str = "demo"
    """'demo' (generated), 'mpd' (Spotify MPD slice files) or 'csv' (the input schema's tables) (--source)."""
    input: str = ""
    """Input folder for source mpd or csv (--input)."""
    output: str = "data/demo"
    """Folder that receives the four input files, the split and a config.yaml (for mpd/csv, left at
    data/demo it becomes data/<input folder name>; artifacts then go to outputs/<name>, models/<name>) (--output)."""
    demo_songs: int = 2000
    """Demo data: number of songs."""
    demo_playlists: int = 3000
    """Demo data: number of playlists."""
    min_playlist_songs: int = 5
    """Import: playlists with fewer distinct songs are dropped."""
    min_song_playlists: int = 5
    """Import: songs in fewer training playlists leave the catalogue."""
    item2vec_workers: int = 0
    """Import: item2vec training threads (0: all cores; 1 gives bit-identical vectors on every rerun)."""


@dataclass
class IdsConfig:
    """Stage 1: the shape of a semantic ID, whichever quantizer makes it."""

    levels: int = 3
    """Residual levels: codes per semantic ID (a suffix token may follow to tell colliding songs apart)."""
    codebook_size: int = 32
    """Codes per level (RQ-KMeans: faiss wants about 39 songs per code)."""


@dataclass
class RQKMeansConfig:
    """Stage 1, train_rq_kmeans.py: residual k-means with faiss."""

    niter: int = 25
    """k-means iterations per level."""


@dataclass
class RQVAEConfig:
    """Stage 1, train_rqvae.py: an MLP autoencoder whose latent is quantised by residual codebooks."""

    hidden_sizes: list[int] = field(default_factory=lambda: [256, 128])
    """Encoder hidden layer widths (the decoder mirrors them)."""
    latent_dim: int = 32
    """Width of the quantised latent."""
    learning_rate: float = 2e-3
    """AdamW learning rate."""
    batch_size: int = 128
    """Songs per batch."""
    epochs: int = 200
    """Maximum training epochs."""
    patience: int = 30
    """Stop after this many epochs without validation improvement."""


@dataclass
class CorpusConfig:
    """Stage 2: playlist titles paired with semantic-ID token targets."""

    collision_strategy: str = "suffix"
    """'suffix': songs sharing a code tuple get an extra 0, 1, 2, ... token; 'cluster': they share one ID."""
    target_mode: str = "single"
    """'single': one target song per example (pooled per title); 'sequence': a playlist's songs' IDs in order."""
    max_target_length: int = 256
    """Sequence mode: target tokens per playlist, truncated at a song boundary."""
    title_script: str = ""
    """Chinese titles: '' keeps them as written; 'simplified' or 'traditional' folds both scripts into one
    (OpenCC) in what the model, title kNN and the prompt read, so "夏日海边" finds "夏日海邊" playlists."""


@dataclass
class NetworkConfig:
    """Stage 3: the T5's shape and what it reads besides the title's tokens."""

    pretrained: str = ""
    """Local folder of a pretrained Hugging Face T5 to fine-tune; empty builds one from the fields below."""
    d_model: int = 128
    """Model width."""
    num_layers: int = 2
    """Encoder layers."""
    num_decoder_layers: int = 2
    """Decoder layers."""
    num_heads: int = 4
    """Attention heads."""
    d_kv: int = 32
    """Size of each attention head."""
    d_ff: int = 256
    """Feed-forward width."""
    dropout: float = 0.1
    """Dropout rate."""
    text_vocab_size: int = 2000
    """Text tokenizer vocabulary, trained from the training titles."""
    max_input_length: int = 32
    """Title tokens kept (longer titles are truncated and counted in the log)."""
    title_encoder: str = ""
    """Also feed each title's vector from a frozen sentence encoder: 'minilm' (packaged, offline, English) or a
    local sentence-transformers folder; empty: title tokens only."""


@dataclass
class TrainConfig:
    """Stage 3: the training loop (Hugging Face Seq2SeqTrainer; torchrun for several GPUs)."""

    batch_size: int = 256
    """Examples per device per step."""
    gradient_accumulation_steps: int = 1
    """Steps accumulated before each optimizer update (a larger batch in the same memory)."""
    learning_rate: float = 2e-3
    """Peak learning rate (AdamW, linear warm-up then decay)."""
    warmup_ratio: float = 0.05
    """Share of steps spent warming up the learning rate."""
    epochs: float = 30.0
    """Training epochs (an epoch is one pass over each title's pooled targets; see presets/ for real data)."""
    patience: int = 3
    """Stop after this many validations without a lower validation loss."""
    eval_steps: int = 0
    """Validate and checkpoint every this many optimizer steps (0: once per epoch)."""
    val_loss_examples: int = 20000
    """Validation loss uses at most this many (title, target) examples (a fixed seeded sample)."""
    mixed_precision: str = "auto"
    """'auto' (bf16/fp16 on GPU, none on CPU), 'no', 'fp16' or 'bf16'."""
    resume: bool = False
    """Continue from the last checkpoint in <model_dir>/tiger_checkpoints."""
    max_steps: int = 0
    """Stop after this many optimizer steps (0: run the epochs)."""
    max_minutes: float = 0.0
    """Stop after this many minutes of wall time (0: no limit), keeping the best checkpoint so far. Where it
    stops depends on the machine's speed: use max_steps for a reproducible run."""


@dataclass
class TargetsConfig:
    """Stage 3, single mode: what each title is taught to write (pooled soft targets per distinct title)."""

    paths_per_title: int = 0
    """Walk the ID paths of each title's this many top-scored target songs once per epoch (its weight split
    evenly), so every song a title should recommend is trained to its last ID level each epoch; 0: sample one
    path per 16 (title, song) pairs in proportion to the songs' shares."""
    sharpening: float = 1.0
    """Raise each song's count under a title to this power before taking shares (1: the exact (title, song)
    objective; above 1 concentrates learning on the songs a title's playlists agree on)."""
    neighbour_weight: float = 0.0
    """Also credit each training title with title kNN's votes from playlists of other, similar titles, times
    this weight, so rare and unseen titles get what similar titles share (genrec.train.neighbour_targets);
    0: own playlists only."""
    cooccurrence_weight: float = 0.0
    """Also walk each title's target scores one step song -> training playlist -> song and add the walk's top
    songs at this weight times the title's total score, so a title also learns what its songs' playlists
    share; 0: off."""
    seeded_share: float = 0.0
    """Also train continuation examples from this share of the training playlists (a seeded draw per playlist):
    the title and seed songs of a RecSys Challenge category it is long enough for in, its other songs out, so the
    model reads seed songs (genrec.train.seeded_examples); 0: titles only."""


@dataclass
class RetrievalConfig:
    """Stage 3: give the model title kNN's songs for the title, which a copy head can write out."""

    songs: int = 0
    """Feed the model title kNN's top this many songs for the title, and let a copy head write them out ID
    token by ID token (genrec.model.copy_head; single mode only); 0: the title alone."""
    walk_weight: float = 0.0
    """Retrieve kNN's songs after one step of the co-occurrence walk at this weight, so the list also holds
    what kNN's songs' playlists agree on; 0: kNN's list as it is."""
    vector_weight: float = 0.0
    """The retriever scores title similarity as (1 - this) x TF-IDF cosine + this x the title_encoder vectors'
    cosine (with network.title_encoder; without one, a warning and TF-IDF alone); 0: TF-IDF alone."""
    title_dropout: float = 0.0
    """Hide the title (its tokens and vector) from this share of each training batch, so the model also learns
    to write a playlist from its retrieved songs alone; validation and inference always read the title."""


@dataclass
class DecodeConfig:
    """How titles are decoded into songs: the same settings for the evaluation, the generator and the benches."""

    num_beams: int = 50
    """Beam width (single mode; raised to the number of songs asked; sequence mode decodes greedily)."""
    sample: bool = False
    """Sample instead of beam search (results then depend on the seed)."""
    temperature: float = 1.0
    """Sampling temperature."""
    top_p: float = 1.0
    """Nucleus sampling threshold."""
    batch_size: int = 16
    """Titles decoded per batch."""


@dataclass
class EvalConfig:
    """Stage 4: measuring the model and the baselines on held-out playlists."""

    num_songs: int = 100
    """Songs recommended per playlist (--num-songs in evaluate_tiger.py)."""
    k_values: list[int] = field(default_factory=lambda: [10, 50, 100])
    """Cut-offs for Recall@K and NDCG@K."""
    unconstrained: bool = True
    """Also decode without the trie (system model_unconstrained) to measure the share of invalid IDs."""
    max_playlists: int = 0
    """Evaluate at most this many test playlists (0: all)."""
    val_playlists: int = 500
    """Validation playlists used to tune title kNN and the hybrid's fusion weight (0: all)."""
    playlist_info_file: str = ""
    """Evaluate on another playlist info file (input schema) instead of the test split."""
    playlist_songs_file: str = ""
    """Playlist-song rows for playlist_info_file."""


@dataclass
class GenerateConfig:
    """Stage 5: turning titles into playlists."""

    title: str = ""
    """Generate for this one title and exit (--title)."""
    input: str = ""
    """File with one title per line: batch mode (--input)."""
    output: str = ""
    """JSON Lines file that receives the batch playlists (--output)."""
    json: bool = False
    """Print machine-readable JSON (--json)."""
    num_songs: int = 20
    """Songs per playlist (--num-songs)."""
    system: str = ""
    """'' (the bundle's default: the best system on the validation split), 'model' (the T5's ranking), 'hybrid'
    (fused with title kNN's or the retrieved list, as evaluated), 'retrieved' (a retrieval model's list) or 'knn'
    (title kNN) (--system)."""


@dataclass
class Config:
    """Every group, as the scripts see them."""

    run: RunConfig = field(default_factory=RunConfig)
    data: DataConfig = field(default_factory=DataConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
    prepare: PrepareConfig = field(default_factory=PrepareConfig)
    ids: IdsConfig = field(default_factory=IdsConfig)
    rqkmeans: RQKMeansConfig = field(default_factory=RQKMeansConfig)
    rqvae: RQVAEConfig = field(default_factory=RQVAEConfig)
    corpus: CorpusConfig = field(default_factory=CorpusConfig)
    network: NetworkConfig = field(default_factory=NetworkConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    targets: TargetsConfig = field(default_factory=TargetsConfig)
    retrieval: RetrievalConfig = field(default_factory=RetrievalConfig)
    decode: DecodeConfig = field(default_factory=DecodeConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    generate: GenerateConfig = field(default_factory=GenerateConfig)


GROUPS = tuple(f.name for f in dataclasses.fields(Config))
"""Group names, in the order --help and docs/options.md list them."""

# Validation rules, kept beside the fields they govern; validate() applies them after parsing.
CHOICES = {
    "run.device": ("auto", "cpu", "cuda"),
    "prepare.source": ("demo", "mpd", "csv"),
    "corpus.collision_strategy": ("suffix", "cluster"),
    "corpus.target_mode": ("single", "sequence"),
    "corpus.title_script": ("", "simplified", "traditional"),
    "train.mixed_precision": ("auto", "no", "fp16", "bf16"),
    "generate.system": ("", "model", "hybrid", "retrieved", "knn"),
}
"""Fields that accept only the listed values."""

MAY_BE_ZERO = {"run.seed", "eval.max_playlists", "eval.val_playlists",
               "split.min_eval_playlists", "train.max_steps", "train.eval_steps", "retrieval.songs",
               "targets.paths_per_title", "prepare.item2vec_workers"}
"""Integer fields for which 0 is meaningful; every other integer must be at least 1."""

UNIT_INTERVAL = {"split.val_ratio", "split.test_ratio", "network.dropout", "retrieval.title_dropout",
                 "retrieval.vector_weight", "train.warmup_ratio", "decode.top_p", "targets.seeded_share"}
"""Float fields that must lie in [0, 1]."""

POSITIVE_FLOATS = {"rqvae.learning_rate", "train.learning_rate", "train.epochs", "targets.sharpening",
                   "decode.temperature"}
"""Float fields that must be greater than 0."""

NON_NEGATIVE_FLOATS = {"targets.neighbour_weight", "targets.cooccurrence_weight", "retrieval.walk_weight",
                       "train.max_minutes"}
"""Float fields that must be at least 0."""

MAXIMA = {"run.seed": 2 ** 32 - 1}
"""Integer fields with an upper bound (the seed: numpy's legacy seeding, which the Hugging Face trainer calls,
takes at most 32 bits)."""

NON_EMPTY_LISTS = {"eval.k_values"}
"""List fields that need at least one value."""

_TIGER_MOVES = {
    **{f: f"network.{f}" for f in ("d_model", "num_layers", "num_decoder_layers", "num_heads", "d_kv", "d_ff",
                                   "dropout", "text_vocab_size", "max_input_length", "title_encoder")},
    **{f: f"train.{f}" for f in ("batch_size", "gradient_accumulation_steps", "learning_rate", "warmup_ratio",
                                 "epochs", "patience", "eval_steps", "val_loss_examples", "mixed_precision",
                                 "resume", "max_steps", "max_minutes")},
    "model_name": "network.pretrained", "paths_per_title": "targets.paths_per_title",
    "target_sharpening": "targets.sharpening", "neighbour_weight": "targets.neighbour_weight",
    "cooccurrence_weight": "targets.cooccurrence_weight", "retrieved_songs": "retrieval.songs",
    "retrieval_walk_weight": "retrieval.walk_weight", "retrieval_vector_weight": "retrieval.vector_weight",
    "title_dropout": "retrieval.title_dropout",
}
RENAMED = {
    **{f"tiger.{old}": new for old, new in _TIGER_MOVES.items()},
    "rqkmeans.levels": "ids.levels", "rqvae.levels": "ids.levels",
    "rqkmeans.vocab_size": "ids.codebook_size", "rqvae.vocab_size": "ids.codebook_size",
    "data.membership_song_column": "data.song_id_column",
    "eval.num_beams": "decode.num_beams", "generate.num_beams": "decode.num_beams",
    "eval.do_sample": "decode.sample", "generate.do_sample": "decode.sample",
    "eval.temperature": "decode.temperature", "generate.temperature": "decode.temperature",
    "eval.top_p": "decode.top_p", "generate.top_p": "decode.top_p", "eval.batch_size": "decode.batch_size",
    "generate.hybrid": "generate.system (hybrid)",
}
"""Old option names (before the option groups were split) and the options that replaced them."""

_LOST = "its other settings lost on validation (docs/experiments/)"
_FIXED = "now a fixed setting, no preset changed it"
REMOVED = {
    "run.log_dir": "logs always go to logs/ in the working folder",
    "split.max_eval_ratio": _FIXED,
    "prepare.demo_tastes": _FIXED, "prepare.item2vec_window": _FIXED, "prepare.item2vec_epochs": _FIXED,
    "prepare.item2vec_negative": _FIXED, "prepare.item2vec_min_count": _FIXED,
    "rqkmeans.normalize": _FIXED, "rqkmeans.use_gpu": "GPU faiss is used where run.device allows a GPU",
    "rqkmeans.max_points_per_level": "each level trains on every song; " + _FIXED,
    "rqvae.commitment_cost": _FIXED, "rqvae.weight_decay": _FIXED, "rqvae.dead_code_epochs": _FIXED,
    "rqvae.val_ratio": _FIXED, "rqvae.warmup_epochs": _FIXED, "rqvae.kmeans_niter": _FIXED,
    "rqvae.codebook_init": "random codebooks collapsed; k-means initialisation is always used",
    "corpus.token_style": _LOST,
    "tiger.weight_decay": _FIXED, "tiger.max_grad_norm": _FIXED, "tiger.val_generation_sample": _FIXED,
    "tiger.dataloader_workers": "building batches in worker processes was slower (docs/experiments/)",
    "tiger.pooled_targets": "single mode always trains pooled targets",
    "tiger.pairs_per_example": _FIXED, "tiger.neighbour_songs": _FIXED, "tiger.retrieval_folds": _FIXED,
    "tiger.retrieval_use": "retrieved songs are always copied by the copy head; " + _LOST,
    "tiger.copy_rank_prior": _LOST,
    "eval.sequence_num_beams": "sequence mode decodes greedily", "eval.unique": "a playlist never repeats a song",
}
"""Options that no longer exist, and why."""


class ConfigError(ValueError):
    """A bad option value or name (genrec.errors.ConfigError is this class)."""


def retired_option(name: str) -> str | None:
    """The one-line error for an old option name ('group.field'), or None for a current one."""
    if name in RENAMED:
        return f"--{name} was renamed: use --{RENAMED[name]}"
    if name in REMOVED:
        return f"--{name} was removed ({REMOVED[name]})"
    group = name.split(".")[0]
    if group == "tiger":
        return f"--{name}: the tiger group was split into network, train, targets and retrieval (docs/options.md)"
    return None


def check_retired(values: dict, where: str) -> None:
    """Refuse old option names in a {group: {field: value}} mapping (a --config file), naming the new ones."""
    for group, fields in values.items():
        if not isinstance(fields, dict):
            continue
        for name in fields:
            message = retired_option(f"{group}.{name}")
            if message:
                raise ConfigError(f"{where}: {message.replace('--', '', 1)}")


def validate(cfg: Config) -> None:
    """Apply the rules above; raise ConfigError naming the field and the rule."""
    for group in GROUPS:
        for f in dataclasses.fields(getattr(cfg, group)):
            _check_field(f"{group}.{f.name}", getattr(getattr(cfg, group), f.name))
    if cfg.split.val_ratio + cfg.split.test_ratio >= 1:
        raise ConfigError("split.val_ratio + split.test_ratio must be below 1 "
                          f"(got {cfg.split.val_ratio} + {cfg.split.test_ratio})")
    if max(cfg.eval.k_values) > cfg.eval.num_songs:
        raise ConfigError(f"eval.k_values {cfg.eval.k_values} go beyond eval.num_songs={cfg.eval.num_songs}")


def _check_field(name: str, value) -> None:
    if name in CHOICES and value not in CHOICES[name]:
        raise ConfigError(f"{name} must be one of {', '.join(map(repr, CHOICES[name]))} (got {value!r})")
    if isinstance(value, bool):
        return
    if isinstance(value, int):
        floor = 0 if name in MAY_BE_ZERO else 1
        if value < floor:
            raise ConfigError(f"{name} must be at least {floor} (got {value})")
        if value > MAXIMA.get(name, value):
            raise ConfigError(f"{name} must be at most {MAXIMA[name]} (got {value})")
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ConfigError(f"{name} must be a finite number (got {value})")
        if name in UNIT_INTERVAL and not 0 <= value <= 1:
            raise ConfigError(f"{name} must be between 0 and 1 (got {value})")
        if name in POSITIVE_FLOATS and value <= 0:
            raise ConfigError(f"{name} must be greater than 0 (got {value})")
        if name in NON_NEGATIVE_FLOATS and value < 0:
            raise ConfigError(f"{name} must be at least 0 (got {value})")
    elif isinstance(value, list) and not value and name in NON_EMPTY_LISTS:
        raise ConfigError(f"{name} needs at least one value (got [])")
    elif isinstance(value, list) and value and all(isinstance(v, int) for v in value):
        if min(value) < 1:
            raise ConfigError(f"{name} values must be at least 1 (got {value})")


def config_as_dict(cfg: Config, groups=None) -> dict:
    """The config as {group: {field: value}}, all groups or the named ones (what manifests record)."""
    full = dataclasses.asdict(cfg)
    return full if groups is None else {g: full[g] for g in groups}


def from_dict(values: dict) -> Config:
    """A Config from {group: {field: value}}, missing groups and fields at their defaults."""
    groups = {f.name: f.default_factory for f in dataclasses.fields(Config)}
    return Config(**{name: factory(**values.get(name, {})) for name, factory in groups.items()})


def save_config(cfg: Config, path: str | os.PathLike) -> None:
    """Write the resolved config beside a run's artifacts, in the format --config reads back."""
    import yaml
    text = yaml.safe_dump(config_as_dict(cfg), allow_unicode=True, sort_keys=False)
    staged = f"{path}.tmp"  # written whole, then renamed: a reader never sees half a file
    with open(staged, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(staged, path)


def load_config(path: str | os.PathLike) -> Config:
    """Read a config saved by :func:`save_config` (or any --config file), refusing old option names."""
    import yaml
    with open(path, encoding="utf-8") as handle:
        values = yaml.safe_load(handle) or {}
    check_retired(values, str(path))
    return from_dict(values)


def field_docs() -> dict[str, tuple[str, list[tuple[str, str, object, str]]]]:
    """{group: (the group's docstring, [(field, type, default, docstring), ...])}, read from this module's source
    (the attribute docstrings under each field), for --help and docs/options.md."""
    import ast
    import inspect
    import sys

    tree = ast.parse(inspect.getsource(sys.modules[__name__]))
    classes = {node.name: node for node in tree.body if isinstance(node, ast.ClassDef)}
    defaults = Config()
    out = {}
    for group_field in dataclasses.fields(Config):
        group = getattr(defaults, group_field.name)
        node = classes[type(group).__name__]
        docs, last = {}, None
        for stmt in node.body:
            if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
                last = stmt.target.id
            elif isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant) and last:
                docs[last] = " ".join(str(stmt.value.value).split())
                last = None
        rows = [(f.name, str(f.type), getattr(group, f.name), docs.get(f.name, "")) for f in dataclasses.fields(group)]
        out[group_field.name] = (" ".join((type(group).__doc__ or "").split()), rows)
    return out
