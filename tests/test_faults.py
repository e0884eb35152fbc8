"""The fault suite: bad inputs and bad states, each run through a real stage script as a user would meet it.

Every case runs in its own copy of one tiny finished pipeline (data, IDs, corpus, model, evaluation, bundle) and
must end with exit != 0, exactly one ``error:`` line naming the problem and where it is (the option, or the file
with its line and column), no traceback, and every file under data/, outputs/, models/ and inputs/ byte-identical
(sha256 before and after; a leftover staging folder counts as a change). The scripts run in this process through
their own ``__main__`` block (tests/faults.py), since a new interpreter per case would import torch each time.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import typing
from pathlib import Path
from typing import Callable, NamedTuple

import pytest

import config
from conftest import TINY_DEMO, TINY_EVAL, TINY_MODEL
from faults import assert_one_line_refusal, copy_work, run_in_process, snapshot

SCRIPT_OF_GROUP = {"run": "train_rq_kmeans.py", "data": "prepare_corpus.py", "split": "prepare_data.py",
                   "prepare": "prepare_data.py", "ids": "train_rq_kmeans.py", "rqkmeans": "train_rq_kmeans.py",
                   "rqvae": "train_rqvae.py", "corpus": "prepare_corpus.py", "network": "train_tiger.py",
                   "train": "train_tiger.py", "targets": "train_tiger.py", "retrieval": "train_tiger.py",
                   "decode": "evaluate_tiger.py", "eval": "evaluate_tiger.py", "generate": "generate_playlist.py"}
"""The script that reads each option group (every script parses every group, and refuses before any work)."""


class Case(NamedTuple):
    name: str
    script: str
    args: tuple[str, ...]
    expect: tuple[str, ...]  # each must appear in the error line: what is wrong and where
    setup: Callable[[Path], None] | None = None
    stdin: str = ""


def bad_values(name: str, kind) -> list[tuple[str, str]]:
    """Values that break a field's declared rule (config.py), and what the refusal must say."""
    if name in config.CHOICES:
        return [("bogus", "must be one of")]
    if kind is bool:
        return [("maybe", "Expected a <class 'bool'>")]
    if kind is int:
        floor = 0 if name in config.MAY_BE_ZERO else 1
        above = [(str(config.MAXIMA[name] + 1), "must be at most")] if name in config.MAXIMA else []
        return [(str(floor - 1), f"must be at least {floor}"), ("x1", "Expected a <class 'int'>"), *above]
    if kind is float:
        values = [("nan", "Expected a <class 'float'>"), ("inf", "Expected a <class 'float'>")]
        if name in config.UNIT_INTERVAL:
            values.append(("1.5", "must be between 0 and 1"))
        if name in config.POSITIVE_FLOATS:
            values.append(("0", "must be greater than 0"))
        if name in config.NON_NEGATIVE_FLOATS:
            values.append(("-1", "must be at least 0"))
        return values
    if kind == list[int]:
        values = [("[0]", "values must be at least 1"), ("[1, x]", "Expected a")]
        return values + ([("[]", "needs at least one value")] if name in config.NON_EMPTY_LISTS else [])
    return []  # free text: paths and names, refused where they are used (the cases below)


def config_cases() -> list[Case]:
    cases = []
    for group in dataclasses.fields(config.Config):
        kinds = typing.get_type_hints(group.default_factory)
        for field in dataclasses.fields(group.default_factory):
            name = f"{group.name}.{field.name}"
            for value, message in bad_values(name, kinds[field.name]):
                cases.append(Case(f"option {name}={value}", SCRIPT_OF_GROUP[group.name], (f"--{name}", value),
                                  (name, message)))
    return cases


def write(relative: str, content: str | bytes) -> Callable[[Path], None]:
    def setup(work: Path) -> None:
        path = work / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return setup


def change(relative: str, edit: Callable[[bytes], bytes]) -> Callable[[Path], None]:
    def setup(work: Path) -> None:
        path = work / relative
        path.write_bytes(edit(path.read_bytes()))
    return setup


def remove(relative: str) -> Callable[[Path], None]:
    def setup(work: Path) -> None:
        path = work / relative
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    return setup


