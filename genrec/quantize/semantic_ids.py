"""The semantic-ID file both quantizers write and every later stage reads.

Format (``outputs/song_semantic_ids.jsonl``, the original's): one JSON object per line,
``{"song_id": "<id as a string>", "semantic_ids": [c_1, ..., c_L]}``, with ``0 <= c_l < vocab_size``.
Its manifest (``song_semantic_ids.jsonl.manifest.json``) names the method, levels and vocab size.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from genrec.artifacts import atomic_path
from genrec.errors import DataError

FILE_NAME = "song_semantic_ids.jsonl"


def semantic_ids_path(output_dir: str) -> Path:
    return Path(output_dir) / FILE_NAME


def write_semantic_ids(path: str | Path, song_ids: list[str], codes: np.ndarray) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as out:
        for song, row in zip(song_ids, codes.tolist()):
            out.write(json.dumps({"song_id": song, "semantic_ids": row}, ensure_ascii=False) + "\n")


def read_semantic_ids(path: str | Path) -> tuple[list[str], np.ndarray]:
    """Song ids and an (n_songs, levels) int64 array of codes; validates every line."""
    path = Path(path)
    if not path.exists():
        raise DataError(path, "semantic ID file not found: run train_rq_kmeans.py or train_rqvae.py first")
    song_ids, codes = [], []
    with open(path, encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                song, code = str(record["song_id"]), [int(c) for c in record["semantic_ids"]]
            except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
                raise DataError(path, f"not a {{song_id, semantic_ids}} record ({err})", line=number) from None
            if codes and len(code) != len(codes[0]):
                raise DataError(path, f"{len(code)} codes where earlier lines have {len(codes[0])}", line=number)
            if not code or min(code) < 0:
                raise DataError(path, "codes must be a non-empty list of non-negative integers", line=number)
            song_ids.append(song)
            codes.append(code)
    if not song_ids:
        raise DataError(path, "semantic ID file is empty")
    if len(set(song_ids)) != len(song_ids):
        raise DataError(path, "a song id appears on more than one line")
    return song_ids, np.asarray(codes, dtype=np.int64)
