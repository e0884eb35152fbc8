"""Config parsing: overrides, files, precedence, validation, and no import side effects."""

import json
import subprocess
import sys

import pytest

from conftest import REPO, run_stage
from genrec.cli import parse_config
from genrec.errors import ConfigError


def test_defaults_and_command_line_overrides():
    cfg, _ = parse_config([])
    assert cfg.rqkmeans.levels == 3
    cfg, _ = parse_config(["--rqkmeans.levels", "5", "--rqkmeans.vocab_size", "256", "--rqkmeans.normalize", "true"])
    assert (cfg.rqkmeans.levels, cfg.rqkmeans.vocab_size, cfg.rqkmeans.normalize) == (5, 256, True)


def test_file_overrides_defaults_and_command_line_overrides_file(tmp_path):
    yaml_file = tmp_path / "run.yaml"
    yaml_file.write_text("rqkmeans:\n  levels: 4\n  niter: 7\ndata:\n  input_dim: 16\n", encoding="utf-8")
    json_file = tmp_path / "run.json"
    json_file.write_text(json.dumps({"rqkmeans": {"levels": 2}}), encoding="utf-8")
    cfg, _ = parse_config(["--config", str(yaml_file), "--rqkmeans.levels", "6"])
    assert (cfg.rqkmeans.levels, cfg.rqkmeans.niter, cfg.data.input_dim) == (6, 7, 16)
    cfg, _ = parse_config(["--config", str(json_file)])
    assert cfg.rqkmeans.levels == 2


@pytest.mark.parametrize("args, message", [
    (["--rqkmeans.levels", "0"], "rqkmeans.levels must be at least 1"),
    (["--split.val_ratio", "1.5"], "split.val_ratio must be between 0 and 1"),
    (["--tiger.title_dropout", "1.5"], "tiger.title_dropout must be between 0 and 1"),
    (["--tiger.retrieval_vector_weight", "-0.1"], "tiger.retrieval_vector_weight must be between 0 and 1"),
    (["--split.val_ratio", "0.6", "--split.test_ratio", "0.5"], "must be below 1"),
    (["--corpus.target_mode", "both"], "corpus.target_mode must be one of"),
    (["--tiger.learning_rate", "0"], "tiger.learning_rate must be greater than 0"),
    (["--eval.k_values", "[10, 500]"], "go beyond eval.num_songs"),
    (["--tiger.neighbour_weight", "-1"], "tiger.neighbour_weight must be at least 0"),
    (["--tiger.cooccurrence_weight", "-0.5"], "tiger.cooccurrence_weight must be at least 0"),
    (["--tiger.retrieval_walk_weight", "-1"], "tiger.retrieval_walk_weight must be at least 0"),
    (["--tiger.neighbour_songs", "0"], "tiger.neighbour_songs must be at least 1"),
    (["--tiger.max_minutes", "-0.5"], "tiger.max_minutes must be at least 0"),
    (["--tiger.dataloader_workers", "-1"], "tiger.dataloader_workers must be at least 0"),
])
def test_invalid_values_are_rejected_with_the_field_name(args, message):
    with pytest.raises(ConfigError, match=message):
        parse_config(args)


@pytest.mark.parametrize("presets", [["mpd_cpu"], ["mpd_gpu"], ["mpd_cpu", "mpd_cpu_retrieval"]])
@pytest.mark.parametrize("mode", ["single", "sequence"])
def test_presets_are_valid_in_both_target_modes(presets, mode):
    """A preset chosen in single mode must still run sequence mode (where training sets single-only options aside)."""
    files = [arg for name in presets for arg in ("--config", str(REPO / "presets" / f"{name}.yaml"))]
    cfg, _ = parse_config([*files, "--corpus.target_mode", mode])
    assert cfg.corpus.target_mode == mode and cfg.tiger.d_model >= 192


def test_unknown_keys_fail_fast_on_command_line_and_in_files(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("rqkmeans:\n  levelz: 2\n", encoding="utf-8")
    for args in (["--rqkmeans.levelz", "2"], ["--config", str(bad)]):
        proc = run_stage("train_rq_kmeans.py", *args, cwd=tmp_path, check=False)
        assert proc.returncode != 0
        assert "levelz" in proc.stderr
        assert "Traceback" not in proc.stderr


def test_script_reports_bad_value_in_one_line(tmp_path):
    proc = run_stage("train_rq_kmeans.py", "--rqkmeans.vocab_size", "-3", cwd=tmp_path, check=False)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1] == "error: rqkmeans.vocab_size must be at least 1 (got -3)"


def test_help_lists_fields_with_defaults_and_help(tmp_path):
    proc = run_stage("train_rq_kmeans.py", "--help", cwd=tmp_path)
    assert "--rqkmeans.vocab_size" in proc.stdout
    assert "Codes per level" in proc.stdout
    assert "default: 32" in proc.stdout


def test_importing_config_has_no_side_effects(tmp_path):
    code = "import os, config, genrec.cli; print(sorted(os.listdir('.')))"
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                         env={"PYTHONPATH": str(REPO), "PATH": ""}, check=True)
    assert out.stdout.strip() == "[]"