def both(*setups: Callable[[Path], None]) -> Callable[[Path], None]:
    def setup(work: Path) -> None:
        for step in setups:
            step(work)
    return setup


VECTORS = "inputs/vectors.csv"
VECTOR_CASES = [  # (name, file content, what the line must say besides the file)
    ("NaN", "song_id,v0,v1\na,1,nan\nb,2,3\n", "line 2, column 'v1': value 'nan' is not a finite number"),
    ("inf", "song_id,v0,v1\na,1,2\nb,inf,2\n", "line 3, column 'v0': value 'inf' is not a finite number"),
    ("-inf", "song_id,v0,v1\na,1,2\nb,-inf,2\n", "line 3, column 'v0'"),
    ("a word", "song_id,v0,v1\na,1,x\n", "line 2, column 'v1': value 'x' is not a finite number"),
    ("missing value", "song_id,v0,v1\na,1,\n", "line 2, column 'v1': missing value"),
    ("wrong width", "song_id,v0,v1,v2\na,1,2,3\n", "line 1: expected 2 vector columns after the id"),
    ("duplicate id", "song_id,v0,v1\na,1,2\nb,1,3\na,3,4\n", "line 4, column 'song_id': duplicate id 'a'"),
    ("empty id", "song_id,v0,v1\n,1,2\n", "line 2, column 'song_id': empty id"),
    ("id with a space", "song_id,v0,v1\na b,1,2\n", "contains whitespace"),
    ("header only", "song_id,v0,v1\n", "header but no rows"),
    ("1e300", "song_id,v0,v1\na,1,2\nb,1e300,2\n", "line 3, column 'v0': value '1e300' is out of range"),
    ("identical vectors", "song_id,v0,v1\na,1,2\nb,1,2\nc,1,2\n", "all 3 songs have the same vector"),
    ("empty file", "", "file is empty"),
    ("malformed row", "song_id,v0,v1\na,1,2\nb,1,2,3,4\n", "line 3"),
    ("an id with a no-break space", "song_id,v0,v1\na\u00a0b,1,2\nb,3,4\n", "line 2, column 'song_id'"),
]

INFO, SONGS = "inputs/info.csv", "inputs/songs.csv"
GOOD_SONGS = "special_gid,mixsongid\n1,0100300\n"
PLAYLIST_CASES = [  # (name, info file, playlist-song file, what the line must say)
    ("info: wrong columns", "id,title\n1,x\n", GOOD_SONGS, "missing column(s) glid, listname"),
    ("info: empty title", "glid,listname\n1,ok\n2,  \n", GOOD_SONGS, "line 3, column 'listname': empty title"),
    ("info: zero-width title", "glid,listname\n1,ok\n2,\u200b\u200b\n", GOOD_SONGS, "line 3, column 'listname'"),
    ("info: duplicate id", "glid,listname\n1,a\n1,b\n", GOOD_SONGS, "line 3, column 'glid': duplicate id '1'"),
    ("info: extra cells", "glid,listname\n1,a\n2,b,extra,cells\n", GOOD_SONGS, "line 3"),
    ("info: empty file", "", GOOD_SONGS, "file is empty"),
    ("info: header only", "glid,listname\n", GOOD_SONGS, "header but no rows"),
    ("songs: wrong columns", "glid,listname\n1,a\n", "pid,sid\n1,a\n", "missing column(s) special_gid, mixsongid"),
    ("songs: empty file", "glid,listname\n1,a\n", "", "file is empty"),
    ("songs: empty song id", "glid,listname\n1,a\n", "special_gid,mixsongid\n1,\n", "empty id"),
]


