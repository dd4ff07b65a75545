"""The installable package: the ``erasure`` command, plugin discovery through entry points, and the
contract helpers a contributor imports."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import ROOT, tiny_config
from erasure import __version__
from erasure.cli import console
from erasure.testing import check_unlearner

PLUGIN = textwrap.dedent('''
    """An installed plugin: registers through the erasure.plugins entry point, no "imports" needed."""
    import torch
    from erasure.core.params import Fraction
    from erasure.unlearners.base import Unlearner


    class PluginShrink(Unlearner):
        """Multiplies every weight by factor."""

        contract_config = {"parameters": {"factor": 0.5}}

        def __init__(self, factor: Fraction = 0.5):
            self.factor = factor

        def unlearn(self, model, ctx):
            with torch.no_grad():
                for p in model.parameters():
                    p.mul_(self.factor)
            return model
''')


def erasure(*args: str, cwd: Path = ROOT, extra_path: str = "") -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), extra_path) if p))
    return subprocess.run([sys.executable, "-m", "erasure", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def installed_plugin(tmp_path_factory) -> Path:
    """A site directory holding a plugin module and its distribution metadata (what pip would write)."""
    site = tmp_path_factory.mktemp("site")
    (site / "mylab_plugin.py").write_text(PLUGIN)
    info = site / "mylab_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: mylab-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[erasure.plugins]\nmylab = mylab_plugin\n")
    return site


def test_console_commands(capsys, tmp_path):
    assert console(["--version"]) == 0 and capsys.readouterr().out.strip() == f"erasure {__version__}"
    assert console(["list", "unlearners"]) == 0 and "NegGrad(" in capsys.readouterr().out
    config = tmp_path / "c.json"
    config.write_text(json.dumps(tiny_config(tmp_path)))
    assert console(["validate", str(config)]) == 0 and "OK" in capsys.readouterr().out
    assert console(["run", str(config), "--no-progress"]) == 0
    assert (tmp_path / "out" / "results.csv").exists()
    assert console(["summarize", str(tmp_path / "out" / "results.csv")]) == 0
    assert console(["frobnicate"]) == 2 and "unknown command" in capsys.readouterr().err


def test_an_installed_plugin_registers_without_imports(installed_plugin, tmp_path):
    listing = erasure("list", "unlearners", extra_path=str(installed_plugin))
    assert listing.returncode == 0 and "PluginShrink(factor=0.5)" in listing.stdout
    for name in ("PluginShrink", "mylab_plugin.PluginShrink"):  # short name, and a dotted path into the plugin
        config = tiny_config(tmp_path / name, unlearners=[{"class": name, "parameters": {"factor": 0.0}}])
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(config))
        done = erasure("run", str(path), "--no-progress", extra_path=str(installed_plugin))
        assert done.returncode == 0, done.stderr
        rows = (tmp_path / name / "out" / "results.csv").read_text()
        assert "PluginShrink" in rows


def test_a_broken_plugin_is_named_and_skipped(tmp_path):
    (tmp_path / "broken_plugin.py").write_text("raise ImportError('missing dependency: foo')\n")
    info = tmp_path / "broken_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[erasure.plugins]\nbroken = broken_plugin\n")
    done = erasure("list", "unlearners", extra_path=str(tmp_path))
    assert done.returncode == 0 and "NegGrad(" in done.stdout
    assert "plugin 'broken'" in done.stderr and "missing dependency: foo" in done.stderr


def test_contributors_check_their_own_class():
    sys.path.insert(0, str(ROOT / "tests" / "plugins"))
    from erasure_test_plugins import ShrinkWeights

    check_unlearner(ShrinkWeights, parameters={"factor": 0.25})
