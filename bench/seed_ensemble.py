"""Would averaging several trained models beat one? Variance or bias in a model's shortfall.

    python bench/seed_ensemble.py [--config ...] --also OUTPUT_DIR MODEL_DIR [--also ...] [--playlists 0]

The configured run (run.output_dir, run.model_dir) and every ``--also`` run (the same data and split,
another seed) decode the test titles as evaluate_tiger.py's model does (constrained beam search,
eval.num_songs songs, decode.num_beams beams). The ensemble ranks every song that any run returns by its
probability averaged over the runs (0 from a run whose top eval.num_songs leave it out). The script prints
NDCG@K and R-precision of each run, of the ensemble, of the first run's retrieved list (a retrieval model)
and of title kNN with the parameters evaluate_tiger.py tuned (hybrid.json), then every system minus the
retrieved list and minus title kNN, with a 95% paired-bootstrap interval. Seeds differ in IDs,
initialisation and samples. If the ensemble clears a bar that single runs fall short of, their shortfall
is variance, which more data, more training or averaging reduce. If it does not, the shortfall is bias.
"""

from __future__ import annotations

import math
import sys
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from config import Config  # noqa: E402
from genrec.evaluate.baselines import PopularityBaseline, read_hybrid, tuned_title_knn_of  # noqa: E402
from genrec.cli import run_script  # noqa: E402
from genrec.errors import ConfigError  # noqa: E402
from genrec.evaluate.playlists import EvalPlaylists, split_playlists  # noqa: E402
from genrec.evaluate.report import format_comparison, versus  # noqa: E402
from genrec.evaluate.systems import partner_rankings  # noqa: E402
from genrec.serve.generator import PlaylistGenerator, Song, as_evaluated  # noqa: E402
from genrec.evaluate.metrics import mean_over, per_playlist  # noqa: E402


def add_arguments(parser) -> None:
    parser.add_argument("--also", nargs=2, action="append", default=[], metavar=("OUTPUT_DIR", "MODEL_DIR"),
                        help="another run of the same data to average with the configured one (repeatable)")
    parser.add_argument("--playlists", type=int, default=0, help="first N test playlists (0: all)")


def mean_probability(rankings: list[list[Song]], n: int) -> list[str]:
    """The top n songs by probability averaged over the runs' rankings of one title (ties: first seen first)."""
    total: dict[str, float] = defaultdict(float)
    for ranking in rankings:
        for song in ranking:
            total[song.song_id] += math.exp(song.score)
    return sorted(total, key=lambda s: -total[s])[:n]


def run_generator(cfg: Config, output_dir: str, model_dir: str) -> PlaylistGenerator:
    """The generator of one run's folders, decoding as evaluate_tiger.py's model does."""
    return PlaylistGenerator(as_evaluated(replace(cfg, run=replace(cfg.run, output_dir=output_dir,
                                                                   model_dir=model_dir))))


def test_split(generator: PlaylistGenerator, n: int) -> EvalPlaylists:
    """The first n (0: all) test playlists of the run's corpus."""
    return split_playlists(generator.cfg, "test", generator.bundle.vocab.songs).head(n)


def main(cfg, extras) -> None:
    if extras["playlists"] < 0:
        raise ConfigError("--playlists must be at least 0")
    if not extras["also"]:
        raise ConfigError("--also OUTPUT_DIR MODEL_DIR: name at least one other run to average with")
    runs = [(cfg.run.output_dir, cfg.run.model_dir), *map(tuple, extras["also"])]
    n, k = cfg.eval.num_songs, max(cfg.eval.k_values)
    generators = [run_generator(cfg, output_dir, model_dir) for output_dir, model_dir in runs]
    first = generators[0]
    test = test_split(first, extras["playlists"])
    for generator, (output_dir, _) in zip(generators[1:], runs[1:]):
        if test_split(generator, extras["playlists"]).ids != test.ids:
            raise ConfigError(f"{output_dir} holds other test playlists than {runs[0][0]}: average runs of one "
                              "data import and split only")
    decoded = [generator.generate(test.titles, progress=True) for generator in generators]
    rankings = {f"run {i + 1}": [[song.song_id for song in songs] for songs in run] for i, run in enumerate(decoded)}
    rankings["ensemble"] = [mean_probability(list(title), n) for title in zip(*decoded)]
    knn = tuned_title_knn_of(read_hybrid(first.cfg), first.training())
    rankings.update(partner_rankings(first.bundle, knn, PopularityBaseline(first.training().songs), test, n))
    print(f"{len(test.ids)} test playlists of {test.source}; runs: "
          + "; ".join(f"{i + 1} = {model_dir}" for i, (_, model_dir) in enumerate(runs)))
    print_report(rankings, test.truths, k)


def print_report(rankings: dict[str, list[list[str]]], truths: list[list[str]], k: int) -> None:
    """Each system's NDCG@k and R-precision, then every system minus the list and minus title kNN."""
    print(f"{'system':<12}{f'NDCG@{k}':>10}{'R-prec':>10}")
    for system, ranked in rankings.items():
        scores = mean_over(per_playlist(ranked, truths, [k]))
        print(f"{system:<12}{scores[f'ndcg@{k}']:>10.4f}{scores['r_precision']:>10.4f}")
    for baseline in ("retrieved", "title_knn"):
        if baseline in rankings:
            print(format_comparison(versus(rankings, truths, [k], baseline), k, baseline))


if __name__ == "__main__":
    sys.exit(run_script(main, __doc__, extra=add_arguments))
