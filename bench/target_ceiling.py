"""What a perfectly fitted single-mode model would score: the ranking its training targets imply.

    python bench/target_ceiling.py [--config ...] [--weights 0 0.25 0.5 1 2] [--walks 0 8 32] [--knn retrieval]

A single-mode model trained on pooled targets learns, for each training title, a distribution over
songs; fitted perfectly, it ranks a seen title's songs by their target score. This prints, on the
validation and test playlists (ground truth as evaluate_tiger.py scores it, songs outside the
catalogue included), NDCG@K and R-precision of that ranking for each ``targets.neighbour_weight`` in
``--weights`` (0: pooled targets of the title's own playlists only; see genrec.train.neighbour_targets) and
each ``targets.cooccurrence_weight`` in ``--walks`` (the co-occurrence walk on top; 0: none),
popularity filling the rest, beside title kNN (the evaluation's, whose votes the neighbour targets use) and,
for each walk weight, title kNN's own list after the walk (what ``retrieval.walk_weight`` gives a
retrieving model to read and copy; a non-learned system to compare a model with). Titles never seen in
training have no own songs, so their rows show what the neighbours alone give. No training: seconds.
``--knn retrieval`` builds everything on the retriever's kNN instead (tuned on the val playlists'
catalogue songs, mixing in title vectors at ``retrieval.vector_weight`` with ``network.title_encoder``):
its walked row is then exactly the list a retrieving model reads (the evaluation's ``retrieved`` system).
Run after prepare_corpus.py.
Use it to choose the two weights on the validation rows; compare the trained model's
evaluation with the ceiling to tell a fitting problem (model below its ceiling) from a target problem.
"""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from genrec.evaluate.baselines import PopularityBaseline, TrainingPlaylists, knn_tuned_on, normalise_title  # noqa: E402
from genrec.cli import run_script  # noqa: E402
from genrec.corpus.build import corpus_path, load_vocab, read_corpus  # noqa: E402
from genrec.evaluate.playlists import split_playlists  # noqa: E402
from genrec.evaluate.report import TITLE_BUCKETS  # noqa: E402
from genrec.evaluate.systems import tuned_title_knn  # noqa: E402
from genrec.evaluate.metrics import mean_over, per_playlist  # noqa: E402
from genrec.train.neighbour_targets import (NEIGHBOUR_SONGS, CooccurrenceWalk, NeighbourVotes, own_counts, target_ranking,  # noqa: E402
                                      title_scores, walked_knn)
from genrec.model.retrieval import vector_mix  # noqa: E402
from genrec.model.title_vectors import TitleVectorEncoder  # noqa: E402


def add_arguments(parser) -> None:
    parser.add_argument("--weights", type=float, nargs="+", default=[0.0, 0.25, 0.5, 1.0, 2.0],
                        help="targets.neighbour_weight values to score")
    parser.add_argument("--walks", type=float, nargs="+", default=[0.0],
                        help="targets.cooccurrence_weight values to score with each neighbour weight")
    parser.add_argument("--knn", choices=("baseline", "retrieval"), default="baseline",
                        help="whose title kNN the votes, walks and targets use: the evaluated baseline's (tuned on the "
                             "val playlists' full ground truth; what training uses) or the retriever's (tuned on their "
                             "catalogue songs, with retrieval.vector_weight; what a retrieving model reads)")


def report(name: str, rankings: list[list[str]], truths: list[list[str]], seen: np.ndarray, k: int) -> str:
    per = per_playlist(rankings, truths, [k])
    cells = [f"{mean_over(per)[f'ndcg@{k}']:.4f}", f"{mean_over(per)['r_precision']:.4f}"]
    for _, low, high in TITLE_BUCKETS:
        mask = (seen >= low) & (seen <= high)
        cells.append(f"{mean_over(per, mask)[f'ndcg@{k}']:.4f}" if mask.any() else "-")
    return f"| {name} | " + " | ".join(cells) + " |"


def main(cfg, extras) -> None:
    k = max(cfg.eval.k_values)
    catalogue = load_vocab(cfg).songs
    training = TrainingPlaylists.from_corpus(read_corpus(corpus_path(cfg, "train")))
    popularity = PopularityBaseline(training.songs)
    val = split_playlists(cfg, "val", catalogue).head(cfg.eval.val_playlists)
    if extras["knn"] == "baseline":
        knn, _ = tuned_title_knn(cfg, training, val, popularity)
    else:
        weight, name = cfg.retrieval.vector_weight, cfg.network.title_encoder
        mix = vector_mix(weight, TitleVectorEncoder(name) if weight and name else None)  # as training retrieves
        knn = knn_tuned_on(training, read_corpus(corpus_path(cfg, "val")), k, *mix)
    print(f"title kNN ({extras['knn']}): {knn.params}")
    votes = NeighbourVotes(knn, training)
    walk = CooccurrenceWalk(knn) if any(extras["walks"]) else None
    counts = {}
    for title in training.titles:
        counts[normalise_title(title)] = counts.get(normalise_title(title), 0) + 1
    buckets = " | ".join(name for name, _, _ in TITLE_BUCKETS)
    for split in ("val", "test"):
        playlists = val if split == "val" else split_playlists(cfg, "test", catalogue)
        seen = np.array([counts.get(normalise_title(t), 0) for t in playlists.titles])
        own = own_counts(training, playlists.titles)
        print(f"\n{split}: {len(playlists.titles)} playlists; NDCG@{k} by title bucket ({buckets})")
        print(f"| ranking | NDCG@{k} | R-prec | {buckets} |\n|---|---|---|" + "---|" * len(TITLE_BUCKETS))
        print(report("title kNN", knn.recommend(playlists.titles, cfg.eval.num_songs),
                     playlists.truths, seen, k))
        for walked in filter(None, extras["walks"]):
            rankings = walked_knn(knn, walk, playlists.titles, walked, NEIGHBOUR_SONGS, cfg.eval.num_songs)
            print(report(f"title kNN, cooccurrence walk {walked:g}", rankings, playlists.truths, seen, k))
        for weight, walked in itertools.product(extras["weights"], extras["walks"]):
            scores = title_scores(votes, playlists.titles, own, weight, NEIGHBOUR_SONGS, walk, walked)
            rankings = [target_ranking(s, popularity, cfg.eval.num_songs) for s in scores]
            name = f"targets, neighbour_weight {weight:g}" + (f", cooccurrence_weight {walked:g}" if walked else "")
            print(report(name, rankings, playlists.truths, seen, k))


if __name__ == "__main__":
    sys.exit(run_script(main, __doc__, extra=add_arguments))
