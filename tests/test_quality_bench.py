"""bench/quality.py on tiny data: stage subsets (first stages here, the rest elsewhere) and variants run at once."""

from __future__ import annotations

import json

from conftest import TINY_DEMO, TINY_EVAL, TINY_MODEL, run_stage

VARIANTS = ["--quantizers", "rq_kmeans", "--modes", "single", "sequence"]


def test_stage_subsets_and_parallel_variants(tiny_demo):
    first = run_stage("bench/quality.py", *VARIANTS, "--stages", "semantic_ids", "corpus", "--", *TINY_DEMO,
                      cwd=tiny_demo)
    bench = tiny_demo / "outputs/bench"
    for name in ("rq_kmeans_single", "rq_kmeans_sequence"):
        assert (bench / name / "train.tsv").is_file()
        assert not (tiny_demo / "models/bench" / name / "tiger_final").exists()
    assert "$ python train_tiger.py" not in first.stdout and not (bench / "quality.json").exists()

    rest = run_stage("bench/quality.py", *VARIANTS, "--stages", "train", "evaluate", "--jobs", "2", "--",
                     *TINY_DEMO, *TINY_MODEL, *TINY_EVAL, cwd=tiny_demo)
    assert "$ python train_rq_kmeans.py" not in rest.stdout and "$ python prepare_corpus.py" not in rest.stdout
    report = json.loads((bench / "quality.json").read_text(encoding="utf-8"))
    assert set(report["systems"]) == {"rq_kmeans_single", "rq_kmeans_sequence"}
    assert all(set(t) == {"train_tiger.py", "evaluate_tiger.py"} for t in report["timings_s"].values())
    for name in report["systems"]:
        assert "$ python train_tiger.py" in (bench / f"{name}.log").read_text(encoding="utf-8")


def test_a_stage_without_its_earlier_artifacts_fails_clearly(tiny_demo):
    proc = run_stage("bench/quality.py", "--quantizers", "rqvae", "--modes", "single", "--stages", "train", "--",
                     *TINY_DEMO, cwd=tiny_demo, check=False)
    assert proc.returncode == 1
    assert "rqvae_single: train_tiger.py failed" in proc.stderr
    assert "prepare_corpus.py" in proc.stdout + proc.stderr  # the stage's own error names what to run
