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

import torch  # noqa: E402

from genrec.cli import run_script  # noqa: E402
from genrec.corpus.build import corpus_path, read_corpus, vocab_path  # noqa: E402
from genrec.data.files import load_playlist_info  # noqa: E402
from genrec.decode.decoding import DecodingSettings, decode  # noqa: E402
from genrec.errors import ConfigError  # noqa: E402
from genrec.evaluate.baselines import (PopularityBaseline, TrainingPlaylists, load_hybrid, read_hybrid,  # noqa: E402
                                       tuned_title_knn_of)
from genrec.evaluate.metrics import mean_over, per_playlist  # noqa: E402
from genrec.evaluate.playlists import split_playlists  # noqa: E402
from genrec.model.t5 import load_tiger, resolve_device, tiger_final_dir  # noqa: E402
from genrec.text import fold_script  # noqa: E402

SCRIPTS = ("simplified", "traditional")


def add_arguments(parser) -> None:
    parser.add_argument("--to", choices=SCRIPTS, required=True, help="script the test titles are rewritten into")
    parser.add_argument("--playlists", type=int, default=0, help="first N test playlists (0: all)")


def main(cfg, extras) -> None:
    if extras["playlists"] < 0:
        raise ConfigError("--playlists must be at least 0")
    tiger = load_tiger(tiger_final_dir(cfg), resolve_device(cfg.run.device), vocab_path(cfg))
    training = TrainingPlaylists.from_corpus(read_corpus(corpus_path(cfg, "train")))
    popularity = PopularityBaseline(training.songs).counts  # picks a cluster's song (collision_strategy cluster)
    test = split_playlists(cfg, "test", tiger.vocab.songs).head(extras["playlists"])
    written = dict(zip(*load_playlist_info(cfg.data)))
    as_written = [written[pid] for pid in test.ids]
    rewritten = [fold_script(title, extras["to"]) for title in as_written]
    knn = tuned_title_knn_of(read_hybrid(cfg), training)
    hybrid = load_hybrid(cfg, lambda: training, tiger.retriever.rank if tiger.retriever else None)
    changed = sum(a != b for a, b in zip(as_written, rewritten))
    print(f"{len(test.ids)} test playlists, {changed} of their titles change when written in {extras['to']} script; "
          f"the model's training titles: {tiger.title_script or 'as written'}")
    n, k = cfg.eval.num_songs, max(cfg.eval.k_values)
    settings = DecodingSettings.from_config(cfg.decode, n)  # the model system as evaluate_tiger.py decodes it
    print(f"{'titles':<12}{'system':<12}{f'NDCG@{k}':>10}{'R-prec':>10}")
    for name, titles in (("as written", as_written), (extras["to"], rewritten)):
        folded = tiger.model_titles(titles)  # what the model and the hybrid's partner read
        torch.manual_seed(cfg.run.seed)
        decoded = decode(tiger, folded, settings, constrained=True, popularity=popularity, progress=True)
        model = [[song for song, _ in d.songs] for d in decoded]
        systems = {"model": model, "hybrid": hybrid.rank(folded, model, n), "title_knn": knn.recommend(folded, n)}
        for system, rankings in systems.items():
            scores = mean_over(per_playlist(rankings, test.truths, [k]))
            print(f"{name:<12}{system:<12}{scores[f'ndcg@{k}']:>10.4f}{scores['r_precision']:>10.4f}")


if __name__ == "__main__":
    sys.exit(run_script(main, __doc__, extra=add_arguments))