def data_cases() -> list[Case]:
    cases = [Case(f"vectors: {name}", "train_rq_kmeans.py", ("--data.song_vector_file", VECTORS, "--data.input_dim",
                                                             "2"), (VECTORS, message), write(VECTORS, text))
             for name, text, message in VECTOR_CASES]
    cases += [
        Case("vectors: not UTF-8", "train_rq_kmeans.py", ("--data.song_vector_file", VECTORS, "--data.input_dim", "2"),
             (VECTORS, "not UTF-8"), write(VECTORS, "song_id,v0,v1\ncaf\xe9,1,2\n".encode("latin-1"))),
        Case("vectors: missing file", "train_rq_kmeans.py", ("--data.song_vector_file", "inputs/none.csv"),
             ("inputs/none.csv", "not found")),
        Case("vectors: a folder", "train_rq_kmeans.py", ("--data.song_vector_file", "inputs"),
             ("inputs", "is a folder"), write("inputs/keep.txt", "x")),
        Case("vectors: the demo's, another width", "train_rq_kmeans.py", ("--data.input_dim", "7", *TINY_DEMO),
             ("song_vectors.csv", "expected 7 vector columns")),
    ]
    for name, info, songs, message in PLAYLIST_CASES:
        where = INFO if name.startswith("info") else SONGS
        cases.append(Case(f"playlists: {name}", "prepare_corpus.py",
                          ("--data.playlist_info_file", INFO, "--data.playlist_songs_file", SONGS),
                          (where, message), both(write(INFO, info), write(SONGS, songs))))
    cases += [
        Case("playlists: info not UTF-8", "prepare_corpus.py", ("--data.playlist_info_file", INFO),
             (INFO, "not UTF-8"), write(INFO, "glid,listname\n1,caf\xe9\n".encode("latin-1"))),
        Case("playlists: missing info file", "prepare_corpus.py", ("--data.playlist_info_file", "inputs/none.csv"),
             ("inputs/none.csv", "not found")),
        Case("song info: not UTF-8", "export_bundle.py", ("--data.song_info_file", "inputs/song_info.csv"),
             ("inputs/song_info.csv", "not UTF-8"),
             write("inputs/song_info.csv", "mixsongid,songname,singername\n1,caf\xe9,x\n".encode("latin-1"))),
        Case("split: a named split file that does not exist", "prepare_corpus.py",
             ("--data.split_file", "inputs/split.csv"), ("inputs/split.csv", "split file not found")),
        Case("split: an unknown split name", "prepare_corpus.py", ("--data.split_file", "inputs/split.csv"),
             ("inputs/split.csv", "column 'split'"), write("inputs/split.csv", "playlist_id,split\n900000,holdout\n")),
    ]
    return cases


CSV_SOURCE = "inputs/csv_source"
"""A copy of the demo's four tables as prepare_data.py --source csv reads them (built by the module fixture)."""


def csv_import(name: str, expect: tuple[str, ...], setup: Callable[[Path], None] | None, *args: str) -> Case:
    return Case(f"import: {name}", "prepare_data.py",
                ("--source", "csv", "--input", CSV_SOURCE, "--output", "data/imported", *args), expect, setup)


IMPORT_CASES = [
    csv_import("missing input folder", ("inputs/absent", "CSV input folder not found"), None,
               "--input", "inputs/absent"),
    csv_import("no playlist info table", ("gen_playlist_info.csv", "not found"), remove(f"{CSV_SOURCE}/gen_playlist_info.csv")),
    csv_import("no playlist-song table", ("gen_playlist_song.csv", "not found"), remove(f"{CSV_SOURCE}/gen_playlist_song.csv")),
    csv_import("info with wrong columns", ("gen_playlist_info.csv", "missing column"),
               write(f"{CSV_SOURCE}/gen_playlist_info.csv", "id,title\n1,x\n")),
    csv_import("empty playlist-song table", ("gen_playlist_song.csv", "file is empty"),
               write(f"{CSV_SOURCE}/gen_playlist_song.csv", "")),
    csv_import("song info not UTF-8", ("gen_song_info.csv", "not UTF-8"),
               write(f"{CSV_SOURCE}/gen_song_info.csv", "mixsongid,songname,singername\n1,caf\xe9,x\n".encode("latin-1"))),
    csv_import("vectors with NaN", ("song_vectors.csv", "not a finite number"),
               change(f"{CSV_SOURCE}/song_vectors.csv", lambda b: b.replace(b",", b",nan,", 1).replace(b"nan,", b"", 1)
                      .replace(b"\n", b"\nxx,nan" + b",1" * 99 + b"\n", 1))),
    csv_import("every row names an unknown playlist", ("no playlist has",),
               write(f"{CSV_SOURCE}/gen_playlist_song.csv", "special_gid,mixsongid\n424242,0100300\n")),
    csv_import("duplicate playlist ids", ("gen_playlist_info.csv", "duplicate id"),
               write(f"{CSV_SOURCE}/gen_playlist_info.csv", "glid,listname\n1,a\n1,b\n")),
    csv_import("a title of zero-width spaces", ("gen_playlist_info.csv", "empty title"),
               write(f"{CSV_SOURCE}/gen_playlist_info.csv", "glid,listname\n1,a\n2,\u200b\n")),
    csv_import("a playlist length nothing reaches", ("prepare.min_playlist_songs",), None,
               "--prepare.min_playlist_songs", "100000"),
]


