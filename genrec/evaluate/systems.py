"""The systems an evaluation scores besides the model's decoding: title kNN tuned on validation, the partners the
hybrid may fuse with, and every system's metrics from one code path (genrec.evaluate.metrics)."""

from __future__ import annotations


import torch

from config import Config

from genrec.decode.decoding import Decoded, DecodingSettings, decode
from genrec.distributed import Shards
from genrec.evaluate.baselines import PopularityBaseline, TitleKNN, TrainingPlaylists, filled, tune_knn
from genrec.evaluate.metrics import coverage, mean_over, ndcg_score, per_playlist, sequence_metrics
from genrec.evaluate.playlists import EvalPlaylists
from genrec.model.t5 import TigerBundle


SYSTEMS = ("model", "model_unconstrained", "hybrid", "retrieved", "popularity", "title_knn")
MODEL_SYSTEMS = ("model", "model_unconstrained", "hybrid")


def decode_sharded(shards: Shards, bundle: TigerBundle, titles: list[str], settings: DecodingSettings,
                   constrained: bool, popularity: dict[str, int], seed: int) -> list[Decoded]:
    torch.manual_seed(seed)
    local = decode(bundle, shards.split(titles, settings.batch_size), settings, constrained, popularity,
                   progress=shards.is_main)
    return shards.gather(local, settings.batch_size)


def model_system(decoded: list[Decoded]) -> tuple[list[list[str]], dict]:
    """Ranked songs and the raw-output rates of a model system."""
    generated = sum(d.generated for d in decoded)
    valid = sum(len(d.ids) for d in decoded) - sum(d.invalid - d.partial for d in decoded)
    rates = {"invalid_rate": sum(d.invalid for d in decoded) / generated if generated else 0.0,
             "duplicate_rate": sum(d.duplicates for d in decoded) / valid if valid else 0.0,
             "generated_ids": generated}
    return [[song for song, _ in d.songs] for d in decoded], rates


def tuned_title_knn(cfg: Config, training: TrainingPlaylists, val: EvalPlaylists,
                    popularity: PopularityBaseline | None = None) -> tuple[TitleKNN, list[dict]]:
    """The ``title_knn`` baseline: fitted on the training playlists, its parameters tuned for NDCG@max(k) on the
    validation playlists' full ground truth (songs outside the catalogue included, as the test scores them)."""
    knn = TitleKNN().fit(training.titles, training.songs, popularity)
    _, trials = tune_knn(knn, val.titles, val.truths, cfg.eval.num_songs, ndcg_score(max(cfg.eval.k_values)))
    return knn, trials


def partner_rankings(bundle: TigerBundle, knn: TitleKNN, popularity: PopularityBaseline, playlists: EvalPlaylists,
                     n: int) -> dict[str, list[list[str]]]:
    """The rankings the hybrid may fuse with the model's: title kNN's, and a retrieval model's retrieved list
    (filled to n songs with the most popular ones, as kNN's is, when the model reads fewer)."""
    out = {"title_knn": knn.recommend(playlists.titles, n)}
    if bundle.retriever is not None:
        out["retrieved"] = filled(bundle.retriever.rank(playlists.titles), popularity.ranking[:n], n)
    return out


def system_metrics(rankings: list[list[str]], truths: list[list[str]], ks: list[int], catalogue_size: int,
                   rates: dict, song_ids: dict, artists: dict[str, str]) -> dict:
    out = mean_over(per_playlist(rankings, truths, ks, artists))
    out["coverage"] = coverage(rankings, catalogue_size)
    out.update(rates)
    out.update(sequence_metrics(rankings, truths, song_ids))
    return out
