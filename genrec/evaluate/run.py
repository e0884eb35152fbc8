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
from collections import Counter
from dataclasses import asdict

import numpy as np

from config import Config, config_as_dict

from genrec.artifacts import manifest_path, read_verified_manifest, require_fresh
from genrec.corpus.build import corpus_path, vocab_path
from genrec.data.files import load_song_info
from genrec.decode.decoding import DecodingSettings
from genrec.distributed import Shards, set_threads_for
from genrec.evaluate.baselines import (PopularityBaseline, fuse, normalise_title, read_training_playlists, save_hybrid,
                                      tune_fusion)
from genrec.evaluate.metrics import duplicate_rate, ndcg_score
from genrec.evaluate.playlists import external_playlists, split_playlists
from genrec.evaluate.report import (LABELS, METRICS_FILE, PLOT_FILE, RESULTS_FILE, bucket_metrics, build_analysis,
                                   format_comparison, format_table, notes, title_frequency_buckets, write_outputs)
from genrec.evaluate.systems import (SYSTEMS, decode_sharded, model_system, partner_rankings, system_metrics,
                                    tuned_title_knn)
from genrec.model.t5 import load_tiger, resolve_device, tiger_final_dir

log = logging.getLogger(__name__)


def evaluate_tiger_stage(cfg: Config) -> dict | None:
    shards = Shards.from_env()
    set_threads_for(shards)
    try:
        return _evaluate(cfg, shards)
    finally:
        shards.close()


def fusion_score(fusion: dict, trials: list[dict]) -> float:
    """The validation score of the chosen fusion (the hybrid's, tuned on those playlists)."""
    return next(t["score"] for t in trials if all(t[k] == fusion[k] for k in ("partner", "weight", "c")))


def _evaluate(cfg: Config, shards: Shards) -> dict | None:
    ecfg = cfg.eval
    read_verified_manifest(tiger_final_dir(cfg), "train_tiger.py")  # every file as trained, before it is loaded
    bundle = load_tiger(tiger_final_dir(cfg), shards.device(resolve_device(cfg.run.device)), vocab_path(cfg))
    catalogue = bundle.vocab.songs
    train_path = corpus_path(cfg, "train")
    require_fresh(train_path, "prepare_corpus.py")
    # The training playlists are the main process's alone (about 2 GB at the MPD's size); the others decode with
    # their songs' popularity only.
    training = read_training_playlists(train_path) if shards.is_main else None
    popularity = PopularityBaseline(training.songs) if training is not None else None
    popularity_counts = shards.from_main(lambda: popularity.counts)
    info = load_song_info(cfg.data)  # before minutes of decoding: a bad song info file fails at once
    test = (external_playlists(cfg, catalogue, bundle.title_script) if ecfg.playlist_info_file
            else split_playlists(cfg, "test", catalogue)).head(ecfg.max_playlists)
    val = split_playlists(cfg, "val", catalogue).head(ecfg.val_playlists)
    settings = DecodingSettings.from_config(cfg.decode, ecfg.num_songs)
    log.info("evaluating on %d playlists of %s (%d process(es)); tuning on %d validation playlists",
             len(test.ids), test.source, shards.world, len(val.ids))

    if bundle.title_encoder is not None:
        # A title's vector moves in its last bits with the titles encoded beside it. Encoded all at once here, every
        # process holds the same vector for a title, so ranks decode their part as one process would.
        bundle.title_encoder.vectors([*test.titles, *val.titles])
    decoded = {"model": decode_sharded(shards, bundle, test.titles, settings, True, popularity_counts, cfg.run.seed)}
    if ecfg.unconstrained:
        decoded["model_unconstrained"] = decode_sharded(shards, bundle, test.titles, settings, False,
                                                        popularity_counts, cfg.run.seed)
    val_decoded = decode_sharded(shards, bundle, val.titles, settings, True, popularity_counts, cfg.run.seed)
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
        **{system: bucket_metrics(r, val.truths, ecfg.k_values, np.ones(len(r), bool), max(ecfg.k_values))
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
    top = f"ndcg@{max(ecfg.k_values)}"
    on_val = analysis["validation"]
    validation = {**{name: on_val[name][top] for name in val_rankings}, "hybrid": fusion_score(fusion, fusion_trials)}
    save_hybrid(cfg, knn_params, fusion, [train_path, manifest_path(tiger_final_dir(cfg))], validation,
                payload["tuning"]["objective"])
    print(format_table(systems, ecfg.k_values))
    for baseline in ("title_knn", "retrieved"):
        if f"versus_{baseline}" in analysis:
            print("\n" + format_comparison(analysis[f"versus_{baseline}"], max(ecfg.k_values), baseline))
    print(f"On the {len(val.ids)} validation playlists (used for tuning): {top} "
          + ", ".join(f"{LABELS[name]} {on_val[name][top]:.4f}" for name in val_rankings)
          + f"; the hybrid fuses the model with {LABELS[fusion['partner']]} (weight {fusion['weight']:g}).")
    print(f"\n{len(test.ids)} playlists of {test.source}; {100 * test.report['share_outside_catalogue']:.1f}% of their "
          f"songs are outside the catalogue (misses for every system). Written to {cfg.run.output_dir}/{METRICS_FILE}, "
          f"{RESULTS_FILE}, {PLOT_FILE}.")
    return payload