def mpd_import(name: str, slice_text: str | None, expect: tuple[str, ...]) -> Case:
    setup = write("inputs/mpd/mpd.slice.0-999.json", slice_text) if slice_text is not None else \
        write("inputs/mpd/readme.txt", "no slices here")
    return Case(f"import: MPD {name}", "prepare_data.py",
                ("--source", "mpd", "--input", "inputs/mpd", "--output", "data/imported"), expect, setup)


SLICE = "inputs/mpd/mpd.slice.0-999.json"
IMPORT_CASES += [
    mpd_import("folder without slices", None, ("inputs/mpd", "no mpd.slice")),
    mpd_import("truncated slice", '{"info": {}, "playlists": [{"name": "x", "pid": 1, "tracks": [',
               (SLICE, "invalid JSON")),
    mpd_import("slice without playlists", '{"info": {"slice": "0-999"}}', (SLICE, "no 'playlists' list")),
    mpd_import("playlist without a name", '{"playlists": [{"pid": 1, "tracks": []}]}', (SLICE, "has no 'name'")),
    mpd_import("track without a uri", '{"playlists": [{"name": "x", "pid": 1, "tracks": [{"track_name": "a"}]}]}',
               (SLICE, "no 'track_uri'")),
    mpd_import("repeated pid", '{"playlists": [{"name": "x", "pid": 1, "tracks": []}, {"name": "y", "pid": 1, '
               '"tracks": []}]}', (SLICE, "pid '1' already used")),
]


def tamper(relative: str) -> Callable[[Path], None]:
    return change(relative, lambda b: b + b" ")


