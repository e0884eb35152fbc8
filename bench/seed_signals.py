"""Each seed signal of the seeded walk alone, on the validation split: NDCG@100 per seeded category for item
co-occurrence kNN (the cosine the walk blends in, and the variants tried beside it) and for the playlists most
like the seeds (genrec.evaluate.continuation.PlaylistNeighbours) at several neighbour counts and powers: how
NEIGHBOUR_PLAYLISTS and NEIGHBOUR_SHARPNESS were chosen (docs/experiments/continuation.md).

    python bench/seed_signals.py --config data/spotify_mpd/config.yaml --config presets/mpd_cpu.yaml --run.output_dir outputs/spotify_mpd/serve

Reads the corpus (prepare_corpus.py) and the data files; writes nothing.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from genrec.cli import parse_config  # noqa: E402

CATEGORY_NAMES = ("title + first 1", "title + first 5", "title + first 10", "title + random 25", "title + first 100")
NEIGHBOURS = ((25, 1.0), (50, 1.0), (100, 1.0), (100, 2.0), (200, 2.0), (400, 2.0))
COSINE_VARIANTS = ((0.5, 1), (0.75, 1), (0.9, 1), (0.5, 3))
"""(a, power): co-occurrences / (seed's playlists^a x song's playlists^(1 - a)), each seed's raised to the power
before the sum; (0.5, 1) is ItemCooccurrence's cosine."""
DEPTH = 600


def variant_cosines(members, index, songs, seeds, a: float, power: int) -> list[dict[str, float]]:
    """Item co-occurrence with an asymmetric cosine and a power on each seed's similarities (per case)."""
    counts = np.maximum(np.asarray(members.sum(axis=0)).ravel(), 1.0)
    by_song = members.tocsc()
    out = []
    for given in seeds:
        known = [index[s] for s in dict.fromkeys(given) if s in index]
        if not known:
            out.append({})
            continue
        rows = (by_song[:, known].T @ members).tocsr()
        rows = rows.multiply(1.0 / counts[known][:, None] ** a).multiply(1.0 / counts[None, :] ** (1 - a)).tocsr()
        rows.data **= power
        total = np.asarray(rows.sum(axis=0)).ravel()
        top = np.argsort(-total, kind="stable")[:DEPTH]
        out.append({songs[i]: float(total[i]) for i in top if total[i] > 0})
    return out


def main() -> None:
    cfg, _ = parse_config(sys.argv[1:], __doc__, help_groups=["run", "data", "eval"])
    from genrec.corpus.build import corpus_path, read_corpus, vocab_path
    from genrec.corpus.id_tokens import SemanticIdVocab
    from genrec.evaluate.baselines import PopularityBaseline, TrainingPlaylists
    from genrec.evaluate.continuation import (CATEGORIES, ItemCooccurrence, PlaylistNeighbours, category_cases,
                                              continued, top_songs)
    from genrec.evaluate.metrics import ndcg_score
    from genrec.evaluate.playlists import split_playlists
    from genrec.evaluate.systems import tuned_title_knn

    training = TrainingPlaylists.from_corpus(read_corpus(corpus_path(cfg, "train")))
    catalogue = SemanticIdVocab.load(vocab_path(cfg)).songs
    val = split_playlists(cfg, "val", catalogue).head(cfg.eval.val_playlists)
    popularity = PopularityBaseline(training.songs)
    knn, _ = tuned_title_knn(cfg, training, val, popularity)
    cooccurrence = ItemCooccurrence(knn)
    score = ndcg_score(100)
    fill = popularity.ranking[:DEPTH]
    systems = {f"cosine a {a}, power {power}": (lambda seeds, depth, a=a, power=power: variant_cosines(
        cooccurrence.members, cooccurrence.index, cooccurrence.songs, seeds, a, power)) for a, power in COSINE_VARIANTS}
    systems |= {f"playlists k {k}, power {power:g}": PlaylistNeighbours(cooccurrence, k, power).scored
                for k, power in NEIGHBOURS}
    print("| category (validation playlists) | " + " | ".join(systems) + " |")
    print("|---" * (len(systems) + 1) + "|")
    for category in (c for c in CATEGORIES if c.name in CATEGORY_NAMES):
        cases = category_cases(val, category, cfg.run.seed)
        cells = []
        for system in systems.values():
            lists = [continued(top_songs(scores, popularity.rank, 100 + len(given)), given, fill, 100)
                     for scores, given in zip(system(cases.seeds, DEPTH), cases.seeds)]
            cells.append(f"{score(lists, cases.truths):.4f}")
        print(f"| {category.name} ({len(cases.rows)}) | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
