"""One configuration module for every stage of the pipeline.

Each group is a dataclass; every field can be set on the command line as ``--group.field value``
or in a YAML/JSON file given with ``--config FILE`` (command line wins over file, file over
defaults). ``python any_stage.py --help`` lists every field with its default and help text.

Importing this module has no side effects: it only defines dataclasses. Parsing and validation
live in :mod:`genrec.cli`.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class RunConfig:
    """Where artifacts go, and the seed every stage derives its randomness from."""

    output_dir: str = "outputs"
    """Folder for corpus files, semantic IDs, reports and evaluation results."""
    model_dir: str = "models"
    """Folder for trained quantizers and the T5 model."""
    log_dir: str = "logs"
    """Folder for one log file per script."""
    seed: int = 42
    """Seed for every random choice (sampling, initialisation, shuffling)."""
    device: str = "auto"
    """'auto' (GPU when present), 'cpu' or 'cuda'."""


@dataclass
class DataConfig:
    """The four input files (CSV or TSV by extension, UTF-8 with or without BOM, .gz accepted)."""

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
    """Width of the song vectors."""
    playlist_id_column: str = "glid"
    """Playlist id column in the playlist info file."""
    title_column: str = "listname"
    """Title column in the playlist info file."""
    membership_playlist_column: str = "special_gid"
    """Playlist id column in the playlist-song file."""
    membership_song_column: str = "mixsongid"
    """Song id column in the playlist-song file."""
    song_id_column: str = "mixsongid"
    """Song id column in the song info file."""
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
    """Val and test each get at least this many playlists when the data allows it."""
    max_eval_ratio: float = 0.1
    """Upper bound on each of val and test when raising them to min_eval_playlists."""


@dataclass
class PrepareConfig:
    """Stage 0: where the four input files come from."""

    source: str = "demo"
    """'demo' (generated), 'mpd' (Spotify MPD slice files) or 'csv' (the seed's CSV schema)."""
    input: str = ""
    """Input folder for --source mpd or csv."""
    output: str = "data/demo"
    """Folder that receives the four input files, the split and a config.yaml (for mpd/csv, left at
    data/demo it becomes data/<input folder name>; artifacts then go to outputs/<name>, models/<name>)."""
    demo_songs: int = 2000
    """Demo data: number of songs."""
    demo_playlists: int = 3000
    """Demo data: number of playlists."""
    demo_tastes: int = 40
    """Demo data: number of latent tastes that titles reveal and songs follow."""
    min_playlist_songs: int = 5
    """Import: playlists with fewer distinct songs are dropped."""
    min_song_playlists: int = 5
    """Import: songs in fewer training playlists leave the catalogue."""
    item2vec_window: int = 10
    """Item2vec: skip-gram window (songs either side)."""
    item2vec_epochs: int = 10
    """Item2vec: passes over the training playlists."""
    item2vec_negative: int = 5
    """Item2vec: negative samples per positive."""
    item2vec_min_count: int = 1
    """Item2vec: minimum occurrences for a song to get a vector (after the catalogue cut)."""
    item2vec_workers: int = 0
    """Item2vec: training threads (0: all cores; 1 gives bit-identical vectors on every rerun)."""


@dataclass
class SongRQKMeansConfig:
    """Stage 1, method B: residual k-means with faiss."""

    levels: int = 3
    """Number of residual levels (codes per semantic ID before disambiguation)."""
    vocab_size: int = 32
    """Codes per level (faiss wants about 39 songs per code)."""
    niter: int = 25
    """k-means iterations per level."""
    normalize: bool = False
    """L2-normalise song vectors before quantising."""
    max_points_per_level: int = 0
    """Train each level on at most this many points (0: all)."""
    use_gpu: bool = True
    """Use GPU faiss when it is installed and a GPU is present."""


@dataclass
class SongRQVAEConfig:
    """Stage 1, method A: RQ-VAE (MLP encoder/decoder with residual vector quantisation)."""

    levels: int = 3
    """Number of residual quantisation levels."""
    vocab_size: int = 32
    """Codes per level."""
    hidden_sizes: list[int] = field(default_factory=lambda: [256, 128])
    """Encoder hidden layer widths (the decoder mirrors them)."""
    latent_dim: int = 32
    """Width of the quantised latent."""
    commitment_cost: float = 0.25
    """Weight of the commitment term."""
    learning_rate: float = 2e-3
    """AdamW learning rate."""
    weight_decay: float = 1e-4
    """AdamW weight decay (not applied to the codebooks)."""
    batch_size: int = 128
    """Songs per batch."""
    epochs: int = 200
    """Maximum training epochs."""
    patience: int = 30
    """Stop after this many epochs without validation improvement."""
    dead_code_epochs: int = 2
    """Re-seed a code from current residuals when it has been unused for this many epochs (0: never)."""
    val_ratio: float = 0.1
    """Share of songs held out to pick the best checkpoint."""
    warmup_epochs: int = 10
    """Plain autoencoder epochs before the codebooks are initialised (0: none)."""
    codebook_init: str = "kmeans"
    """'kmeans': residual k-means on the warmed-up latents; 'random': Gaussian codes (the collapsing ports' way)."""
    kmeans_niter: int = 20
    """k-means iterations per level for the codebook initialisation."""


@dataclass
class CorpusConfig:
    """Stage 2: playlist titles to semantic-ID token targets."""

    collision_strategy: str = "suffix"
    """'suffix': songs sharing a code tuple get an extra 0, 1, 2, ... token; 'cluster': they share one ID."""
    target_mode: str = "single"
    """'single': one example per (title, song); 'sequence': one example per playlist, its songs' IDs in order."""
    max_target_length: int = 256
    """Sequence mode: target tokens per playlist, truncated at a song boundary."""
    token_style: str = "level"
    """'level': <a_12><b_3> (code carries its level); 'shared': <id_12><id_3> as in the original."""
    title_script: str = ""
    """Chinese titles: '' keeps them as written; 'simplified' or 'traditional' folds both scripts into one
    (OpenCC) in what the model, title kNN and the prompt read, so "夏日海边" finds "夏日海邊" playlists."""


@dataclass
class PlaylistTIGERConfig:
    """Stage 3: the T5 model from title text to semantic-ID tokens."""

    model_name: str = ""
    """Local folder of a pretrained Hugging Face T5 to fine-tune; empty builds one from this config."""
    d_model: int = 128
    """Model width (from-scratch model)."""
    num_layers: int = 2
    """Encoder layers (from-scratch model)."""
    num_decoder_layers: int = 2
    """Decoder layers (from-scratch model)."""
    num_heads: int = 4
    """Attention heads (from-scratch model)."""
    d_kv: int = 32
    """Size of each attention head (from-scratch model)."""
    d_ff: int = 256
    """Feed-forward width (from-scratch model)."""
    dropout: float = 0.1
    """Dropout rate."""
    text_vocab_size: int = 2000
    """Text tokenizer vocabulary trained from the training titles (from-scratch model)."""
    max_input_length: int = 32
    """Title tokens kept (longer titles are truncated and counted in the log)."""
    batch_size: int = 256
    """Examples per device per step."""
    gradient_accumulation_steps: int = 1
    """Steps accumulated before each optimizer update."""
    learning_rate: float = 2e-3
    """Peak learning rate."""
    weight_decay: float = 0.01
    """AdamW weight decay."""
    warmup_ratio: float = 0.05
    """Share of steps spent warming up the learning rate."""
    max_grad_norm: float = 1.0
    """Gradient clipping norm."""
    epochs: float = 30.0
    """Training epochs (with pooled targets an epoch is one example per title and pairs_per_example pairs;
    the demo default finishes in about a minute on a CPU; see presets/ for real data)."""
    patience: int = 3
    """Stop after this many evaluations without validation improvement."""
    val_generation_sample: int = 64
    """Validation playlists scored by a cheap generation metric each epoch."""
    mixed_precision: str = "auto"
    """'auto' (bf16/fp16 on GPU, none on CPU), 'no', 'fp16' or 'bf16'."""
    resume: bool = False
    """Continue from the last checkpoint in models/tiger_checkpoints."""
    max_steps: int = 0
    """Stop after this many optimizer steps (0: run tiger.epochs)."""
    dataloader_workers: int = 0
    """Processes that build training batches beside the training loop (0: the loop builds them). Each batch then
    crosses processes, which can cost more than building it: measure with bench/batches.py first."""
    max_minutes: float = 0.0
    """Stop training after this many minutes of wall time (0: no limit), validating and keeping the best
    checkpoint so far. A budget for a rented machine; where it stops depends on the machine's speed."""
    eval_steps: int = 0
    """Validate and checkpoint every this many optimizer steps (0: once per epoch)."""
    val_loss_examples: int = 20000
    """Validation loss uses at most this many (title, target) examples (a fixed seeded sample)."""
    title_encoder: str = ""
    """Also feed each title's vector from a frozen sentence encoder: 'minilm' (packaged, offline, English) or a
    local sentence-transformers folder; empty: title tokens only."""
    pooled_targets: bool = True
    """Single mode: train on each distinct title's pooled song distribution (soft targets along sampled
    ID paths): the same optimum as one example per (title, song) pair, in far fewer steps."""
    pairs_per_example: int = 16
    """Pooled targets: one training example per this many (title, song) pairs of a title (at least one), its ID path
    sampled in proportion to the song's share of the title's target."""
    paths_per_title: int = 0
    """Pooled targets: instead of sampling paths, walk the ID paths of each title's this many top-scored target songs
    once per epoch (its weight split evenly), so the deep ID levels of every song a title should recommend are
    trained every epoch; an epoch grows to about titles x this many examples. 0: sample (pairs_per_example)."""
    target_sharpening: float = 1.0
    """Pooled targets: raise each song's count under a title to this power before taking shares (1: the exact
    (title, song) objective; above 1 concentrates learning on the songs a title's playlists agree on)."""
    neighbour_weight: float = 0.0
    """Pooled targets: also credit each training title with title kNN's votes from playlists of other, similar
    titles (kNN tuned on val, as the baseline), times this weight, beside its own playlists' song counts, so
    rare and unseen titles get what similar titles share (genrec.train.neighbour_targets); 0: own playlists only.
    Single mode with pooled targets only (ignored otherwise, with a warning)."""
    neighbour_songs: int = 200
    """With neighbour_weight / cooccurrence_weight: keep each title's top this many songs by neighbour vote, and
    by walk score."""
    cooccurrence_weight: float = 0.0
    """Pooled targets: also walk each training title's target scores one step song -> training playlist -> song
    (genrec.train.neighbour_targets.CooccurrenceWalk) and add the walk's top songs, normalised, at this weight times the
    title's total score, so a title also learns the songs its songs' playlists share; 0: off. Single mode with
    pooled targets only (ignored otherwise, with a warning)."""
    retrieved_songs: int = 0
    """Retrieval-augmented input: also feed the model title kNN's top this many songs for the title (each one
    encoder token: its ID tokens' embeddings summed, plus a rank embedding); 0: the title alone."""
    retrieval_use: str = "input"
    """With retrieved_songs, how the model uses them: "input" (encoder tokens), "copy" (a copy head lets the
    decoder write them out ID token by ID token, genrec.model.copy_head; single mode only: a sequence-mode run sets
    retrieval aside, with a warning), or "both"."""
    copy_rank_prior: bool = False
    """With retrieval_use copy or both: the copy head's attention over the retrieved songs also adds a learned
    score per kNN rank, started at -log(1 + rank), so an untrained copy head already writes the list out in its
    order and training learns departures from it (without it, the order is learnt through the rank embedding in
    the attention keys). On MPD it did not help in two seeds: the trained model reorders its list as much as
    without it (docs/mpd_experiments.md, "Ordering or choice")."""
    retrieval_folds: int = 5
    """With retrieved_songs: training playlists are split into this many folds and each fold's titles retrieve
    from the other folds, so no training example sees its own songs among its inputs (as at test time)."""
    retrieval_walk_weight: float = 0.0
    """With retrieved_songs: retrieve title kNN's songs after one step of the co-occurrence walk at this weight
    (its top neighbour_songs votes, plus this weight times their total spread over the songs they share training
    playlists with; genrec.train.neighbour_targets.walked_knn), so the model reads and copies a list that also holds
    what kNN's songs' playlists agree on; 0: kNN's list as it is."""
    retrieval_vector_weight: float = 0.0
    """With retrieved_songs: the retriever's title kNN scores title similarity as (1 - this) x TF-IDF cosine + this
    x the title_encoder vectors' cosine, so a title also retrieves playlists whose titles say the same in other
    words (with title_encoder; without one, a warning and TF-IDF alone); 0: TF-IDF alone, as the title_knn
    baseline."""
    title_dropout: float = 0.0
    """With retrieved_songs: in each training batch hide the title (its tokens and vector) from this share of the
    examples, chosen at random, so the model also learns to write a playlist from its retrieved songs alone and
    cannot settle for memorising training titles, which unseen titles cannot use; validation and inference
    always read the title. 0: never hidden."""


@dataclass
class EvalConfig:
    """Stage 4: measuring the model and the baselines on held-out playlists."""

    num_songs: int = 100
    """Songs recommended per playlist."""
    k_values: list[int] = field(default_factory=lambda: [10, 50, 100])
    """Cut-offs for Recall@K and NDCG@K."""
    num_beams: int = 100
    """Single mode: beam width (raised to num_songs; the top num_songs distinct songs of the beam are returned)."""
    sequence_num_beams: int = 1
    """Sequence mode: beams over whole playlists (1: greedy)."""
    do_sample: bool = False
    """Sample instead of beam search / greedy (metrics then depend on the seed)."""
    temperature: float = 1.0
    """Sampling temperature."""
    top_p: float = 1.0
    """Nucleus sampling threshold."""
    unique: bool = True
    """Sequence mode: never generate a song twice in one playlist (the trie bans it)."""
    unconstrained: bool = True
    """Also decode without the trie (system model_unconstrained) to measure the share of invalid IDs."""
    batch_size: int = 16
    """Playlists decoded per batch."""
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
    """Stage 5: turning a title into a playlist."""

    title: str = ""
    """Generate for this one title and exit."""
    input: str = ""
    """File with one title per line (batch mode)."""
    output: str = ""
    """JSON Lines file that receives the batch playlists."""
    json: bool = False
    """Print machine-readable JSON."""
    num_songs: int = 20
    """Songs per playlist."""
    do_sample: bool = False
    """Sample instead of beam search."""
    temperature: float = 1.0
    """Sampling temperature."""
    top_p: float = 1.0
    """Nucleus sampling threshold."""
    num_beams: int = 50
    """Beam width when not sampling."""
    hybrid: bool = False
    """Fuse the model's ranking with title kNN's or the model's retrieved list, as evaluated (system 'hybrid')."""


@dataclass
class Config:
    """Every group, as the scripts see them."""

    run: RunConfig = field(default_factory=RunConfig)
    data: DataConfig = field(default_factory=DataConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
    prepare: PrepareConfig = field(default_factory=PrepareConfig)
    rqkmeans: SongRQKMeansConfig = field(default_factory=SongRQKMeansConfig)
    rqvae: SongRQVAEConfig = field(default_factory=SongRQVAEConfig)
    corpus: CorpusConfig = field(default_factory=CorpusConfig)
    tiger: PlaylistTIGERConfig = field(default_factory=PlaylistTIGERConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    generate: GenerateConfig = field(default_factory=GenerateConfig)


# Validation rules, kept beside the fields they govern. genrec.cli applies them after parsing.
CHOICES = {
    "run.device": ("auto", "cpu", "cuda"),
    "rqvae.codebook_init": ("kmeans", "random"),
    "prepare.source": ("demo", "mpd", "csv"),
    "corpus.collision_strategy": ("suffix", "cluster"),
    "corpus.target_mode": ("single", "sequence"),
    "corpus.token_style": ("level", "shared"),
    "corpus.title_script": ("", "simplified", "traditional"),
    "tiger.mixed_precision": ("auto", "no", "fp16", "bf16"),
    "tiger.retrieval_use": ("input", "copy", "both"),
}
"""Fields that accept only the listed values."""

MAY_BE_ZERO = {"run.seed", "rqkmeans.max_points_per_level", "eval.max_playlists", "eval.val_playlists", "split.min_eval_playlists",
               "tiger.max_steps", "tiger.eval_steps", "tiger.dataloader_workers", "tiger.val_generation_sample",
               "tiger.retrieved_songs", "tiger.paths_per_title",
               "prepare.item2vec_min_count", "prepare.item2vec_workers",
               "rqvae.dead_code_epochs", "rqvae.warmup_epochs"}
"""Integer fields for which 0 is meaningful; every other integer must be at least 1."""

UNIT_INTERVAL = {"split.val_ratio", "split.test_ratio", "split.max_eval_ratio", "rqvae.val_ratio",
                 "tiger.dropout", "tiger.title_dropout", "tiger.retrieval_vector_weight", "tiger.warmup_ratio",
                 "generate.top_p", "eval.top_p"}
"""Float fields that must lie in [0, 1]."""

POSITIVE_FLOATS = {"rqvae.commitment_cost", "rqvae.learning_rate", "tiger.learning_rate", "tiger.epochs",
                   "tiger.target_sharpening",
                   "tiger.max_grad_norm", "generate.temperature",
                   "eval.temperature"}
"""Float fields that must be greater than 0."""

NON_NEGATIVE_FLOATS = {"rqvae.weight_decay", "tiger.weight_decay", "tiger.neighbour_weight",
                       "tiger.cooccurrence_weight", "tiger.retrieval_walk_weight", "tiger.max_minutes"}
"""Float fields that must be at least 0."""
