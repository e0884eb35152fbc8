"""Stage 4: does the model recommend the songs held-out playlists really contain, and does it beat
simple baselines on the same playlists?

Systems, all scored by the same code (genrec.evaluate.metrics) on the same playlists:
- ``model``: trie-constrained decoding (every ID a real song);
- ``model_unconstrained``: plain decoding, to measure the share of invalid IDs;
- ``hybrid``: the model's ranking fused with a partner's, partner (title kNN, or ``retrieved``) and
  weight chosen on the validation split;
- ``retrieved`` (retrieval models only): the list the model reads or copies, scored on its own, so
  what the model adds over its input shows in the table;
- ``popularity`` and ``title_knn`` (kNN tuned on the validation split).

Under ``torchrun`` the playlists are sharded over processes for decoding and gathered; rank 0 fits
the baselines, scores everything and writes the outputs, so the numbers equal a one-process run.
"""

from __future__ import annotations

import logging
import math
import unicodedata
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from config import Config

from genrec.artifacts import atomic_path, manifest_path, require_fresh, write_json, write_manifest, write_text
from genrec.evaluate.baselines import (PopularityBaseline, TitleKNN, TrainingPlaylists, filled, fuse, normalise_title,
                        save_hybrid, tune_fusion, tune_knn)
from config import config_as_dict
from genrec.corpus.build import corpus_path, read_corpus, vocab_path
from genrec.data.files import SongInfo, load_playlists, load_song_info
from genrec.distributed import Shards, set_threads_for
from genrec.errors import DataError
from genrec.decode.decoding import Decoded, DecodingSettings, decode
from genrec.evaluate.metrics import (coverage, duplicate_rate, mean_over, ndcg_score, paired_difference, per_playlist,
                      popularity_buckets, sequence_metrics, share_in)
from genrec.model.t5 import TigerBundle, load_tiger, resolve_device, tiger_final_dir
from genrec.text import fold_script

log = logging.getLogger(__name__)

METRICS_FILE = "evaluation_metrics.json"
RESULTS_FILE = "evaluation_results.txt"
PLOT_FILE = "evaluation_recall.png"
SYSTEMS = ("model", "model_unconstrained", "hybrid", "retrieved", "popularity", "title_knn")
MODEL_SYSTEMS = ("model", "model_unconstrained", "hybrid")
LABELS = {"model": "model", "title_knn": "title kNN", "retrieved": "the retrieved list"}
TITLE_BUCKETS = (("unseen", 0, 0), ("seen_1_9", 1, 9), ("seen_10_plus", 10, math.inf))


@dataclass
class EvalPlaylists:
    """Playlists to score: titles, and ground truth with songs outside the catalogue kept."""

    ids: list[str]
    titles: list[str]
    truths: list[list[str]]
    source: str
    report: dict = field(default_factory=dict)

    def head(self, n: int) -> "EvalPlaylists":
        if not n or n >= len(self.ids):
            return self
        return EvalPlaylists(self.ids[:n], self.titles[:n], self.truths[:n], self.source, self.report)


def split_playlists(cfg: Config, split: str, catalogue: dict) -> EvalPlaylists:
    """val/test playlists of the corpus; ground truth from the data files, so songs outside the
    catalogue stay in it (as misses for every system)."""
    path = corpus_path(cfg, split)
    require_fresh(path, "prepare_corpus.py")
    rows = read_corpus(path)
    raw = load_playlists(cfg.data)
    raw_songs = dict(zip(raw.ids, raw.songs))
    missing = [r.playlist_id for r in rows if r.playlist_id not in raw_songs]
    if missing:
        raise DataError(cfg.data.playlist_info_file, f"{len(missing)} {split} playlists of {path} are not in the "
                        f"data files (e.g. {missing[0]!r}): rerun prepare_corpus.py")
    truths = [raw_songs[r.playlist_id] for r in rows]
    return EvalPlaylists([r.playlist_id for r in rows], [r.input_text for r in rows], truths, str(path),
                         truth_report(truths, catalogue))


