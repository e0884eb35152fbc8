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
    assert cfg.ids.levels == 3
    cfg, _ = parse_config(["--ids.levels", "5", "--ids.codebook_size", "256", "--decode.sample", "true"])
    assert (cfg.ids.levels, cfg.ids.codebook_size, cfg.decode.sample) == (5, 256, True)


def test_file_overrides_defaults_and_command_line_overrides_file(tmp_path):
    yaml_file = tmp_path / "run.yaml"
    yaml_file.write_text("ids:\n  levels: 4\nrqkmeans:\n  niter: 7\ndata:\n  input_dim: 16\n", encoding="utf-8")
    json_file = tmp_path / "run.json"
    json_file.write_text(json.dumps({"ids": {"levels": 2}}), encoding="utf-8")
    cfg, _ = parse_config(["--config", str(yaml_file), "--ids.levels", "6"])
    assert (cfg.ids.levels, cfg.rqkmeans.niter, cfg.data.input_dim) == (6, 7, 16)
    cfg, _ = parse_config(["--config", str(json_file)])
    assert cfg.ids.levels == 2


@pytest.mark.parametrize("args, message", [
    (["--ids.levels", "0"], "ids.levels must be at least 1"),
    (["--split.val_ratio", "1.5"], "split.val_ratio must be between 0 and 1"),
    (["--retrieval.title_dropout", "1.5"], "retrieval.title_dropout must be between 0 and 1"),
    (["--retrieval.vector_weight", "-0.1"], "retrieval.vector_weight must be between 0 and 1"),
    (["--targets.seeded_share", "1.5"], "targets.seeded_share must be between 0 and 1"),
    (["--split.val_ratio", "0.6", "--split.test_ratio", "0.5"], "must be below 1"),
    (["--corpus.target_mode", "both"], "corpus.target_mode must be one of"),
    (["--train.learning_rate", "0"], "train.learning_rate must be greater than 0"),
    (["--eval.k_values", "[10, 500]"], "go beyond eval.num_songs"),
    (["--targets.neighbour_weight", "-1"], "targets.neighbour_weight must be at least 0"),
    (["--targets.cooccurrence_weight", "-0.5"], "targets.cooccurrence_weight must be at least 0"),
    (["--retrieval.walk_weight", "-1"], "retrieval.walk_weight must be at least 0"),
    (["--generate.system", "best"], "generate.system must be one of '', 'model', 'hybrid', 'retrieved', 'knn'"),
    (["--train.max_minutes", "-0.5"], "train.max_minutes must be at least 0"),
    (["--decode.top_p", "nan"], "decode.top_p"),
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
    assert cfg.corpus.target_mode == mode and cfg.network.d_model >= 192


def test_unknown_keys_fail_fast_on_command_line_and_in_files(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("ids:\n  levelz: 2\n", encoding="utf-8")
    for args in (["--rqkmeans.levelz", "2"], ["--config", str(bad)]):
        proc = run_stage("train_rq_kmeans.py", *args, cwd=tmp_path, check=False)
        assert proc.returncode != 0
        assert "levelz" in proc.stderr
        assert "Traceback" not in proc.stderr


def test_script_reports_bad_value_in_one_line(tmp_path):
    proc = run_stage("train_rq_kmeans.py", "--ids.codebook_size", "-3", cwd=tmp_path, check=False)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1] == "error: ids.codebook_size must be at least 1 (got -3)"


def test_help_lists_fields_with_defaults_and_help(tmp_path):
    proc = run_stage("train_rq_kmeans.py", "--help", cwd=tmp_path)
    assert "--ids.codebook_size" in proc.stdout
    assert "Codes per level" in proc.stdout
    assert "--ids.codebook_size 32" in proc.stdout


def test_importing_config_has_no_side_effects(tmp_path):
    code = "import os, config, genrec.cli; print(sorted(os.listdir('.')))"
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                         env={"PYTHONPATH": str(REPO), "PATH": ""}, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("old, new", [("tiger.d_model", "network.d_model"), ("tiger.retrieved_songs", "retrieval.songs"),
                                      ("rqkmeans.vocab_size", "ids.codebook_size"), ("eval.num_beams", "decode.num_beams"),
                                      ("tiger.target_sharpening", "targets.sharpening")])
def test_old_option_names_fail_naming_the_new_one(old, new, tmp_path):
    with pytest.raises(ConfigError, match=f"--{old} was renamed: use --{new}"):
        parse_config([f"--{old}", "3"])
    group, field = old.split(".")
    preset = tmp_path / "old.yaml"
    preset.write_text(f"{group}:\n  {field}: 3\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=f"old.yaml: {old} was renamed: use --{new}"):
        parse_config(["--config", str(preset)])


def test_removed_options_say_why_and_the_message_is_one_line(tmp_path):
    with pytest.raises(ConfigError, match="--tiger.copy_rank_prior was removed"):
        parse_config(["--tiger.copy_rank_prior", "true"])
    proc = run_stage("train_tiger.py", "--tiger.retrieval_use", "copy", cwd=tmp_path, check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()] and "retrieval_use was removed" in proc.stderr


def test_short_flags_expand_to_the_scripts_options():
    short = {"--title": "--generate.title", "--json": "--generate.json=true", "--num-songs": "--generate.num_songs"}
    cfg, _ = parse_config(["--title", "夏日海边", "--json", "--num-songs=7"], short=short)
    assert (cfg.generate.title, cfg.generate.json, cfg.generate.num_songs) == ("夏日海边", True, 7)
    cfg, _ = parse_config(["--json=false"], short=short)
    assert cfg.generate.json is False
    with pytest.raises(ConfigError):
        parse_config(["--title", "x"])  # not a short form where the script does not declare it


@pytest.mark.parametrize("script, groups", [
    ("train_tiger.py", ["network", "train", "targets", "retrieval"]), ("generate_playlist.py", ["decode", "generate"]),
    ("prepare_data.py", ["prepare", "split"]), ("evaluate_tiger.py", ["decode", "eval"]),
    ("run_pipeline.py", ["run", "prepare"])])
def test_help_lists_the_groups_a_script_reads_in_at_most_150_lines(script, groups, tmp_path):
    out = run_stage(script, "--help", cwd=tmp_path).stdout
    listed = {line.split(":")[0] for line in out.splitlines() if line and not line.startswith(" ") and ": " in line}
    assert set(groups) <= listed
    assert "rqvae" not in listed or script == "run_pipeline.py"
    assert len(out.splitlines()) <= 150


def test_config_has_at_most_90_fields_and_no_group_over_20():
    import config
    sizes = {group: len(rows) for group, (_, rows) in config.field_docs().items()}
    assert sum(sizes.values()) <= 90 and max(sizes.values()) <= 20, sizes


def test_every_dataset_in_shared_has_a_preset_that_parses():
    import glob
    datasets = [p.split("/")[-1] for p in glob.glob(str(REPO.parent / "shared" / "datasets" / "*")) if "." not in p.split("/")[-1]]
    if not datasets:
        pytest.skip("../shared/datasets is absent")
    names = {"spotify_mpd": "mpd_cpu"}
    for dataset in datasets:
        preset = REPO / "presets" / f"{names.get(dataset, dataset)}.yaml"
        assert preset.is_file(), f"no preset for {dataset}"
        parse_config(["--config", str(preset)])


def test_saved_config_reads_back_equal(tmp_path):
    import config
    cfg, _ = parse_config(["--network.d_model", "64", "--targets.sharpening", "2", "--eval.k_values", "[5, 10]"])
    config.save_config(cfg, tmp_path / "config.yaml")
    assert config.load_config(tmp_path / "config.yaml") == cfg


def test_options_doc_is_current():
    from genrec import options_doc
    assert options_doc.main(["--check"]) == 0, "docs/options.md is out of date: run python -m genrec.options_doc"
    assert "`network.d_model`" in options_doc.render() and "`tiger.d_model` | `network.d_model`" in options_doc.render()
