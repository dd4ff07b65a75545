"""docs/contributing.md is runnable as written: its files, its config and its tests (in a fresh
process, so the guide's components do not join this test session's registries)."""
from __future__ import annotations

import os
import re
import subprocess
import sys

from conftest import ROOT
from erasure.results.writers import read_rows

GUIDE = ROOT / "docs" / "contributing.md"


def files_of_the_guide() -> dict[str, str]:
    """Every fenced block whose first line names a file (``# mylab/x.py``, ``// mylab.jsonc``)."""
    files = {}
    for block in re.findall(r"```(?:python|jsonc)\n(.*?)```", GUIDE.read_text(), flags=re.S):
        first = block.splitlines()[0]
        match = re.fullmatch(r"(?:#|//) ([\w/]+\.(?:py|jsonc))", first.strip())
        if match:
            files[match[1]] = block
    return files


def test_the_contributor_guide_runs_as_written(tmp_path):
    files = files_of_the_guide()
    assert {"mylab/unlearners.py", "mylab/evaluators.py", "mylab/sources.py", "mylab.jsonc",
            "tests/test_mylab.py"} <= set(files)
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    (tmp_path / "mylab" / "__init__.py").write_text("")
    # No PYTHONPATH to the project folder: the config's own folder is where its imports are found.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    validate = subprocess.run([sys.executable, "-m", "erasure", "validate", "mylab.jsonc"], cwd=tmp_path,
                              env=dict(env, PYTHONPATH=str(ROOT)), capture_output=True, text=True, timeout=300)
    assert validate.returncode == 0, validate.stderr
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    run = subprocess.run([sys.executable, str(ROOT / "main.py"), "../mylab.jsonc", "--no-progress"],
                         cwd=elsewhere, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    (tmp_path / "results").mkdir(exist_ok=True)
    (elsewhere / "results" / "mylab").rename(tmp_path / "results" / "mylab")
    rows = read_rows(tmp_path / "results" / "mylab" / "results.csv")
    assert {r["unlearner"] for r in rows} == {"Identity", "GoldModel", "ForgetByNoise"}
    assert any(r["metric"] == "confidence_gap" for r in rows)
    tests = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_mylab.py"],
                           cwd=tmp_path, env=dict(env, PYTHONPATH=os.pathsep.join([str(tmp_path), str(ROOT)])), capture_output=True, text=True, timeout=300)
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert "2 passed" in tests.stdout