TINY_STAGE = (*TINY_DEMO, *TINY_MODEL, *TINY_EVAL, "--retrieval.songs", "10")
STATE_CASES = [
    # missing upstream artifacts: the line names the stage to run
    Case("no semantic IDs", "prepare_corpus.py", ("--run.output_dir", "outputs/none", *TINY_STAGE),
         ("song_semantic_ids.jsonl", "train_rq_kmeans.py")),
    Case("no corpus", "train_tiger.py", ("--run.output_dir", "outputs/none", *TINY_STAGE),
         ("train.tsv", "prepare_corpus.py")),
    Case("no model", "evaluate_tiger.py", ("--run.model_dir", "models/none", *TINY_STAGE),
         ("tiger_final", "train_tiger.py")),
    Case("no model to bundle", "export_bundle.py", ("--run.model_dir", "models/none", *TINY_STAGE),
         ("tiger_final", "train_tiger.py")),
    Case("no bundle", "generate_playlist.py", ("--model", "models/none", "--title", "x"),
         ("models/none", "run the pipeline")),
    Case("no codebooks", "evaluate_rq_kmeans.py", ("--run.model_dir", "models/none"),
         ("rq_kmeans_codebooks.npy", "train_rq_kmeans.py")),
    Case("no RQ-VAE", "evaluate_rqvae.py", (), ("rqvae", "train_rqvae.py")),
    Case("no evaluation to bundle", "export_bundle.py", TINY_STAGE, ("hybrid.json", "evaluate_tiger.py"),
         both(remove("outputs/hybrid.json"), remove("outputs/hybrid.json.manifest.json"))),
    # stale or changed upstream artifacts
    Case("IDs changed after they were written", "prepare_corpus.py", TINY_STAGE,
         ("song_semantic_ids.jsonl", "train_rq_kmeans.py"), tamper("outputs/song_semantic_ids.jsonl")),
    Case("vectors changed after the IDs", "prepare_corpus.py", TINY_STAGE,
         ("song_vectors.csv", "train_rq_kmeans.py"), tamper("data/demo/song_vectors.csv")),
    Case("corpus changed after it was written", "train_tiger.py", TINY_STAGE, ("train.tsv", "prepare_corpus.py"),
         tamper("outputs/train.tsv")),
    Case("codebooks changed", "evaluate_rq_kmeans.py", (), ("rq_kmeans_codebooks.npy", "train_rq_kmeans.py"),
         tamper("models/rq_kmeans_codebooks.npy")),
    Case("codebooks rewritten, IDs not (a kill between the two)", "prepare_corpus.py", TINY_STAGE,
         ("train_rq_kmeans.py",), both(tamper("models/rq_kmeans_codebooks.npy"),
                                       lambda w: _rewrite_manifest_sha(w, "models/rq_kmeans_codebooks.npy"))),
    Case("manifest not JSON", "prepare_corpus.py", TINY_STAGE, ("manifest.json", "not valid JSON"),
         write("outputs/song_semantic_ids.jsonl.manifest.json", "{half")),
    Case("manifest missing", "train_tiger.py", TINY_STAGE, ("train.tsv", "no manifest"),
         remove("outputs/train.tsv.manifest.json")),
    Case("model weights truncated", "evaluate_tiger.py", TINY_STAGE, ("model.safetensors", "train_tiger.py"),
         change("models/tiger_final/model.safetensors", lambda b: b[:1000])),
    Case("model weights changed, same length", "export_bundle.py", TINY_STAGE,
         ("model.safetensors", "train_tiger.py"), change("models/tiger_final/model.safetensors",
                                                          lambda b: b[:-8] + bytes(8))),
    Case("model folder's manifest not JSON", "evaluate_tiger.py", TINY_STAGE, ("manifest.json", "not valid JSON"),
         write("models/tiger_final/manifest.json", "[")),
    Case("a file added to the model folder", "evaluate_tiger.py", TINY_STAGE, ("stray.bin", "train_tiger.py"),
         write("models/tiger_final/stray.bin", b"\0")),
    Case("the data folder edited by hand", "run_pipeline.py", ("--prepare.source", "csv", *TINY_STAGE),
         ("prepare_data.py failed",), tamper("data/demo/gen_song_info.csv")),
    Case("bundle file changed", "generate_playlist.py", ("--title", "summer"), ("songs.json", "export the bundle again"),
         tamper("models/bundle/songs.json")),
    Case("bundle file removed", "generate_playlist.py", ("--title", "summer"), ("serving.json", "is missing"),
         remove("models/bundle/serving.json")),
    Case("metrics and tuning of two evaluations (a kill between them)", "export_bundle.py", TINY_STAGE,
         ("evaluation_metrics.json", "hybrid.json", "evaluate_tiger.py"),
         change("outputs/evaluation_metrics.json.manifest.json",
                lambda b: b.replace(b'"num_beams": 10', b'"num_beams": 12'))),
    Case("evaluation changed before bundling", "export_bundle.py", TINY_STAGE, ("hybrid.json", "evaluate_tiger.py"),
         tamper("outputs/hybrid.json")),
    Case("checkpoints of another corpus resumed", "train_tiger.py", (*TINY_STAGE, "--train.resume", "true"),
         ("another corpus or model config", "--train.resume"),
         change("models/tiger_checkpoints/run.json", lambda b: b.replace(b'"train_sha256": "', b'"train_sha256": "0'))),
]


def _rewrite_manifest_sha(work: Path, artifact: str) -> None:
    """What a run killed after writing new codebooks (and their manifest) but before the IDs leaves behind."""
    from genrec.artifacts import sha256_of
    path = work / f"{artifact}.manifest.json"
    manifest = json.loads(path.read_text(encoding="utf-8"))
    manifest["sha256"] = sha256_of(work / artifact)
    path.write_text(json.dumps(manifest), encoding="utf-8")