def external_playlists(cfg: Config, catalogue: dict, title_script: str) -> EvalPlaylists:
    """Playlists from --eval.playlist_info_file / --eval.playlist_songs_file, in the input schema, their
    titles folded into the model's ``title_script`` as its training titles were."""
    ecfg = cfg.eval
    if not ecfg.playlist_songs_file:
        raise DataError(ecfg.playlist_info_file, "--eval.playlist_songs_file is needed with --eval.playlist_info_file")
    raw = load_playlists(cfg.data, ecfg.playlist_info_file, ecfg.playlist_songs_file)
    keep = [i for i, songs in enumerate(raw.songs) if songs]
    if not keep:
        raise DataError(ecfg.playlist_songs_file, "no playlist of the file has a song")
    report = truth_report([raw.songs[i] for i in keep], catalogue)
    report["playlists_without_songs"] = len(raw.ids) - len(keep)
    if report["truth_songs_outside_catalogue"]:
        log.warning("%s: %.1f%% of the playlists' songs are not in the catalogue (every system misses them)",
                    ecfg.playlist_songs_file, 100 * report["share_outside_catalogue"])
    titles = [fold_script(raw.titles[i], title_script) for i in keep]
    return EvalPlaylists([raw.ids[i] for i in keep], titles, [raw.songs[i] for i in keep],
                         ecfg.playlist_info_file, report)


def truth_report(truths: list[list[str]], catalogue: dict) -> dict:
    total = sum(map(len, truths))
    outside = sum(song not in catalogue for songs in truths for song in songs)
    return {"playlists": len(truths), "truth_songs": total, "truth_songs_outside_catalogue": outside,
            "share_outside_catalogue": outside / total if total else 0.0,
            "playlists_without_catalogue_song": sum(all(s not in catalogue for s in songs) for songs in truths)}


def decode_sharded(shards: Shards, bundle: TigerBundle, titles: list[str], settings: DecodingSettings,
                   constrained: bool, popularity: dict[str, int], seed: int) -> list[Decoded]:
    torch.manual_seed(seed)
    local = decode(bundle, shards.split(titles), settings, constrained, popularity, progress=shards.is_main)
    return shards.gather(local)


def model_system(decoded: list[Decoded]) -> tuple[list[list[str]], dict]:
    """Ranked songs and the raw-output rates of a model system."""
    generated = sum(d.generated for d in decoded)
    valid = sum(len(d.ids) for d in decoded) - sum(d.invalid - d.partial for d in decoded)
    rates = {"invalid_rate": sum(d.invalid for d in decoded) / generated if generated else 0.0,
             "duplicate_rate": sum(d.duplicates for d in decoded) / valid if valid else 0.0,
             "generated_ids": generated}
    return [[song for song, _ in d.songs] for d in decoded], rates


def evaluate_tiger_stage(cfg: Config) -> dict | None:
    shards = Shards.from_env()
    set_threads_for(shards)
    try:
        return _evaluate(cfg, shards)
    finally:
        shards.close()


