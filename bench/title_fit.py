"""How well a trained single-mode model has learnt the titles it was trained on, by how often they occur.

    python bench/title_fit.py [--config ...] [--titles 100]     # after train_tiger.py

Title kNN's strength on titles seen in training is memory: it returns the songs of the training
playlists with that title. This measures the model's memory the same way. For up to ``--titles``
training titles per bucket (titles of 1, 2-9 and 10+ training playlists, sampled with run.seed), and
for every validation title seen in training, it prints the share of the title's own training songs
(at most eval.num_songs of them) that a top eval.num_songs ranking holds:

- model: the trained model, decoded as the evaluation decodes;
- targets: the ranking its pooled training targets imply (own playlists plus ``targets.neighbour_weight``
  times the neighbour votes, plus the ``targets.cooccurrence_weight`` walk, as ``bench/target_ceiling.py``
  scores it), i.e. what it was taught;
- title kNN (validation titles only: for a training title it would return the playlist itself).

A model well below its targets on the training titles has not fitted them (an optimisation or
capacity problem), which no change of targets fixes. A second table says where: for the training
titles, the mean log-probability of their own songs' ID tokens level by level, given the token's
prefix, under the model (teacher-forced) and under the targets (the pooled targets' conditional
shares, sharpened as in training).
"""

from __future__ import annotations

import math
import random
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from genrec.evaluate.baselines import PopularityBaseline, TrainingPlaylists, normalise_title  # noqa: E402
from genrec.cli import run_script  # noqa: E402
from genrec.corpus.build import corpus_path, read_corpus, vocab_path  # noqa: E402
from genrec.errors import ConfigError  # noqa: E402
from genrec.decode.decoding import DecodingSettings  # noqa: E402
from genrec.evaluate.playlists import split_playlists  # noqa: E402
from genrec.evaluate.systems import tuned_title_knn  # noqa: E402
from genrec.decode.decoding import decode  # noqa: E402
from genrec.model.t5 import load_tiger, resolve_device, tiger_final_dir, title_inputs  # noqa: E402
from genrec.train.neighbour_targets import (NEIGHBOUR_SONGS, CooccurrenceWalk, NeighbourVotes, own_counts, target_ranking,  # noqa: E402
                                      title_scores)

BUCKETS = (("1 playlist", 1, 1), ("2-9 playlists", 2, 9), ("10+ playlists", 10, math.inf))
SONGS_PER_TITLE = 200
"""Own songs per title whose tokens the level table scores (the title's most frequent)."""


def add_arguments(parser) -> None:
    parser.add_argument("--titles", type=int, default=100, help="training titles sampled per bucket")


def own_song_recall(rankings: list[list[str]], own: list[Counter], n: int) -> float:
    """Mean share of each title's own training songs (at most n) among its top n."""
    shares = [len(set(r[:n]) & set(o)) / min(n, len(o)) for r, o in zip(rankings, own) if o]
    return sum(shares) / len(shares) if shares else float("nan")


def level_log_probs(bundle, title: str, own: Counter, scores: dict[str, float], sharpening: float) -> np.ndarray:
    """(2, levels): mean over the title's own songs of log p(ID token | prefix), model then targets."""
    tokenizer = bundle.tokenizer
    paths = {song: tokenizer.convert_tokens_to_ids(list(bundle.vocab.songs[song])) for song in scores}
    mass: Counter = Counter()
    for song, score in scores.items():
        for j in range(len(paths[song]) + 1):
            mass[tuple(paths[song][:j])] += score ** sharpening
    songs = [song for song, _ in own.most_common(SONGS_PER_TITLE)]
    chosen = torch.tensor([paths[song] for song in songs], device=bundle.model.device)
    start = torch.full((len(songs), 1), tokenizer.pad_token_id, device=bundle.model.device)
    encoded = title_inputs(bundle.model, tokenizer, [title] * len(songs), bundle.max_input_length,
                           bundle.title_encoder, bundle.retriever)
    with torch.no_grad():
        logits = bundle.model(**encoded, decoder_input_ids=torch.cat([start, chosen[:, :-1]], dim=1)).logits
    model = logits.float().log_softmax(-1).gather(-1, chosen.unsqueeze(-1)).squeeze(-1).mean(0).cpu().numpy()
    target = np.mean([[math.log(mass[tuple(paths[song][:j + 1])] / mass[tuple(paths[song][:j])])
                       for j in range(len(paths[song]))] for song in songs], axis=0)
    return np.stack([model, target])


