"""How much a retrieval-augmented model (retrieval.songs) uses the songs it is given.

    python bench/retrieval_use.py [--config ...] [--playlists 60]     # after train_tiger.py

For the first ``--playlists`` test titles, decodes as many songs as the model retrieves (beam search,
as the evaluation does) and prints the share of them that are among the retrieved songs, and how
often the model's first song is in the retrieved top 5. A model that copies title kNN scores near
1.0 on both; one that ignores its input scores near what title kNN and the model share anyway.
A model with a copy head (tiger.retrieval_use copy/both) also gets its mean gate at the first ID
level: the weight its own distribution gives to copying there.
That baseline is measured on a model trained without retrieval: there the songs compared with are
title kNN's top ``--songs`` (kNN tuned on validation as training tunes the retriever's). A model that
retrieves after the co-occurrence walk (retrieval.walk_weight) is compared with its walked list.
A retrieval model also gets NDCG@M on those test playlists (their catalogue songs) of its ranking, of
its list, of the list in the model's order and of the model's songs in the list's order: whether what
it loses or gains over its list comes from how it orders the list's songs or from which songs it keeps
(genrec.evaluate.metrics.reordered_by).
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from genrec.evaluate.baselines import TrainingPlaylists, knn_tuned_on  # noqa: E402
from genrec.cli import run_script  # noqa: E402
from genrec.corpus.build import corpus_path, read_corpus, vocab_path  # noqa: E402
from genrec.errors import ConfigError  # noqa: E402
from genrec.decode.decoding import DecodingSettings  # noqa: E402
from genrec.decode.decoding import decode  # noqa: E402
from genrec.evaluate.metrics import ndcg_score, reordered_by  # noqa: E402
from genrec.model.t5 import load_tiger, resolve_device, tiger_final_dir, title_inputs  # noqa: E402


def add_arguments(parser) -> None:
    parser.add_argument("--playlists", type=int, default=60, help="test titles measured")
    parser.add_argument("--songs", type=int, default=16,
                        help="for a model trained without retrieval: kNN songs compared with")


def main(cfg, extras) -> None:
    if extras["playlists"] < 1 or extras["songs"] < 1:
        raise ConfigError("--playlists and --songs must be at least 1")
    bundle = load_tiger(tiger_final_dir(cfg), resolve_device(cfg.run.device), vocab_path(cfg))
    if bundle.target_mode != "single":
        raise ConfigError(f"{tiger_final_dir(cfg)} is not a single-mode model")
    rows = read_corpus(corpus_path(cfg, "test"))[:extras["playlists"]]
    titles = [row.input_text for row in rows]
    if bundle.retriever is not None:
        m, given_how, given = bundle.retriever.songs, "retrieved songs each", bundle.retriever.rank(titles)
    else:
        train_rows = read_corpus(corpus_path(cfg, "train"))
        knn = knn_tuned_on(TrainingPlaylists.from_corpus(train_rows), read_corpus(corpus_path(cfg, "val")),
                           max(cfg.eval.k_values))
        m, given_how = extras["songs"], "title kNN songs each, not given to this model (trained without retrieval)"
        given = knn.recommend(titles, m)
    settings = replace(DecodingSettings.from_config(cfg.decode, cfg.eval.num_songs), num_songs=m, num_beams=max(m, cfg.decode.num_beams))
    decoded = decode(bundle, titles, settings, progress=True)
    kept = [len({song for song, _ in d.songs} & set(k)) / m for d, k in zip(decoded, given)]
    first = [bool(d.songs) and d.songs[0][0] in k[:5] for d, k in zip(decoded, given)]
    print(f"{len(titles)} test titles, {m} {given_how}")
    source = "walked title kNN's" if bundle.retriever is not None and bundle.retriever.walk.weight else "title kNN's"
    print(f"share of the model's top {m} songs in {source} top {m}: {sum(kept) / len(kept):.3f}")
    print(f"model's first song in {source} top 5: {sum(first) / len(first):.3f}")
    if bundle.model.copy_head is not None:
        print(f"copy head's mean gate at the first ID level: {first_level_gate(bundle, titles):.3f}")
    if bundle.retriever is not None:
        print(order_and_choice([[song for song, _ in d.songs] for d in decoded], given,
                               [row.song_ids for row in rows], m))


def order_and_choice(model: list[list[str]], lists: list[list[str]], truths: list[list[str]], m: int) -> str:
    score = ndcg_score(m)
    systems = {"model": model, "its list": lists,
               "the list in the model's order": [reordered_by(ranked, listed) for ranked, listed in zip(model, lists)],
               "the model's songs in the list's order": [reordered_by(listed, ranked)
                                                         for ranked, listed in zip(model, lists)]}
    return f"NDCG@{m}: " + ", ".join(f"{name} {score(ranked, truths):.4f}" for name, ranked in systems.items())


@torch.no_grad()
def first_level_gate(bundle, titles: list[str]) -> float:
    model = bundle.model
    inputs = title_inputs(model, bundle.tokenizer, titles, bundle.max_input_length, bundle.title_encoder,
                          bundle.retriever)
    start = torch.full((len(titles), 1), model.config.decoder_start_token_id, device=model.device)
    states = model(**inputs, decoder_input_ids=start).decoder_hidden_states[-1]
    return torch.sigmoid(model.copy_head.gate(states)).mean().item()


if __name__ == "__main__":
    sys.exit(run_script(main, __doc__, extra=add_arguments))
