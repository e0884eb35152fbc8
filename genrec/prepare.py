"""Stage 0: produce a dataset folder in the input schema (demo data, or imported playlists)."""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

from config import Config

from .artifacts import write_json
from .cli import config_as_dict
from .dataset import Dataset, write_dataset
from .demo import generate_demo
from .errors import ConfigError
from .split import assign_splits

log = logging.getLogger(__name__)


def prepare_demo(cfg: Config) -> dict:
    p = cfg.prepare
    demo = generate_demo(p.demo_songs, p.demo_playlists, p.demo_tastes, cfg.data.input_dim, cfg.run.seed)
    split = assign_splits(demo.playlist_ids, cfg.split, cfg.run.seed)
    report = {
        "source": "demo",
        "songs": len(demo.song_ids),
        "playlists": len(demo.playlist_ids),
        "rows": sum(map(len, demo.playlist_songs)),
        "split": dict(Counter(split.values())),
    }
    dataset = Dataset(demo.song_ids, demo.vectors, demo.song_names, demo.singers, demo.playlist_ids,
                      demo.titles, demo.playlist_songs, split)
    write_dataset(p.output, dataset, {}, [], config_as_dict(cfg, ["prepare", "split", "run"]), report)
    return report


def prepare(cfg: Config) -> dict:
    if cfg.prepare.source == "demo":
        report = prepare_demo(cfg)
    else:
        raise ConfigError(f"prepare.source={cfg.prepare.source} is not built yet (see the import issue)")
    report_path = Path(cfg.run.output_dir) / "data_report.json"
    write_json(report_path, report)
    log.info("report: %s", report_path)
    return report