def main(cfg, extras) -> None:
    if extras["titles"] < 1:
        raise ConfigError(f"--titles must be at least 1, got {extras['titles']}")
    bundle = load_tiger(tiger_final_dir(cfg), resolve_device(cfg.run.device), vocab_path(cfg))
    if bundle.target_mode != "single":
        raise ConfigError(f"{tiger_final_dir(cfg)} is a {bundle.target_mode}-mode model; this bench reads single mode")
    n = cfg.eval.num_songs
    training = TrainingPlaylists.from_corpus(read_corpus(corpus_path(cfg, "train")))
    popularity = PopularityBaseline(training.songs)
    val = split_playlists(cfg, "val", bundle.vocab.songs).head(cfg.eval.val_playlists)
    knn, _ = tuned_title_knn(cfg, training, val, popularity)
    votes = NeighbourVotes(knn, training)
    walk = CooccurrenceWalk(knn) if cfg.targets.cooccurrence_weight else None
    settings = DecodingSettings.from_config(cfg.decode, cfg.eval.num_songs)

    def recalls(titles: list[str], training_titles: bool) -> dict:
        own = own_counts(training, titles)
        scores = title_scores(votes, titles, own, cfg.targets.neighbour_weight, NEIGHBOUR_SONGS,
                              walk, cfg.targets.cooccurrence_weight)
        model = [[song for song, _ in d.songs] for d in decode(bundle, titles, settings, True, popularity.counts)]
        targets = [target_ranking(score, popularity, n) for score in scores]
        found = {"model": own_song_recall(model, own, n), "targets": own_song_recall(targets, own, n)}
        if training_titles:
            found["levels"] = np.mean([level_log_probs(bundle, t, o, score, cfg.targets.sharpening)
                                       for t, o, score in zip(titles, own, scores)], axis=0)
        else:
            found["title kNN"] = own_song_recall(knn.recommend(titles, n), own, n)
        return found

    counts = Counter(normalise_title(t) for t in training.titles)
    distinct = sorted({normalise_title(t): t for t in training.titles}.values())
    rng = random.Random(cfg.run.seed)
    print(f"Share of a title's own training songs (at most {n}) in the top {n} "
          f"(targets.neighbour_weight {cfg.targets.neighbour_weight:g}, "
          f"targets.cooccurrence_weight {cfg.targets.cooccurrence_weight:g}):\n")
    print("| titles | bucket | count | model | targets | title kNN |\n|---|---|---|---|---|---|")
    levels = {}
    for name, low, high in BUCKETS:
        members = [t for t in distinct if low <= counts[normalise_title(t)] <= high]
        sample = rng.sample(members, min(extras["titles"], len(members)))
        if sample:
            found = recalls(sample, training_titles=True)
            levels[name] = found["levels"]
            print(f"| training | {name} | {len(sample)} | {found['model']:.3f} | {found['targets']:.3f} | - |")
        seen = [t for t in val.titles if low <= counts[normalise_title(t)] <= high]
        if seen:
            found = recalls(seen, training_titles=False)
            print(f"| validation | {name} | {len(seen)} | {found['model']:.3f} | {found['targets']:.3f} "
                  f"| {found['title kNN']:.3f} |")
    width = bundle.vocab.id_length
    print("\nMean log-probability of training titles' own songs' ID tokens given their prefix, level by level, "
          "model / targets:\n")
    print("| bucket | " + " | ".join(f"level {j + 1}" for j in range(width)) + " |\n|---|" + "---|" * width)
    for name, (model, target) in levels.items():
        print(f"| {name} | " + " | ".join(f"{m:.2f} / {t:.2f}" for m, t in zip(model, target)) + " |")


if __name__ == "__main__":
    sys.exit(run_script(main, __doc__, extra=add_arguments))
