"""A deterministic train / val / test split of playlists, shared by stage 0 and the corpus stage.

A playlist's split depends only on its id, the seed and the ratios (a stable hash, not the row
order), so adding playlists never moves an existing one between splits.

Split file format (``playlist_split.csv``): header ``playlist_id,split``; split is train, val or test.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import pandas as pd

from config import DataConfig, SplitConfig

from genrec.artifacts import atomic_path
from genrec.data.files import check_ids, read_table
from genrec.errors import DataError

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
MAX_EVAL_RATIO = 0.1
"""Val and test are each raised to split.min_eval_playlists, but never above this share of the playlists."""


def unit_hash(playlist_id: str, seed: int) -> float:
    """A number in [0, 1) that depends only on the id and the seed."""
    digest = hashlib.sha256(f"{seed}\x00{playlist_id}".encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def effective_ratios(n_playlists: int, cfg: SplitConfig) -> tuple[float, float]:
    """Raise val/test ratios so each holds ``min_eval_playlists`` where ``max_eval_ratio`` allows."""
    floor = min(cfg.min_eval_playlists / max(n_playlists, 1), MAX_EVAL_RATIO)
    val, test = max(cfg.val_ratio, floor), max(cfg.test_ratio, floor)
    if (val, test) != (cfg.val_ratio, cfg.test_ratio):
        log.info("split: %d playlists; val/test ratios raised from %.3g/%.3g to %.3g/%.3g so each holds "
                 "about %d playlists (split.min_eval_playlists)", n_playlists, cfg.val_ratio, cfg.test_ratio,
                 val, test, round(min(val, test) * n_playlists))
    if val * n_playlists < cfg.min_eval_playlists or test * n_playlists < cfg.min_eval_playlists:
        log.warning("split: only %d playlists, so val/test hold about %d and %d (fewer than "
                    "split.min_eval_playlists=%d): metrics on so few playlists are noisy",
                    n_playlists, round(val * n_playlists), round(test * n_playlists), cfg.min_eval_playlists)
    return val, test


def assign_splits(playlist_ids: list[str], cfg: SplitConfig, seed: int) -> dict[str, str]:
    val, test = effective_ratios(len(playlist_ids), cfg)
    assignment = {}
    for pid in playlist_ids:
        u = unit_hash(pid, seed)
        assignment[pid] = "test" if u < test else "val" if u < test + val else "train"
    return assignment


def write_split_file(path: str | Path, assignment: dict[str, str]) -> None:
    with atomic_path(path) as tmp:
        pd.DataFrame({"playlist_id": list(assignment), "split": list(assignment.values())}).to_csv(
            tmp, index=False, encoding="utf-8")


def read_split_file(path: str | Path) -> dict[str, str]:
    path = Path(path)
    frame = read_table(path, ["playlist_id", "split"], "playlist split")
    check_ids(frame, "playlist_id", path, unique=True)
    bad = ~frame["split"].isin(SPLITS)
    if bad.any():
        line = int(bad.to_numpy().nonzero()[0][0]) + 2
        raise DataError(path, f"split must be one of {', '.join(SPLITS)}", line=line, column="split")
    return dict(zip(frame["playlist_id"].str.strip(), frame["split"]))


def load_or_assign_splits(playlist_ids: list[str], split_file: str, cfg: SplitConfig, seed: int) -> dict[str, str]:
    """The stage-0 split when the data has one; otherwise the same hash split made here. A split file named on purpose
    (not the default's, which exists only once the demo data is made) must exist: a typo must not silently re-split."""
    if split_file and not Path(split_file).exists() and split_file != DataConfig().split_file:
        raise DataError(split_file, "split file not found (give an existing one, or --data.split_file '' for a hash "
                        "split of the playlists)")
    if split_file and Path(split_file).exists():
        assignment = read_split_file(split_file)
        missing = [pid for pid in playlist_ids if pid not in assignment]
        if missing:
            raise DataError(split_file, f"{len(missing)} playlists have no split (e.g. {missing[0]!r}): "
                            "rerun prepare_data.py so the split covers the playlist file")
        log.info("using the playlist split in %s", split_file)
        return {pid: assignment[pid] for pid in playlist_ids}
    log.info("no split file at %r: assigning a hash split", split_file)
    return assign_splits(playlist_ids, cfg, seed)