BERT = '{"model_type": "bert", "hidden_size": 8}'
COMMAND_LINE_CASES = [
    Case("unknown option", "train_tiger.py", ("--train.no_such_field", "1"), ("train.no_such_field",)),
    Case("unknown group", "train_tiger.py", ("--nogroup.x", "1"), ("nogroup.x",)),
    Case("old option name", "train_tiger.py", ("--tiger.model_name", "x"), ("tiger.model_name", "network.pretrained")),
    Case("removed option", "train_rq_kmeans.py", ("--rqkmeans.normalize", "true"), ("rqkmeans.normalize", "removed")),
    Case("--config that does not exist", "train_tiger.py", ("--config", "inputs/none.yaml"),
         ("inputs/none.yaml", "cannot read")),
    Case("--config not YAML", "train_tiger.py", ("--config", "inputs/bad.yaml"), ("inputs/bad.yaml", "not valid YAML"),
         write("inputs/bad.yaml", "train: [unclosed\n")),
    Case("--config a list", "train_tiger.py", ("--config", "inputs/list.yaml"), ("inputs/list.yaml", "expected"),
         write("inputs/list.yaml", "- 1\n- 2\n")),
    Case("--config with an old name", "train_tiger.py", ("--config", "inputs/old.yaml"),
         ("inputs/old.yaml", "network.pretrained"), write("inputs/old.yaml", "tiger:\n  model_name: x\n")),
    Case("--config with a bad value", "train_tiger.py", ("--config", "inputs/v.yaml"), ("train.batch_size",),
         write("inputs/v.yaml", "train:\n  batch_size: 0\n")),
    Case("val + test ratio at 1", "prepare_corpus.py", ("--split.val_ratio", "0.5", "--split.test_ratio", "0.5"),
         ("split.val_ratio + split.test_ratio",)),
    Case("k beyond the songs recommended", "evaluate_tiger.py", ("--eval.num_songs", "5", "--eval.k_values", "[10]"),
         ("eval.k_values", "eval.num_songs")),
    Case("pretrained: a BERT folder", "train_tiger.py", ("--network.pretrained", "inputs/bert", *TINY_STAGE),
         ("network.pretrained", "not a Hugging Face T5 folder"), write("inputs/bert/config.json", BERT)),
    Case("pretrained: not a folder", "train_tiger.py", ("--network.pretrained", "inputs/none", *TINY_STAGE),
         ("network.pretrained", "not a local folder")),
    Case("pretrained: a name to download", "train_tiger.py", ("--network.pretrained", "t5-small", *TINY_STAGE),
         ("network.pretrained", "no downloads")),
    Case("a seed beyond 64 bits", "train_rq_kmeans.py", ("--seed", "99999999999999999999"),
         ("run.seed", "at most")),
    Case("an unknown method", "run_pipeline.py", ("--method", "pq"), ("--method", "pq")),
]

GENERATOR_CASES = [
    Case("an empty title", "generate_playlist.py", ("--title", "\u200b "), ("title",)),
    Case("a title too long", "generate_playlist.py", ("--title", "x" * 5000), ("title",)),
    Case("too many songs", "generate_playlist.py", ("--title", "summer", "--num-songs", "100000"), ("num_songs",)),
    Case("an unknown system", "generate_playlist.py", ("--title", "summer", "--system", "best"), ("generate.system",)),
    Case("batch without --output", "generate_playlist.py", ("--input", "inputs/t.txt"), ("--output",),
         write("inputs/t.txt", "summer\n")),
    Case("batch: titles file missing", "generate_playlist.py", ("--input", "inputs/none.txt", "--output", "inputs/o.jsonl"),
         ("inputs/none.txt", "titles file not found")),
    Case("batch: titles file not UTF-8", "generate_playlist.py", ("--input", "inputs/t.txt", "--output", "inputs/o.jsonl"),
         ("inputs/t.txt", "not UTF-8"), write("inputs/t.txt", "caf\xe9\n".encode("latin-1"))),
    Case("batch: no titles", "generate_playlist.py", ("--input", "inputs/t.txt", "--output", "inputs/o.jsonl"),
         ("inputs/t.txt", "no titles"), write("inputs/t.txt", "\n  \n")),
    Case("batch: output is a folder", "generate_playlist.py", ("--input", "inputs/t.txt", "--output", "inputs/out"),
         ("inputs/out",), both(write("inputs/t.txt", "summer\n"), write("inputs/out/keep.txt", "old"))),
    Case("batch: output under a file", "generate_playlist.py", ("--input", "inputs/t.txt", "--output", "inputs/t.txt/o.jsonl"),
         ("inputs/t.txt",), write("inputs/t.txt", "summer\n")),
    Case("batch: --format m3u8 into a file", "generate_playlist.py",
         ("--input", "inputs/t.txt", "--output", "inputs/t.txt", "--format", "m3u8"), ("inputs/t.txt", "is a file"),
         write("inputs/t.txt", "summer\n")),
    Case("batch: an unknown format", "generate_playlist.py", ("--input", "inputs/t.txt", "--output", "inputs/o", "--format",
                                                               "mp3"), ("--format",), write("inputs/t.txt", "summer\n")),
    Case("the evaluation's output folder is a file", "evaluate_rq_kmeans.py", ("--run.output_dir", "inputs/file"),
         ("inputs/file",), write("inputs/file", "x")),
    Case("demo data into a file", "prepare_data.py", ("--output", "inputs/file", *TINY_DEMO),
         ("inputs/file",), write("inputs/file", "x")),
]

