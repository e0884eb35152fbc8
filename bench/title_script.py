"""What a user typing titles in the other Chinese script gets: the test titles as written, then rewritten.

    python bench/title_script.py [--config ...] --to simplified [--playlists 0]    # after evaluate_tiger.py

Takes the test playlists' titles as the data file writes them (not the corpus's, which may be folded),
rewrites them into ``--to`` script with OpenCC (genrec.text.fold_script), and scores both sets of titles
against the same ground truth (the playlists' songs, outside-catalogue ones kept as misses) for the
model, the hybrid as generate_playlist.py serves it, and title kNN with the parameters that
evaluate_tiger.py tuned (hybrid.json). A model trained on titles as written (corpus.title_script '')
loses what its training titles only spell in the other script; one whose corpus folded both scripts
(corpus.title_script simplified or traditional) should score the same on both sets of titles.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from genrec.evaluate.baselines import read_hybrid, tuned_title_knn_of  # noqa: E402
from genrec.cli import run_script  # noqa: E402
from genrec.data.files import load_playlist_info  # noqa: E402
from genrec.errors import ConfigError  # noqa: E402
from genrec.evaluate.playlists import split_playlists  # noqa: E402
from genrec.serve.generator import PlaylistGenerator, as_evaluated  # noqa: E402
from genrec.evaluate.metrics import mean_over, per_playlist  # noqa: E402
from genrec.text import fold_script  # noqa: E402

SCRIPTS = ("simplified", "traditional")


def add_arguments(parser) -> None:
    parser.add_argument("--to", choices=SCRIPTS, required=True, help="script the test titles are rewritten into")
    parser.add_argument("--playlists", type=int, default=0, help="first N test playlists (0: all)")


def main(cfg, extras) -> None:
    if extras["playlists"] < 0:
        raise ConfigError("--playlists must be at least 0")
    cfg = as_evaluated(cfg)
    generator = PlaylistGenerator(cfg)
    test = split_playlists(cfg, "test", generator.bundle.vocab.songs).head(extras["playlists"])
    written = dict(zip(*load_playlist_info(cfg.data)))
    as_written = [written[pid] for pid in test.ids]
    rewritten = [fold_script(title, extras["to"]) for title in as_written]
    knn = tuned_title_knn_of(read_hybrid(cfg), generator.training())
    changed = sum(a != b for a, b in zip(as_written, rewritten))
    print(f"{len(test.ids)} test playlists, {changed} of their titles change when written in {extras['to']} script; "
          f"the model's training titles: {generator.bundle.title_script or 'as written'}")
    n, k = cfg.eval.num_songs, max(cfg.eval.k_values)
    print(f"{'titles':<12}{'system':<12}{f'NDCG@{k}':>10}{'R-prec':>10}")
    for name, titles in (("as written", as_written), (extras["to"], rewritten)):
        model = [[song.song_id for song in songs] for songs in generator.generate(titles, progress=True)]
        folded = generator.bundle.model_titles(titles)  # what generate() hands the hybrid's partner
        systems = {"model": model, "hybrid": generator.hybrid().rank(folded, model, n),
                   "title_knn": knn.recommend(folded, n)}
        for system, rankings in systems.items():
            scores = mean_over(per_playlist(rankings, test.truths, [k]))
            print(f"{name:<12}{system:<12}{scores[f'ndcg@{k}']:>10.4f}{scores['r_precision']:>10.4f}")


if __name__ == "__main__":
    sys.exit(run_script(main, __doc__, extra=add_arguments))
