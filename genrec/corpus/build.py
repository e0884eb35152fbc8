"""Stage 2: the training corpus, playlist titles paired with semantic-ID token targets.

Files (``<run.output_dir>/{train,val,test}.tsv``): UTF-8, tab-separated, header row
``playlist_id  input_text  target_text  song_ids``.

- ``input_text``: the cleaned title (clean_title already turned tabs and newlines into spaces), its
  Chinese written in one script when ``corpus.title_script`` says so (genrec.text.fold_script).
- ``target_text``: semantic-ID tokens without spaces, e.g. ``<a_12><b_3><c_200><d_0>``; ``</s>`` is
  added by the tokenizer, not written here.
- ``song_ids``: catalogue song ids, space-separated, in playlist order.

val.tsv and test.tsv always hold one row per playlist with the sequence-mode target and all of the
playlist's songs (the ground truth later stages score against), whatever ``corpus.target_mode``.
train.tsv follows the target mode: ``sequence`` has one row per playlist, its songs' IDs in order,
truncated at a song boundary so that the target plus ``</s>`` fits ``max_target_length``;
``single`` has one row per (playlist, song) pair, ``song_ids`` being that one song.

Beside them: ``semantic_id_vocab.json`` (the song <-> token mapping, see genrec.corpus.id_tokens) and a
manifest per file recording the semantic-ID file and data files it was made from.
"""

from __future__ import annotations

import contextlib
import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, TextIO

from config import Config

from genrec.artifacts import atomic_path, require_fresh, write_manifest
from config import config_as_dict
from genrec.data.files import load_playlists
from genrec.errors import ConfigError, DataError
from genrec.corpus.id_tokens import VOCAB_FILE, SemanticIdVocab
from genrec.quantize.semantic_ids import read_semantic_ids, semantic_ids_path
from genrec.data.split import SPLITS, load_or_assign_splits
from genrec.text import fold_script

log = logging.getLogger(__name__)

HEADER = ("playlist_id", "input_text", "target_text", "song_ids")
SEMANTIC_ID_STAGES = "train_rq_kmeans.py or train_rqvae.py"


@dataclass(slots=True)  # slots: tens of millions of rows at a million playlists, each without a __dict__
class CorpusRow:
    playlist_id: str
    input_text: str
    target_text: str
    song_ids: list[str]


def corpus_path(cfg: Config, split: str) -> Path:
    return Path(cfg.run.output_dir) / f"{split}.tsv"


def vocab_path(cfg: Config) -> Path:
    return Path(cfg.run.output_dir) / VOCAB_FILE


def write_corpus(path: str | Path, rows: list[CorpusRow]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="\n") as out:
        out.write("\t".join(HEADER) + "\n")
        write_rows(out, rows)


def write_rows(out: TextIO, rows: list[CorpusRow]) -> None:
    for row in rows:
        out.write(f"{row.playlist_id}\t{row.input_text}\t{row.target_text}\t{' '.join(row.song_ids)}\n")


def read_corpus(path: str | Path) -> list[CorpusRow]:
    """Rows of a corpus file; DataError naming the line for anything malformed."""
    return list(iter_corpus(path))


def iter_corpus(path: str | Path) -> Iterator[CorpusRow]:
    """The rows of a corpus file one at a time (a million playlists' train.tsv has tens of millions of rows,
    too many to hold as objects); DataError naming the line for anything malformed. Equal field values share
    one string object (a single-mode playlist repeats its id and title on every row, a song its target)."""
    shared: dict[str, str] = {}
    path = Path(path)
    if not path.exists():
        raise DataError(path, "corpus file not found: run prepare_corpus.py first")
    with open(path, encoding="utf-8") as lines:
        header = lines.readline().rstrip("\n").split("\t")
        if tuple(header) != HEADER:
            raise DataError(path, f"header must be {' '.join(HEADER)} (tab-separated)", line=1)
        for number, line in enumerate(lines, start=2):
            fields = line.rstrip("\n").split("\t")
            if len(fields) != len(HEADER):
                raise DataError(path, f"expected {len(HEADER)} tab-separated fields, found {len(fields)}", line=number)
            for name, value in zip(HEADER, fields):
                if not value.strip():
                    raise DataError(path, "empty field", line=number, column=name)
            pid, title, target = (shared.setdefault(f, f) for f in fields[:3])
            yield CorpusRow(pid, title, target, [shared.setdefault(s, s) for s in fields[3].split()])


def load_vocab(cfg: Config) -> SemanticIdVocab:
    """The semantic-ID vocabulary of the current corpus, checked against the IDs it was built from."""
    path = vocab_path(cfg)
    require_fresh(path, "prepare_corpus.py")
    return SemanticIdVocab.load(path)


def build_vocab(cfg: Config) -> tuple[SemanticIdVocab, Path]:
    ids_file = semantic_ids_path(cfg.run.output_dir)
    manifest = require_fresh(ids_file, SEMANTIC_ID_STAGES)
    song_ids, codes = read_semantic_ids(ids_file)
    vocab_size = int(manifest.get("summary", {}).get("vocab_size", int(codes.max()) + 1))
    vocab = SemanticIdVocab.build(song_ids, codes, vocab_size,
                                  cfg.corpus.collision_strategy)
    return vocab, ids_file