CASES = [*config_cases(), *data_cases(), *IMPORT_CASES, *STATE_CASES, *COMMAND_LINE_CASES, *GENERATOR_CASES]


@pytest.fixture(scope="module")
def finished(tiny_pipeline, tmp_path_factory) -> Path:
    """The tiny finished pipeline, with the demo tables copied as a CSV import source."""
    work = copy_work(tiny_pipeline, tmp_path_factory.mktemp("faults") / "work")
    source = work / CSV_SOURCE
    source.mkdir(parents=True)
    for table in ("gen_playlist_info.csv", "gen_playlist_song.csv", "gen_song_info.csv", "song_vectors.csv"):
        shutil.copy(work / "data" / "demo" / table, source / table)
    return work


def test_the_suite_has_at_least_a_hundred_cases_and_unique_names():
    assert len(CASES) >= 100
    assert len({case.name for case in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_a_bad_input_is_one_line_and_changes_nothing(case, finished, tmp_path, monkeypatch):
    work = copy_work(finished, tmp_path / "work")
    monkeypatch.chdir(work)
    if case.setup:
        case.setup(work)
    before = snapshot(work)
    outcome = run_in_process(case.script, *case.args, stdin=case.stdin)
    assert_one_line_refusal(outcome, *case.expect)
    assert snapshot(work) == before


REPL_CASES = [  # a bad command at the prompt: one line, and the prompt goes on
    (":seed 99999999999999999999", "2^63"),
    (":seed -1", "2^63"),
    (":n 0", "1 to"),
    (":n lots", "1 to"),
    (":temp 0", "above 0"),
    (":top_p 2", "(0, 1]"),
    (":artist-cap -3", ">= 0"),
    (":system best", "best"),
    (":save", "needs a file name"),
    (":save inputs/out.mp3", "mp3"),
    (":save inputs", "cannot tell the format"),
    (":save models/bundle/songs.json/x.m3u8", "cannot write models/bundle/songs.json/x.m3u8"),
    (":frobnicate", ":frobnicate"),
]


@pytest.mark.parametrize("command, message", REPL_CASES, ids=[c for c, _ in REPL_CASES])
def test_a_bad_prompt_command_is_one_line_and_the_prompt_goes_on(command, message, finished, tmp_path, monkeypatch):
    work = copy_work(finished, tmp_path / "work")
    monkeypatch.chdir(work)
    # The prompt's history is written when the interpreter exits: here that would be pytest's exit, after this
    # folder is gone.
    monkeypatch.setattr("genrec.serve.repl.enable_history", lambda path: None)
    before = snapshot(work)
    outcome = run_in_process("generate_playlist.py", "--num-songs", "3", stdin=f"summer\n{command}\nsummer\nexit\n")
    assert outcome.code == 0 and "Traceback" not in outcome.stderr, outcome.stderr[-3000:]
    assert message in outcome.stdout + outcome.stderr
    assert outcome.stdout.count("\n  1. ") == 2  # the title after the bad command was still answered
    assert snapshot(work) == before
