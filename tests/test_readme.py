"""Every command in README.md's and docs/*.md's code blocks names a script that exists and flags that parse.

The commands themselves run in other tests (the demo pipeline, each stage, the generator) and in
the benches; this keeps the README from drifting away from the scripts' real options.
"""

import importlib.util
import re
import shlex

import pytest

from conftest import REPO
from genrec.cli import parse_config

STAGE_EXTRAS = {"run_pipeline.py": {"--method": 1, "--force": 0},
                "generate_playlist.py": {"--format": 1, "--seeds": 1, "--serve": 0, "--host": 1, "--port": 1},
                "evaluate_continuation.py": {"--without-model": 0}}
ARGPARSE_BENCHES = ("bench/latency.py", "bench/service.py")  # plain argparse, no config: their own parser checks their flags
BENCH_EXTRAS = {"--songs": 1, "--steps": 1, "--playlists": 1, "--batches": 1, "--workers": 1,
                "--weights": -1, "--walks": -1, "--knn": 1, "--to": 1,
                "--also": -1, "--digest": 0}  # -1: one or more values, up to the next flag; 0: a switch


def readme_commands() -> list[str]:
    text = "\n".join(path.read_text(encoding="utf-8") for path in [REPO / "README.md", *sorted(REPO.glob("docs/*.md"))])
    blocks = [body for lang, body in re.findall(r"```(\w*)\n(.*?)```", text, flags=re.S) if lang in ("", "bash")]
    inline = [span for span in re.findall(r"`([^`\n]+)`", text.replace("```", "")) if "<" not in span]
    blocks.append("\n".join(inline))
    commands = []
    for block in blocks:
        for line in block.splitlines():
            line = line.split("  #")[0].strip()
            for part in line.split("&&"):
                part = part.strip()
                if part.startswith(("python ", "torchrun ")) and ".py" in part:
                    commands.append(part)
    return commands


def script_and_flags(command: str) -> tuple[str, list[str]]:
    words = shlex.split(command)
    script_at = next(i for i, w in enumerate(words) if w.endswith(".py"))
    return words[script_at], words[script_at + 1:]


def drop_flags(flags: list[str], extras: dict[str, int]) -> list[str]:
    out, skip = [], 0
    for flag in flags:
        if skip < 0 and flag.startswith("--"):
            skip = 0  # the next flag ends a list of values
        if skip < 0:
            continue
        if skip > 0:
            skip -= 1
        elif flag in extras:
            skip = extras[flag]
        else:
            out.append(flag)
    return out


def without_dataset_configs(flags: list[str]) -> list[str]:
    """Dataset configs (data/<name>/config.yaml) exist only after an import; presets must exist."""
    out, i = [], 0
    while i < len(flags):
        if flags[i] == "--config" and not (REPO / flags[i + 1]).exists():
            assert flags[i + 1].startswith("data/"), f"README names a missing config file {flags[i + 1]}"
            i += 2
            continue
        out.append(flags[i] if flags[i] != "--config" else "--config")
        if flags[i] == "--config":
            out.append(str(REPO / flags[i + 1]))
            i += 1
        i += 1
    return out


COMMANDS = readme_commands()


def test_readme_has_the_quick_start_commands():
    assert "python run_pipeline.py" in COMMANDS
    assert "python -m pytest -q" in (REPO / "README.md").read_text(encoding="utf-8")
    assert "python -m pytest -q" in (REPO / ".ci" / "run").read_text(encoding="utf-8")


@pytest.mark.parametrize("command", COMMANDS)
def test_readme_command_parses(command):
    if command.startswith("python -m pytest"):  # the test runner: its options are pytest's, its files must exist
        assert all((REPO / word).is_file() for word in shlex.split(command) if word.endswith(".py")), command
        return
    script, flags = script_and_flags(command)
    assert (REPO / script).is_file(), f"README runs {script}, which does not exist"
    if "--help" in flags:
        return
    if script == "bench/quality.py":  # its own flags end at "--"; the rest go to every stage
        own, flags = (flags[:flags.index("--")], flags[flags.index("--") + 1:]) if "--" in flags else (flags, [])
        quality_bench().bench_parser().parse_args(own)
    if script in ARGPARSE_BENCHES:
        load_script(script).bench_parser().parse_args(flags)
        return
    if script.startswith("bench/") or script.startswith("-m"):
        flags = drop_flags(flags, BENCH_EXTRAS)
    flags = drop_flags(flags, STAGE_EXTRAS.get(script, {}))
    parse_config(without_dataset_configs(flags), short=script_short_flags(script))


def script_short_flags(script: str) -> dict[str, str]:
    """A stage script's everyday flags (--title, --input, ...); benches take the full names."""
    if script.startswith("bench/") or not script.endswith(".py"):
        return {}
    return getattr(load_script(script), "SHORT_FLAGS", {})


def load_script(script: str):
    spec = importlib.util.spec_from_file_location(script[:-3].replace("/", "."), REPO / script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def quality_bench():
    spec = importlib.util.spec_from_file_location("quality_bench", REPO / "bench" / "quality.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
