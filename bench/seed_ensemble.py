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
from dataclasses import dataclass, replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from config import Config  # noqa: E402
from genrec.cli import run_script  # noqa: E402
from genrec.corpus.build import corpus_path, read_corpus, vocab_path  # noqa: E402
from genrec.decode.decoding import DecodingSettings, decode  # noqa: E402
from genrec.errors import ConfigError  # noqa: E402
from genrec.evaluate.baselines import (PopularityBaseline, TrainingPlaylists, read_hybrid,  # noqa: E402
                                       tuned_title_knn_of)
from genrec.evaluate.metrics import mean_over, per_playlist  # noqa: E402
from genrec.evaluate.playlists import EvalPlaylists, split_playlists  # noqa: E402
from genrec.evaluate.report import format_comparison, versus  # noqa: E402
from genrec.evaluate.systems import partner_rankings  # noqa: E402
from genrec.model.t5 import TigerBundle, load_tiger, resolve_device, tiger_final_dir  # noqa: E402

Scored = list[tuple[str, float]]

def add_arguments(parser) -> None:
    parser.add_argument("--also", nargs=2, action="append", default=[], metavar=("OUTPUT_DIR", "MODEL_DIR"),
                        help="another run of the same data to average with the configured one (repeatable)")
    parser.add_argument("--playlists", type=int, default=0, help="first N test playlists (0: all)")


def mean_probability(rankings: list[Scored], n: int) -> list[str]:
    """The top n songs by probability averaged over the runs' (song, log-probability) rankings of one title (ties:
    first seen first)."""
    total: dict[str, float] = defaultdict(float)
    for ranking in rankings:
        for song, logprob in ranking:
            total[song] += math.exp(logprob)
    return sorted(total, key=lambda s: -total[s])[:n]


@dataclass
class Run:
    """One run's folders: its config, its trained model and its training playlists."""

    cfg: Config
    tiger: TigerBundle
    training: TrainingPlaylists

    @classmethod
    def load(cls, cfg: Config, output_dir: str, model_dir: str) -> "Run":
        cfg = replace(cfg, run=replace(cfg.run, output_dir=output_dir, model_dir=model_dir))
        tiger = load_tiger(tiger_final_dir(cfg), resolve_device(cfg.run.device), vocab_path(cfg))
        return cls(cfg, tiger, TrainingPlaylists.from_corpus(read_corpus(corpus_path(cfg, "train"))))

    def test_split(self, n: int) -> EvalPlaylists:
        """The first n (0: all) test playlists of the run's corpus."""
        return split_playlists(self.cfg, "test", self.tiger.vocab.songs).head(n)

    def model_rankings(self, titles: list[str]) -> list[Scored]:
        """(song, log-probability) per title, decoded as evaluate_tiger.py's model system does (seeded, constrained,
        eval.num_songs songs, cluster members picked by training popularity)."""
        cfg = self.cfg
        torch.manual_seed(cfg.run.seed)
        decoded = decode(self.tiger, self.tiger.model_titles(titles),
                         DecodingSettings.from_config(cfg.decode, cfg.eval.num_songs), constrained=True,
                         popularity=PopularityBaseline(self.training.songs).counts, progress=True)
        return [d.songs for d in decoded]


def main(cfg, extras) -> None:
    if extras["playlists"] < 0:
        raise ConfigError("--playlists must be at least 0")
    if not extras["also"]:
        raise ConfigError("--also OUTPUT_DIR MODEL_DIR: name at least one other run to average with")
    runs = [(cfg.run.output_dir, cfg.run.model_dir), *map(tuple, extras["also"])]
    n, k = cfg.eval.num_songs, max(cfg.eval.k_values)
    loaded = [Run.load(cfg, output_dir, model_dir) for output_dir, model_dir in runs]
    first = loaded[0]
    test = first.test_split(extras["playlists"])
    for run, (output_dir, _) in zip(loaded[1:], runs[1:]):
        if run.test_split(extras["playlists"]).ids != test.ids:
            raise ConfigError(f"{output_dir} holds other test playlists than {runs[0][0]}: average runs of one "
                              "data import and split only")
    decoded = [run.model_rankings(test.titles) for run in loaded]
    rankings = {f"run {i + 1}": [[song for song, _ in songs] for songs in run] for i, run in enumerate(decoded)}
    rankings["ensemble"] = [mean_probability(list(title), n) for title in zip(*decoded)]
    knn = tuned_title_knn_of(read_hybrid(first.cfg), first.training)
    rankings.update(partner_rankings(first.tiger, knn, PopularityBaseline(first.training.songs), test, n))
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
