"""Requests with seed songs through the bundle, scored beside what evaluate_continuation.py measured for them.

    python bench/seeded_serving.py [--config ...]     # after evaluate_continuation.py and export_bundle.py

For three challenge categories (title + first 1, title + first 5, title + random 25), each test playlist's title and
seeds (the catalogue's ones: the generator refuses an unknown seed, which adds nothing to a continuation) go through
the Python API (genrec.PlaylistGenerator, ``seeds=``, ``eval.num_songs`` songs), and are scored by the continuation
evaluation's code against the same held-out songs; the table puts them beside the served system's evaluated figures
in ``continuation_metrics.json``. Serving differs in one thing: a title no training title resembles is read as no
title (the evaluation reads every title).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from genrec import PlaylistGenerator  # noqa: E402
from genrec.cli import run_script  # noqa: E402
from genrec.evaluate.continuation import CATEGORIES, CONTINUATION_FILE, case_metrics, category_cases  # noqa: E402
from genrec.evaluate.playlists import split_playlists  # noqa: E402
from genrec.serve.seeds import SEED_HYBRID  # noqa: E402

CHECKED = ("title + first 1", "title + first 5", "title + random 25")


def main(cfg, extras) -> None:
    generator = PlaylistGenerator.load(cfg.run.model_dir, cfg.run.device)
    evaluated = json.loads((Path(cfg.run.output_dir) / CONTINUATION_FILE).read_text(encoding="utf-8"))["systems"]
    served = generator.seeded.system
    name = "hybrid" if served == SEED_HYBRID else "walk"
    test = split_playlists(cfg, "test", generator.tiger.vocab.songs).head(cfg.eval.max_playlists)
    n, top = cfg.eval.num_songs, f"ndcg@{max(cfg.eval.k_values)}"
    print(f"bundle {generator.folder} serves seeds with {served} (evaluated as {name}); {n} songs each")
    print(f"{'category':<20}{'playlists':>10}{'served ' + top:>18}{'evaluated':>11}{'served R-prec':>15}{'evaluated':>11}"
          f"{'served clicks':>15}{'evaluated':>11}")
    for category in (c for c in CATEGORIES if c.name in CHECKED):
        cases = category_cases(test, category, cfg.run.seed)
        ranked = []
        for title, seeds in zip(cases.titles, cases.seeds):
            known = [s for s in seeds if s in generator.names]
            playlist = generator.generate(title, num_songs=n, **({"seeds": known} if known else {}))
            ranked.append([song.song_id for song in playlist.songs])
        per = {k: float(np.nanmean(v)) for k, v in case_metrics(ranked, cases.truths, cfg.eval.k_values).items()}
        figures = {metric: evaluated[name][metric][category.name]["mean"] for metric in (top, "r_precision", "clicks")}
        print(f"{category.name:<20}{len(cases.rows):>10}{per[top]:>18.4f}{figures[top]:>11.4f}"
              f"{per['r_precision']:>15.4f}{figures['r_precision']:>11.4f}{per['clicks']:>15.2f}{figures['clicks']:>11.2f}")


if __name__ == "__main__":
    sys.exit(run_script(main, __doc__, groups=["run", "data", "eval"]))