def _evaluate(cfg: Config, shards: Shards) -> dict | None:
    ecfg = cfg.eval
    bundle = load_tiger(tiger_final_dir(cfg), shards.device(resolve_device(cfg.run.device)), vocab_path(cfg))
    catalogue = bundle.vocab.songs
    train_path = corpus_path(cfg, "train")
    require_fresh(train_path, "prepare_corpus.py")
    training = TrainingPlaylists.from_corpus(read_corpus(train_path))
    popularity = PopularityBaseline(training.songs)
    info = load_song_info(cfg.data)  # before minutes of decoding: a bad song info file fails at once
    test = (external_playlists(cfg, catalogue, bundle.title_script) if ecfg.playlist_info_file
            else split_playlists(cfg, "test", catalogue)).head(ecfg.max_playlists)
    val = split_playlists(cfg, "val", catalogue).head(ecfg.val_playlists)
    settings = DecodingSettings.from_config(cfg.decode, ecfg.num_songs)
    log.info("evaluating on %d playlists of %s (%d process(es)); tuning on %d validation playlists",
             len(test.ids), test.source, shards.world, len(val.ids))

    decoded = {"model": decode_sharded(shards, bundle, test.titles, settings, True, popularity.counts, cfg.run.seed)}
    if ecfg.unconstrained:
        decoded["model_unconstrained"] = decode_sharded(shards, bundle, test.titles, settings, False,
                                                        popularity.counts, cfg.run.seed)
    val_decoded = decode_sharded(shards, bundle, val.titles, settings, True, popularity.counts, cfg.run.seed)
    if not shards.is_main:
        return None

    n, objective = ecfg.num_songs, ndcg_score(max(ecfg.k_values))
    knn, knn_trials = tuned_title_knn(cfg, training, val, popularity)
    knn_params = knn.params
    val_partners = partner_rankings(bundle, knn, popularity, val, n)
    val_rankings = {"model": [[s for s, _ in d.songs] for d in val_decoded], **val_partners}
    fusion, fusion_trials = tune_fusion(val_rankings["model"], val_partners, val.truths, n, objective)

    rankings: dict[str, list[list[str]]] = {}
    rates: dict[str, dict] = {}
    for name, result in decoded.items():
        rankings[name], rates[name] = model_system(result)
    partners = partner_rankings(bundle, knn, popularity, test, n)
    rankings["hybrid"] = [fuse(m, p, n, fusion["weight"], fusion["c"])
                          for m, p in zip(rankings["model"], partners[fusion["partner"]])]
    rankings["popularity"] = popularity.recommend(test.titles, n)
    rankings.update(partners)
    for name in rankings.keys() - decoded.keys():
        rates[name] = {"invalid_rate": 0.0, "duplicate_rate": duplicate_rate(rankings[name])}

    systems = {name: system_metrics(rankings[name], test.truths, ecfg.k_values, len(catalogue), rates[name],
                                    bundle.vocab.songs, info.singers) for name in SYSTEMS if name in rankings}
    title_counts = Counter(normalise_title(t) for t in training.titles)
    analysis = build_analysis(rankings, test, ecfg.k_values, title_counts, popularity)
    analysis["validation"] = {
        "definition": "the model and its fusion partners on the validation playlists the hybrid and kNN were tuned on",
        "playlists": len(val.ids),
        **{system: _bucket_metrics(r, val.truths, ecfg.k_values, np.ones(len(r), bool), max(ecfg.k_values))
           for system, r in val_rankings.items()},
        "title_frequency": title_frequency_buckets(val_rankings, val, ecfg.k_values, title_counts)}
    payload = {
        "systems": systems,
        "analysis": analysis,
        "tuning": {"title_knn": {"chosen": asdict(knn_params), "trials": knn_trials},
                   "hybrid": {"chosen": fusion, "trials": fusion_trials},
                   "objective": f"ndcg@{max(ecfg.k_values)} on {len(val.ids)} validation playlists"},
        "data": {"source": test.source, **test.report, "catalogue_songs": len(catalogue),
                 "training_playlists": len(training.titles)},
        "decoding": asdict(settings),
        "notes": notes(bundle, fusion),
        "config": config_as_dict(cfg),
        "model_manifest": bundle.manifest,
    }
    write_outputs(cfg, payload, rankings, test, bundle, train_path, info)
    save_hybrid(cfg, knn_params, fusion, [train_path, manifest_path(tiger_final_dir(cfg))])
    print(format_table(systems, ecfg.k_values))
    for baseline in ("title_knn", "retrieved"):
        if f"versus_{baseline}" in analysis:
            print("\n" + format_comparison(analysis[f"versus_{baseline}"], max(ecfg.k_values), baseline))
    on_val = analysis["validation"]
    top = f"ndcg@{max(ecfg.k_values)}"
    print(f"On the {len(val.ids)} validation playlists (used for tuning): {top} "
          + ", ".join(f"{LABELS[name]} {on_val[name][top]:.4f}" for name in val_rankings)
          + f"; the hybrid fuses the model with {LABELS[fusion['partner']]} (weight {fusion['weight']:g}).")
    print(f"\n{len(test.ids)} playlists of {test.source}; {100 * test.report['share_outside_catalogue']:.1f}% of their "
          f"songs are outside the catalogue (misses for every system). Written to {cfg.run.output_dir}/{METRICS_FILE}, "
          f"{RESULTS_FILE}, {PLOT_FILE}.")
    return payload


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


def build_analysis(rankings: dict[str, list[list[str]]], test: EvalPlaylists, ks: list[int],
                   title_counts: Counter, popularity: PopularityBaseline) -> dict:
    """Where each system wins or loses: by how often the title occurs in training, by song popularity."""
    top100 = popularity.top(100)
    analysis = {
        "title_frequency": title_frequency_buckets(rankings, test, ks, title_counts),
        "versus_title_knn": versus(rankings, test.truths, ks, "title_knn"),
        "song_popularity": {system: popularity_buckets(r, test.truths, popularity.rank) for system, r in rankings.items()},
        "popularity_top100_share": {system: share_in(r, top100) for system, r in rankings.items()},
    }
    if "retrieved" in rankings:  # what a retrieval model adds over the list it reads
        own = {system: rankings[system] for system in (*MODEL_SYSTEMS, "retrieved") if system in rankings}
        analysis["versus_retrieved"] = versus(own, test.truths, ks, "retrieved")
    return analysis


