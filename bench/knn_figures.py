"""The evaluation's baselines on a corpus's test split without a model: popularity, title kNN tuned on validation
(genrec.evaluate.systems.tuned_title_knn, as evaluate_tiger.py tunes it), and title kNN's list after one step of
the co-occurrence walk (presets/mpd_cpu_retrieval.yaml's weight). Prints each system's metrics and a digest of its
rankings, so two versions of the code can be compared on the same data (equal digests: equal rankings).

    python bench/knn_figures.py --config data/spotify_mpd/config.yaml --run.output_dir outputs/spotify_mpd

Reads the corpus (prepare_corpus.py) and the data files; writes nothing.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from genrec.cli import parse_config  # noqa: E402

WALK_WEIGHT, WALK_SONGS = 32.0, 200


def digest(rankings: list[list[str]]) -> str:
    return hashlib.sha256("\n".join(" ".join(r) for r in rankings).encode("utf-8")).hexdigest()[:16]


def main() -> None:
    cfg, _ = parse_config(sys.argv[1:], __doc__, help_groups=["run", "data", "split", "eval"])
    from genrec.corpus.build import corpus_path, read_corpus
    from genrec.data.files import load_song_info
    from genrec.evaluate.baselines import PopularityBaseline, TrainingPlaylists
    from genrec.evaluate.metrics import mean_over, per_playlist
    from genrec.evaluate.playlists import split_playlists
    from genrec.evaluate.systems import tuned_title_knn
    from genrec.train.neighbour_targets import CooccurrenceWalk, walked_knn

    ecfg = cfg.eval
    training = TrainingPlaylists.from_corpus(read_corpus(corpus_path(cfg, "train")))
    catalogue = {song for songs in training.songs for song in songs}
    popularity = PopularityBaseline(training.songs)
    test = split_playlists(cfg, "test", catalogue).head(ecfg.max_playlists)
    val = split_playlists(cfg, "val", catalogue).head(ecfg.val_playlists)
    knn, _ = tuned_title_knn(cfg, training, val, popularity)
    rankings = {"popularity": popularity.recommend(test.titles, ecfg.num_songs),
                "title_knn": knn.recommend(test.titles, ecfg.num_songs),
                "walked_knn": walked_knn(knn, CooccurrenceWalk(knn), test.titles, WALK_WEIGHT, WALK_SONGS,
                                         ecfg.num_songs)}
    artists = load_song_info(cfg.data).singers
    out = {"test_playlists": len(test.ids), "val_playlists": len(val.ids), "title_knn_params": vars(knn.params)}
    for name, ranked in rankings.items():
        metrics = mean_over(per_playlist(ranked, test.truths, ecfg.k_values, artists))
        out[name] = {"digest": digest(ranked), **{k: round(float(v), 6) for k, v in metrics.items()}}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
