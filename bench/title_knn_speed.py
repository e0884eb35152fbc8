"""Title kNN's neighbours through the distinct training titles (what TitleKNN does) against the product over every
training playlist (what it did before), on the same titles in the same run: seconds each, their ratio, and whether
the neighbours (indices and similarities) are equal.

    python bench/title_knn_speed.py --config data/spotify_mpd/config.yaml --run.output_dir outputs/spotify_mpd/serve \
        [--titles 200] [--k 250]

The titles are the first ``--titles`` test playlists' titles; ``k`` defaults to the largest the evaluation tunes.
Reads the corpus (prepare_corpus.py); writes nothing.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from genrec.cli import parse_config  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--titles", type=int, default=200)
    parser.add_argument("--k", type=int, default=0)
    ours, rest = parser.parse_known_args(sys.argv[1:])
    cfg, _ = parse_config(rest, __doc__, help_groups=["run", "data"])

    import numpy as np
    from genrec.corpus.build import corpus_path, read_corpus
    from genrec.evaluate.baselines import KNN_GRID, TitleKNN, TrainingPlaylists, read_training_playlists

    started = time.perf_counter()
    training = read_training_playlists(corpus_path(cfg, "train"))
    titles = TrainingPlaylists.from_corpus(read_corpus(corpus_path(cfg, "test"))).titles[:ours.titles]
    knn = TitleKNN().fit(training.titles, training.songs)
    print(f"{len(training.titles):,} training playlists, {knn.matrix_t.shape[1]:,} distinct titles; "
          f"{len(titles)} test titles ({len(set(titles))} distinct); fitted in {time.perf_counter() - started:.1f} s")

    class EveryPlaylist(TitleKNN):
        """The product before distinct titles: one TF-IDF row per training playlist."""

        def similarities(self, block):
            return (self._vectorise(block) @ self.playlist_matrix_t).toarray()

    baseline = EveryPlaylist.__new__(EveryPlaylist)
    baseline.__dict__.update(knn.__dict__)
    baseline.playlist_matrix_t = knn._vectorise(training.titles).T.tocsr()

    k = ours.k or max(KNN_GRID["k"])
    seconds, found = {}, {}
    for name, system in (("every playlist", baseline), ("distinct titles", knn)):
        start = time.perf_counter()
        found[name] = system.neighbours(titles, k)
        seconds[name] = time.perf_counter() - start
        print(f"{name}: {seconds[name]:.2f} s ({1000 * seconds[name] / len(titles):.1f} ms a title)")
    equal = all(np.array_equal(a, b) for a, b in zip(found["every playlist"], found["distinct titles"]))
    print(f"distinct titles / every playlist time: {seconds['distinct titles'] / seconds['every playlist']:.3f}; "
          f"neighbours equal: {equal}")


if __name__ == "__main__":
    main()