def title_frequency_buckets(rankings: dict[str, list[list[str]]], playlists: EvalPlaylists, ks: list[int],
                            title_counts: Counter) -> dict:
    """Each system's metrics on the playlists whose title is unseen in training, seen 1-9 times, seen 10+."""
    frequency = np.array([title_counts.get(normalise_title(t), 0) for t in playlists.titles])
    buckets = {}
    for name, low, high in TITLE_BUCKETS:
        mask = (frequency >= low) & (frequency <= high)
        buckets[name] = {"playlists": int(mask.sum()),
                         **{system: _bucket_metrics(ranked, playlists.truths, ks, mask, max(ks))
                            for system, ranked in rankings.items()}}
    return {"definition": "training playlists with the same normalised title", **buckets}


def versus(rankings: dict[str, list[list[str]]], truths: list[list[str]], ks: list[int], baseline: str) -> dict:
    """Each other system minus ``baseline`` on the same playlists, with a paired-bootstrap 95% interval."""
    metrics = ("r_precision", f"ndcg@{max(ks)}")
    per = {system: per_playlist(ranked, truths, ks) for system, ranked in rankings.items()}
    return {"definition": f"mean per-playlist difference from {baseline}, 95% paired-bootstrap interval "
                          "(playlists resampled, 2000 samples)",
            **{system: {m: paired_difference(per[system][m], per[baseline][m]) for m in metrics}
               for system in rankings if system != baseline}}


def format_comparison(differences: dict, k: int, baseline: str) -> str:
    """One line per system: its NDCG@k difference from the baseline and the interval."""
    lines = [f"NDCG@{k} minus {LABELS[baseline]}'s, mean over playlists [95% paired-bootstrap interval]:"]
    for system, diffs in differences.items():
        if system != "definition":
            d = diffs[f"ndcg@{k}"]
            lines.append(f"  {system:<20} {d['difference']:+.4f} [{d['ci95'][0]:+.4f}, {d['ci95'][1]:+.4f}]")
    return "\n".join(lines)


def _bucket_metrics(rankings, truths, ks, mask, top_k) -> dict:
    if not mask.any():
        return {}
    means = mean_over(per_playlist(rankings, truths, ks), mask)
    return {k: means[k] for k in ("r_precision", f"recall@{top_k}", f"ndcg@{top_k}")}


def notes(bundle: TigerBundle, fusion: dict) -> list[str]:
    out = [f"hybrid: reciprocal rank fusion of the model's ranking (weight {fusion['weight']:g}, c={fusion['c']:g}) "
           f"and {LABELS[fusion['partner']]}'s, partner and weight chosen on the validation playlists.",
           "r_precision counts track matches only; r_precision_artist (R-art) is the RecSys Challenge 2018's, which "
           "also credits 0.25 for a top-R miss by one of the playlist's artists (each artist once; artists from the "
           "song info file's singer column).",
           "Ground truth keeps songs outside the catalogue; they are misses for every system.",
           "Sequence metrics compare the top-R songs' semantic IDs (R = catalogue songs in the playlist) with the "
           "playlist's IDs in order.",
           "invalid_rate: generated IDs (and trailing partial IDs) naming no song, over all generated; "
           "duplicate_rate: valid IDs repeating an earlier one of the same playlist."]
    if bundle.retriever is not None:
        walk = bundle.retriever.walk.weight
        walked = f", after the co-occurrence walk at weight {walk:g} (retrieval.walk_weight)" if walk else ""
        vectors = bundle.retriever.knn.params.vector_weight
        mixed = (f" Its kNN mixes the title vectors' cosine into the TF-IDF similarity at weight {vectors:g} "
                 "(retrieval.vector_weight); system 'title_knn' is TF-IDF alone." if vectors else "")
        out.append(f"The model may also copy title kNN's top {bundle.retriever.songs} songs for each title{walked} "
                   "(retrieval.songs), retrieved from the training playlists only "
                   f"(genrec.model.retrieval, genrec.model.copy_head); system 'retrieved' is that list on its own.{mixed}")
    neighbours = bundle.manifest.get("summary", {}).get("neighbour_targets")
    if neighbours:
        walk = neighbours.get("cooccurrence_weight", 0)
        out.append("The model was trained on neighbour-smoothed targets (targets.neighbour_weight "
                   f"{neighbours['weight']:g}, targets.cooccurrence_weight {walk:g}): each training title also learnt "
                   "title kNN's votes from similar titles' training playlists"
                   + (" and the songs its songs share training playlists with" if walk else "")
                   + " (genrec.train.neighbour_targets); at test time it reads the title alone.")
    if bundle.vocab.collision_strategy == "cluster":
        out.append("collision_strategy=cluster: each predicted ID stands for one song of its cluster, the most "
                   "popular in training, as the generator shows it (genrec.decode.decoding.expand_ids).")
    return out


