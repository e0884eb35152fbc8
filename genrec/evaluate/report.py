"""What an evaluation reports: the table, the paired differences against title kNN and the retrieved list, metrics by
how often a title was seen in training, the notes, a side-by-side of a few playlists and the Recall@K plot."""

from __future__ import annotations

import math
import unicodedata
from collections import Counter
from pathlib import Path

import numpy as np

from config import Config, config_as_dict

from genrec.artifacts import atomic_path, manifest_path, write_json, write_manifest, write_text
from genrec.corpus.build import corpus_path
from genrec.data.files import SongInfo
from genrec.evaluate.baselines import PopularityBaseline, normalise_title
from genrec.evaluate.metrics import mean_over, paired_difference, per_playlist, popularity_buckets, share_in
from genrec.evaluate.playlists import EvalPlaylists
from genrec.evaluate.systems import MODEL_SYSTEMS
from genrec.model.t5 import TigerBundle, tiger_final_dir


METRICS_FILE = "evaluation_metrics.json"


RESULTS_FILE = "evaluation_results.txt"


PLOT_FILE = "evaluation_recall.png"


LABELS = {"model": "model", "title_knn": "title kNN", "retrieved": "the retrieved list"}


TITLE_BUCKETS = (("unseen", 0, 0), ("seen_1_9", 1, 9), ("seen_10_plus", 10, math.inf))


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
                         **{system: bucket_metrics(ranked, playlists.truths, ks, mask, max(ks))
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


def bucket_metrics(rankings, truths, ks, mask, top_k) -> dict:
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
