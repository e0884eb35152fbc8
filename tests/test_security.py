"""What is loaded, and from where (docs/reliability.md): nothing loaded runs code, and the offline setting works.

The source check reads every Python file of the project (genrec/, the scripts, config.py, bench/) for the calls
that would run code from a file (a pickle, unsafe YAML, remote model code); a new one fails here until it is made
safe or docs/reliability.md says why it is."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from conftest import REPO

SOURCES = sorted([*REPO.glob("*.py"), *(REPO / "genrec").rglob("*.py"), *(REPO / "bench").glob("*.py")])

UNSAFE = {
    r"\bpickle\.loads?\(|\bjoblib\.load\(|\bdill\.": "a pickle runs code when it is read",
    r"\byaml\.load\(|\byaml\.unsafe_load\(|yaml\.Loader\b|yaml\.UnsafeLoader\b": "unsafe YAML builds objects",
    r"allow_pickle\s*=\s*True": "np.load with pickles runs code",
    r"trust_remote_code\s*=\s*True": "a model folder's own Python would run",
    r"(?<![\w.])(eval|exec)\(": "code from a string",
}


@pytest.mark.parametrize("pattern", UNSAFE, ids=list(UNSAFE.values()))
def test_no_source_file_loads_data_in_a_way_that_runs_code(pattern):
    hits = [f"{path.relative_to(REPO)}:{number}" for path in SOURCES
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
            if re.search(pattern, line.split("#", 1)[0])]
    assert not hits, f"{UNSAFE[pattern]}: {hits}"


def test_every_torch_load_reads_weights_only():
    calls = [(path, line) for path in SOURCES for line in path.read_text(encoding="utf-8").splitlines()
             if "torch.load(" in line.split("#", 1)[0]]
    assert calls, "the RQ-VAE's weights are read with torch.load"
    assert all("weights_only=True" in line for _, line in calls), calls


def test_importing_genrec_makes_the_hub_offline_before_transformers_reads_it():
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    code = "import genrec\nimport transformers\nimport huggingface_hub.constants as hub\nprint(hub.HF_HUB_OFFLINE)"
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.stdout.split() == ["True"], proc.stderr[-2000:]