def format_table(systems: dict[str, dict], ks: list[int]) -> str:
    columns = ["r_precision", "r_precision_artist", *[f"recall@{k}" for k in ks], *[f"ndcg@{k}" for k in ks],
               "hit@10", "coverage", "invalid_rate", "duplicate_rate", "rouge_l", "bleu4", "semantic_id_f1"]
    labels = ["R-prec", "R-art", *[f"R@{k}" for k in ks], *[f"NDCG@{k}" for k in ks], "hit@10", "cover", "invalid",
              "dup", "ROUGE-L", "BLEU-4", "ID-F1"]
    width = max(map(len, systems)) + 2
    lines = ["system".ljust(width) + "".join(label.rjust(9) for label in labels)]
    for name, metrics in systems.items():
        lines.append(name.ljust(width) + "".join(f"{metrics.get(c, float('nan')):9.4f}" for c in columns))
    return "\n".join(lines)


def write_outputs(cfg: Config, payload: dict, rankings: dict[str, list[list[str]]], test: EvalPlaylists,
                  bundle: TigerBundle, train_path: Path, info: SongInfo) -> None:
    out = Path(cfg.run.output_dir)
    inputs = [train_path, manifest_path(tiger_final_dir(cfg))]
    if not cfg.eval.playlist_info_file:
        inputs.append(corpus_path(cfg, "test"))
    write_text(out / RESULTS_FILE, side_by_side(test, rankings["model"], info, bundle.vocab.songs))
    write_json(out / METRICS_FILE, payload)
    write_manifest(out / METRICS_FILE, inputs, config_as_dict(cfg, ["data", "corpus", "decode", "eval", "run"]),
                   {"playlists": len(test.ids), "source": test.source})
    plot_recall(out / PLOT_FILE, rankings, test.truths, cfg.eval.num_songs)


def side_by_side(test: EvalPlaylists, predictions: list[list[str]], info: SongInfo, catalogue: dict) -> str:
    """Per playlist: title, then ground truth and the model's prediction in two columns (hits marked *)."""
    blocks = []
    width = 48
    for pid, title, truth, predicted in zip(test.ids, test.titles, test.truths, predictions):
        relevant, chosen = set(truth), set(predicted)
        hits = len(relevant & chosen)
        lines = [f"=== {title} (playlist {pid}): {len(truth)} songs, {hits} recommended ===",
                 f"{'#':>4}  {'ground truth':<{width}} | model prediction"]
        for i in range(max(len(truth), len(predicted))):
            left = _label(truth[i], info, chosen, "" if truth[i] in catalogue else " [not in catalogue]") \
                if i < len(truth) else ""
            right = _label(predicted[i], info, relevant, "") if i < len(predicted) else ""
            lines.append(f"{i + 1:>4}  {_fit(left, width)} | {right}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


def _fit(text: str, width: int) -> str:
    """Cut or pad to ``width`` terminal columns (CJK characters take two)."""
    out, used = [], 0
    for ch in text:
        w = 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1
        if used + w > width:
            break
        out.append(ch)
        used += w
    return "".join(out) + " " * (width - used)


def _label(song: str, info: SongInfo, other: set[str], suffix: str) -> str:
    return ("* " if song in other else "  ") + info.describe(song) + suffix


def recall_curve(rankings: list[list[str]], truths: list[list[str]], n: int) -> np.ndarray:
    """Mean Recall@K for K = 1..n over playlists with ground truth."""
    curves = []
    for ranked, truth in zip(rankings, truths):
        if not truth:
            continue
        relevant = set(truth)
        hits = np.zeros(n)
        for i, song in enumerate(list(dict.fromkeys(ranked))[:n]):
            hits[i] = song in relevant
        curves.append(np.cumsum(hits) / len(relevant))
    return np.mean(curves, axis=0) if curves else np.zeros(n)


def plot_recall(path: Path, rankings: dict[str, list[list[str]]], truths: list[list[str]], n: int) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4.5))
    ks = np.arange(1, n + 1)
    for name, ranked in rankings.items():
        axes.plot(ks, recall_curve(ranked, truths, n), label=name, linestyle="--" if name in ("popularity",
                                                                                               "title_knn") else "-")
    axes.set_xlabel("K (songs recommended)")
    axes.set_ylabel("Recall@K")
    axes.set_title("Recall@K on the test playlists")
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=120)
    plt.close(figure)
