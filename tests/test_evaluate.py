"""evaluate_tiger.py end to end on tiny demo data with a tiny (barely trained) model."""

from __future__ import annotations

import importlib.util
import json
import math
import re
import subprocess
import sys

import pytest

from conftest import REPO, TINY_DEMO, TINY_MODEL, run_stage
from conftest import TINY_EVAL as EVAL
from genrec.distributed import Shards, interleaved

SYSTEMS = {"model", "model_unconstrained", "hybrid", "popularity", "title_knn"}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Stages 0-3 once for the module: demo data, RQ-KMeans IDs, corpus, a 3-step model. The corpus folds the
    demo's Simplified Chinese titles into Traditional script, so every evaluation here runs through the folding."""
    work = tmp_path_factory.mktemp("eval")
    for script in ("prepare_data.py", "train_rq_kmeans.py"):
        run_stage(script, *TINY_DEMO, cwd=work)
    run_stage("prepare_corpus.py", *TINY_DEMO, "--corpus.title_script", "traditional", cwd=work)
    run_stage("train_tiger.py", *TINY_DEMO, *TINY_MODEL, cwd=work)
    return work


@pytest.fixture(scope="module")
def single_run(trained):
    """One single-process evaluation: its printed table and metrics."""
    proc = run_stage("evaluate_tiger.py", *TINY_DEMO, *EVAL, cwd=trained)
    return proc, json.loads((trained / "outputs/evaluation_metrics.json").read_text(encoding="utf-8"))


def test_evaluation_writes_table_and_files(trained, single_run):
    proc, metrics = single_run
    for system in SYSTEMS:
        assert system in proc.stdout
    assert set(metrics["systems"]) == SYSTEMS
    for values in metrics["systems"].values():
        for key in ("r_precision", "r_precision_artist", "recall@5", "recall@10", "ndcg@10", "hit@10", "coverage",
                    "invalid_rate", "duplicate_rate", "rouge_l", "bleu4", "semantic_id_f1"):
            assert 0.0 <= values[key] <= 1.0, key
        assert values["r_precision_artist"] >= values["r_precision"]  # artist credit only adds
    # The demo's singers are shared by many songs: popular songs by the playlists' artists earn credit.
    popular = metrics["systems"]["popularity"]
    assert popular["r_precision_artist"] > popular["r_precision"]
    assert metrics["systems"]["model"]["invalid_rate"] == 0.0  # the trie
    assert metrics["systems"]["model_unconstrained"]["invalid_rate"] > 0.0  # a 3-step model without it
    # kNN was tuned on validation playlists and the popularity baseline recommends the same list to everyone.
    assert metrics["tuning"]["title_knn"]["chosen"]["k"] > 0 and "validation" in metrics["tuning"]["objective"]
    assert metrics["systems"]["popularity"]["coverage"] == pytest.approx(10 / metrics["data"]["catalogue_songs"])
    assert {"title_frequency", "song_popularity", "popularity_top100_share"} <= set(metrics["analysis"])
    # On validation: kNN's figure is its chosen tuning trial's, the model's the hybrid trial that takes it alone.
    val = metrics["analysis"]["validation"]
    knn_trials = metrics["tuning"]["title_knn"]["trials"]
    assert val["title_knn"]["ndcg@10"] == pytest.approx(max(t["score"] for t in knn_trials))
    alone = [t["score"] for t in metrics["tuning"]["hybrid"]["trials"] if t["weight"] == 1.0]
    assert val["model"]["ndcg@10"] == pytest.approx(alone[0]) and len(set(alone)) == 1
    buckets = [val["title_frequency"][name]["playlists"] for name in ("unseen", "seen_1_9", "seen_10_plus")]
    assert sum(buckets) == val["playlists"] == int(EVAL[EVAL.index("--eval.val_playlists") + 1])
    versus = metrics["analysis"]["versus_title_knn"]
    assert set(versus) == SYSTEMS - {"title_knn"} | {"definition"}
    gap = versus["model"]["ndcg@10"]
    assert gap["difference"] == pytest.approx(metrics["systems"]["model"]["ndcg@10"]
                                              - metrics["systems"]["title_knn"]["ndcg@10"])
    assert gap["ci95"][0] <= gap["difference"] <= gap["ci95"][1]
    assert "minus title kNN's" in proc.stdout
    assert f"validation playlists (used for tuning): ndcg@10 model {val['model']['ndcg@10']:.4f}" in proc.stdout
    assert metrics["model_manifest"]["summary"]["target_mode"] == "single"
    results = (trained / "outputs/evaluation_results.txt").read_text(encoding="utf-8")
    assert results.count("=== ") == 24 and "ground truth" in results
    assert (trained / "outputs/evaluation_recall.png").read_bytes()[:4] == b"\x89PNG"
    assert (trained / "outputs/hybrid.json").exists()


