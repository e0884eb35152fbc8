"""What the bundle serves, scored on the test split beside what evaluate_tiger.py measured for the same systems.

    python bench/serving_quality.py [--config ...]          # after run_pipeline.py (export_bundle.py)

Every system the bundle serves answers the test titles through the Python API (genrec.PlaylistGenerator, default
options, ``eval.num_songs`` songs each), and is scored by the evaluation's metric code against the same ground truth
(outside-catalogue songs kept as misses). The table puts its NDCG@max(k) and R-precision beside the figures in
``outputs/evaluation_metrics.json``, and the ratio served / evaluated (1.0: serving gives what was evaluated).
Differences come from what serving adds: the fallback that fills short lists and the title fallback.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from genrec import PlaylistGenerator  # noqa: E402
from genrec.cli import run_script  # noqa: E402
from genrec.evaluate.metrics import mean_over, per_playlist  # noqa: E402
from genrec.evaluate.playlists import split_playlists  # noqa: E402
from genrec.evaluate.report import METRICS_FILE  # noqa: E402
from genrec.serve.bundle import EVALUATED_NAME  # noqa: E402


def main(cfg, extras) -> None:
    generator = PlaylistGenerator.load(cfg.run.model_dir, cfg.run.device)
    test = split_playlists(cfg, "test", generator.tiger.vocab.songs).head(cfg.eval.max_playlists)
    evaluated = json.loads((Path(cfg.run.output_dir) / METRICS_FILE).read_text(encoding="utf-8"))["systems"]
    top = f"ndcg@{max(cfg.eval.k_values)}"
    print(f"{len(test.ids)} test playlists of {test.source}; {cfg.eval.num_songs} songs each; bundle "
          f"{generator.folder} (default {generator.default_system})")
    print(f"{'system':<10}{'served ' + top:>18}{'evaluated':>11}{'ratio':>7}{'served R-prec':>15}{'evaluated':>11}"
          f"{'ratio':>7}{'titles/s':>10}")
    for system in generator.systems:
        started = time.perf_counter()
        playlists = generator.generate_batch(test.titles, progress=True, system=system,
                                             num_songs=cfg.eval.num_songs)
        per_second = len(test.ids) / (time.perf_counter() - started)
        served = mean_over(per_playlist([[s.song_id for s in p.songs] for p in playlists], test.truths,
                                        cfg.eval.k_values))
        was = evaluated[EVALUATED_NAME[system]]
        print(f"{system:<10}{served[top]:>18.4f}{was[top]:>11.4f}{served[top] / max(was[top], 1e-12):>7.3f}"
              f"{served['r_precision']:>15.4f}{was['r_precision']:>11.4f}"
              f"{served['r_precision'] / max(was['r_precision'], 1e-12):>7.3f}{per_second:>10.1f}")


if __name__ == "__main__":
    sys.exit(run_script(main, __doc__))