def songs_per_sequence(cfg: Config, vocab: SemanticIdVocab) -> int:
    """Songs whose IDs, followed by </s>, fit corpus.max_target_length."""
    fit = (cfg.corpus.max_target_length - 1) // vocab.id_length
    if fit < 1:
        raise ConfigError(f"corpus.max_target_length={cfg.corpus.max_target_length} cannot hold one song ID "
                          f"({vocab.id_length} tokens) plus </s>")
    return fit


def playlist_rows(pid: str, title: str, songs: list[str], vocab: SemanticIdVocab, max_songs: int,
                  split: str, mode: str) -> list[CorpusRow]:
    if split == "train" and mode == "single":
        return [CorpusRow(pid, title, vocab.target_string([song]), [song]) for song in songs]
    # Truncating the list of songs (not the token string) is what keeps every ID whole.
    return [CorpusRow(pid, title, vocab.target_string(songs[:max_songs]), list(songs))]


def collision_report(vocab: SemanticIdVocab) -> dict:
    prefixes = Counter(tokens[:vocab.levels] for tokens in vocab.songs.values())
    largest = max(prefixes.values())
    return {
        "songs_with_id": len(vocab.songs),
        "distinct_code_tuples": len(prefixes),
        "songs_sharing_code_tuple": sum(n for n in prefixes.values() if n > 1),
        "largest_collision_group": largest,
        "suffix_tokens_needed": largest if vocab.collision_strategy == "suffix" else 0,
        "collision_group_sizes": {str(size): count for size, count in sorted(Counter(prefixes.values()).items())},
    }


def build_corpus(cfg: Config) -> dict:
    """Write vocab, train/val/test files and their manifests; return the report. Rows are written as they are made
    (a million playlists make tens of millions of single-mode rows): only counts stay in memory."""
    vocab, ids_file = build_vocab(cfg)
    playlists = load_playlists(cfg.data)
    split_of = load_or_assign_splits(playlists.ids, cfg.data.split_file, cfg.split, cfg.run.seed)
    max_songs = songs_per_sequence(cfg, vocab)
    examples, playlist_counts, tokens = Counter(), Counter(), Counter()
    dropped_rows, dropped_songs, empty_playlists, truncated = 0, set(), Counter(), 0
    with contextlib.ExitStack() as files:
        out = {split: files.enter_context(open(files.enter_context(atomic_path(corpus_path(cfg, split))), "w",
                                               encoding="utf-8", newline="\n")) for split in SPLITS}
        for handle in out.values():
            handle.write("\t".join(HEADER) + "\n")
        for pid, title, songs in zip(playlists.ids, playlists.titles, playlists.songs):
            known = [s for s in songs if s in vocab.songs]
            dropped_rows += len(songs) - len(known)
            dropped_songs.update(s for s in songs if s not in vocab.songs)
            split = split_of[pid]
            if not known:
                empty_playlists[split] += 1
                continue
            truncated += len(known) > max_songs
            rows = playlist_rows(pid, fold_script(title, cfg.corpus.title_script), known, vocab, max_songs, split,
                                 cfg.corpus.target_mode)
            write_rows(out[split], rows)
            examples[split] += len(rows)
            playlist_counts[split] += 1
            tokens[split] += sum(target_tokens(r) for r in rows)
        for split in SPLITS:  # raised inside the block, so no corpus file is replaced
            if not examples[split]:
                raise DataError(cfg.data.playlist_info_file, f"the {split} split has no playlist with a song that "
                                "has a semantic ID; add playlists or change split.val_ratio / split.test_ratio")

    report = {
        "target_mode": cfg.corpus.target_mode,
        "collision_strategy": cfg.corpus.collision_strategy,
        "title_script": cfg.corpus.title_script,
        "id_length": vocab.id_length,
        "examples": {split: examples[split] for split in SPLITS},
        "playlists": {split: playlist_counts[split] for split in SPLITS},
        "mean_target_tokens": {split: round(tokens[split] / examples[split], 2) for split in SPLITS},
        "playlists_truncated": truncated,
        "max_songs_per_sequence": max_songs,
        "playlist_rows_without_id": dropped_rows,
        "songs_without_id": len(dropped_songs),
        "playlists_without_songs_with_id": dict(empty_playlists),
        **collision_report(vocab),
    }
    if dropped_rows:
        log.warning("%d playlist rows (%d distinct songs) have no semantic ID and are dropped",
                    dropped_rows, len(dropped_songs))
    write_manifests(cfg, vocab, ids_file, report)
    return report


def target_tokens(row: CorpusRow) -> int:
    """Tokens the model predicts for this row, </s> included."""
    return row.target_text.count("<") + 1


def write_manifests(cfg: Config, vocab: SemanticIdVocab, ids_file: Path, report: dict) -> None:
    """The vocabulary and the manifests of the corpus files build_corpus has written."""
    settings = config_as_dict(cfg, ["data", "split", "corpus", "run"])
    path = vocab_path(cfg)
    vocab.save(path)
    write_manifest(path, [ids_file], settings, {k: report[k] for k in ("collision_strategy",
                                                                       "id_length", "largest_collision_group")})
    data_files = [cfg.data.playlist_info_file, cfg.data.playlist_songs_file]
    if cfg.data.split_file and Path(cfg.data.split_file).exists():
        data_files.append(cfg.data.split_file)
    for split in SPLITS:
        out = corpus_path(cfg, split)
        write_manifest(out, [ids_file, path, *data_files], settings,
                       dict(report, split=split, rows=report["examples"][split]))
        log.info("%s: %d examples", out, report["examples"][split])