def test_ddp_evaluation_equals_single_process(trained, single_run):
    single = single_run[1]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29531",
           str(REPO / "evaluate_tiger.py"), *TINY_DEMO, *EVAL]
    proc = subprocess.run(cmd, cwd=trained, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    sharded = json.loads((trained / "outputs/evaluation_metrics.json").read_text(encoding="utf-8"))
    assert sharded["systems"] == single["systems"]
    assert sharded["analysis"] == single["analysis"]


@pytest.mark.parametrize("world", [1, 2, 3])
def test_decoding_shards_whole_batches_and_gathers_them_back_in_order(world):
    for n in range(12):
        items = list(range(n))
        for batch in (1, 2, 4):
            parts = [Shards(rank, world).split(items, batch) for rank in range(world)]
            assert interleaved(parts, batch) == items
            # Each rank decodes its part in batches: each must be a batch of the one-process run.
            one_process = {tuple(items[i:i + batch]) for i in range(0, n, batch)}
            assert all(tuple(part[i:i + batch]) in one_process for part in parts for i in range(0, len(part), batch))
            assert max(map(len, parts)) - min(map(len, parts)) <= batch


def test_other_playlist_files_are_mapped_onto_the_catalogue(trained):
    info = trained / "new_info.csv"
    songs = trained / "new_songs.csv"
    catalogue = json.loads((trained / "outputs/semantic_id_vocab.json").read_text(encoding="utf-8"))["songs"]
    known = list(catalogue)[:6]
    info.write_text("glid,listname\nn1,chill night\nn2,夏日海边\n", encoding="utf-8")
    songs.write_text("special_gid,mixsongid\n" + "".join(f"n1,{s}\n" for s in known[:3])
                     + "n1,brand_new_song\n" + "".join(f"n2,{s}\n" for s in known[3:]), encoding="utf-8")
    run_stage("evaluate_tiger.py", *TINY_DEMO, *EVAL, "--eval.unconstrained", "false",
              "--eval.playlist_info_file", str(info), "--eval.playlist_songs_file", str(songs), cwd=trained)
    metrics = json.loads((trained / "outputs/evaluation_metrics.json").read_text(encoding="utf-8"))
    assert metrics["data"]["playlists"] == 2 and metrics["data"]["truth_songs_outside_catalogue"] == 1
    assert metrics["data"]["share_outside_catalogue"] == pytest.approx(1 / 7)
    # The new titles are folded into the model's script as its training titles were.
    results = (trained / "outputs/evaluation_results.txt").read_text(encoding="utf-8")
    assert "=== 夏日海邊 (playlist n2)" in results


def test_prompts_in_either_script_get_the_same_playlist(trained, single_run):
    config = json.loads((trained / "models/tiger_final/config.json").read_text(encoding="utf-8"))
    assert config["title_script"] == "traditional"
    (trained / "titles.txt").write_text("夏日海边\n夏日海邊\n90s rock classics\n", encoding="utf-8")
    run_stage("export_bundle.py", *TINY_DEMO, cwd=trained)
    # A model without retrieval: the bundle ships the training playlists title kNN is fitted on.
    bundle = trained / "models" / "bundle"
    assert (bundle / "playlists.npz").is_file() and not (bundle / "playlists.json").exists()
    run_stage("generate_playlist.py", *TINY_DEMO, "--generate.input", "titles.txt", "--generate.output", "out.jsonl",
              "--generate.system", "hybrid", "--generate.num_songs", "10", "--decode.num_beams", "10", cwd=trained)
    simplified, traditional, other = [json.loads(line) for line in
                                      (trained / "out.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [simplified["title"], traditional["title"]] == ["夏日海边", "夏日海邊"]  # shown as typed
    songs = [[s["song_id"] for s in record["songs"]] for record in (simplified, traditional, other)]
    assert songs[0] == songs[1]
    assert songs[0] != songs[2], "the playlist must depend on the title, or the first check says nothing"


def test_missing_model_is_one_line_error(workdir):
    proc = run_stage("evaluate_tiger.py", cwd=workdir, check=False)
    assert proc.returncode == 1 and "train_tiger.py" in proc.stderr
    assert proc.stderr.strip().startswith("error:") and "Traceback" not in proc.stderr


def test_title_script_bench_scores_both_scripts_alike_for_a_folding_model(trained, single_run):
    proc = run_stage("bench/title_script.py", *TINY_DEMO, *EVAL, "--to", "traditional", "--playlists", "24",
                     cwd=trained)
    changed = int(proc.stdout.split(" of their titles change")[0].rsplit(maxsplit=1)[-1])
    assert changed > 0, "some demo test titles must be Chinese, or the comparison below says nothing"
    rows = re.findall(r"^(as written|traditional) +(\w+) +([\d.]+) +([\d.]+)$", proc.stdout, flags=re.M)
    scores = {(titles, system): (float(ndcg), float(r_precision)) for titles, system, ndcg, r_precision in rows}
    assert {system for _, system in scores} == {"model", "hybrid", "title_knn"}
    # The model folds every title into Traditional script, so rewriting the titles changes nothing it sees.
    for system in ("model", "hybrid", "title_knn"):
        assert scores[("as written", system)] == scores[("traditional", system)]
    assert "the model's training titles: traditional" in proc.stdout


def test_seed_ensemble_bench_decodes_as_the_evaluation_and_averaging_a_run_with_itself_changes_nothing(
        trained, single_run):
    _, metrics = single_run
    proc = run_stage("bench/seed_ensemble.py", *TINY_DEMO, *EVAL, "--also", "outputs", "models", "--playlists", "24",
                     cwd=trained)
    rows = re.findall(r"^(run 1|run 2|ensemble|title_knn|retrieved) +([\d.]+) +([\d.]+)$", proc.stdout, flags=re.M)
    scores = {system: (float(ndcg), float(r_precision)) for system, ndcg, r_precision in rows}
    assert set(scores) == {"run 1", "run 2", "ensemble", "title_knn"}  # the tiny model retrieves nothing
    assert scores["run 1"] == scores["run 2"] == scores["ensemble"]
    for bench_name, system in (("run 1", "model"), ("title_knn", "title_knn")):
        figures = metrics["systems"][system]
        assert scores[bench_name] == pytest.approx((figures["ndcg@10"], figures["r_precision"]), abs=5e-5)
    assert "NDCG@10 minus title kNN's" in proc.stdout
    alone = run_stage("bench/seed_ensemble.py", *TINY_DEMO, *EVAL, cwd=trained, check=False)
    assert alone.returncode == 1 and "--also OUTPUT_DIR MODEL_DIR" in alone.stderr and "Traceback" not in alone.stderr


def test_seed_ensemble_ranks_by_probability_averaged_over_runs():
    spec = importlib.util.spec_from_file_location("seed_ensemble", REPO / "bench/seed_ensemble.py")
    bench = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = bench  # its dataclasses look their module up while the module loads
    spec.loader.exec_module(bench)
    first = [("a", math.log(0.5)), ("b", math.log(0.4))]
    second = [("c", math.log(0.45)), ("b", math.log(0.4))]
    # b is second in both runs but has the highest mean probability (0.4, against 0.25 and 0.225).
    assert bench.mean_probability([first, second], 3) == ["b", "a", "c"]
    assert bench.mean_probability([first, second], 1) == ["b"]
