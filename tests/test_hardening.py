"""The third red-team pass (docs/security.md): the report's files, the tuning journal, FIFOs and
devices named as data, absurd values in data files, a read-only cache, HTML in Markdown, frozen
modules, over-long or looping paths, and the loss checked at validation."""
from __future__ import annotations

import copy
import errno
import json
import logging
import os
import signal
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import ROOT, tiny_config
from erasure.cli import main
from erasure.core.errors import ConfigError

POC = ROOT / "configs" / "proof_of_concept.jsonc"
HTML_LABELS = ["<script>alert(1)</script>", "<img src=x onerror=alert(1)>"]


class Hung(BaseException):
    """Raised in a call that waited too long (a BaseException: no ``except Exception`` or
    ``except OSError`` in the code under test turns it into an answer)."""


@pytest.fixture
def no_hang():
    """Fail (instead of hanging) a test whose code waits on a FIFO for more than 10 seconds."""
    def alarm(*_):
        raise Hung("waited 10 s")

    before = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(10)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, before)


def run_cli(tmp_path: Path, config: dict, capsys, *extra: str) -> tuple[int, str]:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    code = main([str(path), "--no-progress", *extra])
    return code, capsys.readouterr().err


def fifo(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(path)
    return path


# ------------------------------------------------- 1 and 7: the report writes no link and no raw HTML
@pytest.fixture(scope="module")
def results(tmp_path_factory) -> Path:
    """A tiny run whose labels are HTML."""
    from conftest import make_runner

    directory = tmp_path_factory.mktemp("html")
    unlearners = [{"class": "Identity"}, {"class": "GoldModel"},
                  *({"class": "FineTuning", "label": label, "parameters": {"epochs": 1}} for label in HTML_LABELS)]
    make_runner(tiny_config(directory, unlearners=unlearners)).run()
    return directory / "out"


@pytest.fixture
def received(results, tmp_path) -> Path:
    """A copy of the results folder, as someone else sends it."""
    import shutil

    return Path(shutil.copytree(results, tmp_path / "received"))


@pytest.mark.parametrize("planted", ["summary.md", "summary.tex", "report.html"])
def test_the_report_never_writes_through_a_link(received, tmp_path, planted, capsys):
    from erasure.report import main as report

    victim = tmp_path / "bashrc"
    victim.write_text("keep me")
    (received / planted).symlink_to(victim)
    code = report([str(received), "-o", str(received / "report.html"), "--no-static"])
    assert code == 2 and "symbolic link" in capsys.readouterr().err
    assert victim.read_text() == "keep me"


def test_static_figures_and_plots_never_write_through_a_link(results, tmp_path):
    from erasure.report import figures as F
    from erasure.report.data import load_run
    from erasure.report.static import save

    victim = tmp_path / "victim"
    victim.write_text("keep me")
    (tmp_path / "figure.png").symlink_to(victim)
    figure = F.run_figures(load_run(results))[0]
    with pytest.raises(ConfigError, match="symbolic link"):
        save(figure, [tmp_path / "figure.png"])
    assert victim.read_text() == "keep me"
    assert save(figure, [tmp_path / "other.png"])[0].read_bytes().startswith(b"\x89PNG")


def test_summarize_refuses_a_linked_summary_with_exit_2(received, tmp_path, capsys):
    from erasure.summarize import main as summarize

    victim = tmp_path / "victim"
    victim.write_text("keep me")
    (received / "summary.csv").unlink()
    (received / "summary.csv").symlink_to(victim)
    assert summarize([str(received)]) == 2
    assert "symbolic link" in capsys.readouterr().err and victim.read_text() == "keep me"


def test_summary_md_escapes_html_in_labels_metrics_and_titles(received, monkeypatch):
    from erasure.report import build_report, tables

    files = build_report([received], received / "report.html", titles=["<b onmouseover=x>run</b>"], static=False)
    text = files.markdown.read_text()
    assert "<" not in text and ">" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text and "&lt;img src=x onerror=alert(1)&gt;" in text
    assert tables.md_escape("<i>a|b</i> & c") == "&lt;i&gt;a\\|b&lt;/i&gt; &amp; c"
    page = files.html.read_text()  # the HTML page escapes them too
    assert not any(raw in page for raw in [*HTML_LABELS, "<b onmouseover"])


@pytest.mark.parametrize("planted", ["targets.json", "results.jsonl", "results.jsonl.tmp", "artifacts/seed0/m/x.npy",
                                     "artifacts/index.csv"])
def test_the_other_run_outputs_never_write_through_a_link(tmp_path, planted):
    """The same rule for the files a run writes beside results.csv (found while auditing item 1)."""
    from erasure.results.directory import save_artifact
    from erasure.results.jsonl import replace_file
    from erasure.results.targets import Target, write_targets

    victim = tmp_path / "victim"
    victim.write_text("keep me")
    (tmp_path / planted).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / planted).symlink_to(victim)
    try:
        if planted == "targets.json":
            write_targets({"m": Target("ideal", 1.0)}, tmp_path / planted)
        elif planted.startswith("results.jsonl"):
            replace_file(tmp_path / "results.jsonl", "{}\n")
        else:
            save_artifact(tmp_path, 0, "m", "x", [1.0, 2.0])
    except ConfigError as exc:
        assert "symbolic link" in str(exc)
    assert victim.read_text() == "keep me"


# --------------------------------------------------------------------- 2: the tuning journal
def tuning_config(tmp_path: Path) -> dict:
    return tiny_config(tmp_path, unlearners=[{"class": "Identity"}, {"class": "GoldModel"},
                                             {"class": "FineTuning", "parameters": {"epochs": 1}}],
                       tuning={"trials": 1, "seeds": [100], "max_epochs": 1, "objective": "accuracy_test:max"})


@pytest.fixture(scope="module")
def tuned(tmp_path_factory) -> dict:
    """A finished tiny tuning run (its config), copied by each test that damages it."""
    directory = tmp_path_factory.mktemp("tuned")
    config = tuning_config(directory)
    path = directory / "config.json"
    path.write_text(json.dumps(config))
    assert main([str(path), "--no-progress"]) == 0
    return config


@pytest.fixture
def tuned_copy(tuned, tmp_path) -> tuple[dict, Path]:
    import shutil

    config = copy.deepcopy(tuned)
    shutil.copytree(tuned["output"]["dir"], tmp_path / "out")
    config["output"]["dir"] = str(tmp_path / "out")
    return config, tmp_path / "out" / "tuning" / "study.journal"


@pytest.mark.parametrize("torn", [b'{"op_code": 5, "worker_id": "x", "trial_id": 0, "pa', b'{"op'])
def test_a_torn_last_journal_line_is_dropped_and_the_run_resumes(tuned_copy, tmp_path, torn, capsys):
    config, journal = tuned_copy
    whole = journal.read_bytes()
    with open(journal, "ab") as f:
        f.write(torn)  # cut by a kill or a full disk
    config["tuning"]["trials"] = 2  # the resumed run appends to the journal, and reads it again
    for _ in range(2):
        code, err = run_cli(tmp_path, config, capsys)
        assert code == 0, err
    lines = journal.read_bytes().split(b"\n")
    assert journal.read_bytes().startswith(whole) and lines[-1] == b""
    assert all(json.loads(line)["op_code"] is not None for line in lines[:-1])


@pytest.mark.parametrize("damage", ["garbage", "binary", "directory", "link"])
def test_a_damaged_journal_exits_2_naming_the_file_and_the_remedy(tuned_copy, tmp_path, damage, capsys):
    config, journal = tuned_copy
    if damage == "garbage":
        journal.write_bytes(b"not json\n" + journal.read_bytes())
    elif damage == "binary":
        journal.write_bytes(bytes(range(256)) * 4)
    elif damage == "directory":
        journal.unlink()
        journal.mkdir()
    else:
        target = tmp_path / "elsewhere.journal"
        journal.rename(target)
        journal.symlink_to(target)
    code, err = run_cli(tmp_path, config, capsys)
    assert code == 2, err
    assert str(journal) in err and "delete" in err and "Traceback" not in err


def test_a_journal_trial_outside_the_search_space_is_refused(tuned_copy, tmp_path, capsys):
    import optuna

    from erasure.tuning.pruning import journal_storage

    config, journal = tuned_copy
    study = optuna.load_study(study_name="FineTuning", storage=journal_storage(journal))
    d = optuna.distributions
    study.add_trial(optuna.trial.create_trial(  # "better" than any real trial, from a planted journal
        params={"epochs": 1, "lr": 50.0}, value=-1e9,
        distributions={"epochs": d.IntDistribution(1, 1), "lr": d.FloatDistribution(40.0, 60.0, log=True)}))
    code, err = run_cli(tmp_path, config, capsys)
    assert code == 2 and "lr" in err and "search space" in err and str(journal) in err, err


# ---------------------------------------------------------------- 4: FIFOs never hang the run
def test_a_fifo_as_the_config_is_refused(tmp_path, no_hang, capsys):
    path = fifo(tmp_path / "config.jsonc")
    assert main([str(path), "--validate"]) == 2
    assert "FIFO" in capsys.readouterr().err


def test_a_fifo_as_the_tensor_file_is_refused(tmp_path, no_hang, capsys):
    path = fifo(tmp_path / "data.pt")
    config = tiny_config(tmp_path)
    config["data"]["source"] = {"class": "TensorFileSource", "parameters": {"path": str(path)}}
    code, err = run_cli(tmp_path, config, capsys)
    assert code == 2 and "FIFO" in err, err


def write_png(path: Path, value: int = 0) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (4, 4), (value, value, value)).save(path)


def test_a_fifo_image_in_an_image_folder_is_refused(tmp_path, no_hang):
    from erasure.data.sources.image_folder import ImageFolderSource

    for name in ("a/1.png", "b/2.png"):
        write_png(tmp_path / name)
    fifo(tmp_path / "a" / "3.png")
    with pytest.raises(ConfigError, match="FIFO"):
        ImageFolderSource(str(tmp_path), num_workers=0).load()


def test_a_fifo_labels_csv_is_refused(tmp_path, no_hang):
    from erasure.data.sources.image_folder import ImageFolderSource

    with pytest.raises(ConfigError, match="FIFO"):
        ImageFolderSource(str(tmp_path), labels=str(fifo(tmp_path / "labels.csv")), num_workers=0).load()


@pytest.mark.parametrize("name", ["forget.json", "forget.npy"])
def test_a_fifo_or_device_as_the_index_file_is_refused(tmp_path, no_hang, name):
    from erasure.data.forget import read_indices

    with pytest.raises(ConfigError, match="FIFO"):
        read_indices(str(fifo(tmp_path / name)), "forget")
    (tmp_path / f"zero-{name}").symlink_to("/dev/zero")  # 5: read without limit before
    with pytest.raises(ConfigError, match="character device"):
        read_indices(str(tmp_path / f"zero-{name}"), "forget")


@pytest.mark.parametrize("source", ["UCISource", "HuggingFaceSource"])
def test_a_fifo_as_a_csv_data_file_is_refused(tmp_path, no_hang, source):
    from erasure.data.sources.huggingface import HuggingFaceSource
    from erasure.data.sources.uci import UCISource

    path = str(fifo(tmp_path / "data.csv"))
    spec = UCISource(path=path, target="y") if source == "UCISource" else HuggingFaceSource("csv", data_files=path)
    with pytest.raises(ConfigError, match="FIFO"):
        spec.load()


def test_a_fifo_as_the_tuning_journal_is_refused(tmp_path, no_hang, capsys):
    config = tuning_config(tmp_path)
    fifo(Path(config["output"]["dir"]) / "tuning" / "study.journal")
    code, err = run_cli(tmp_path, config, capsys)
    assert code == 2 and "FIFO" in err, err


# ------------------------------------------------------------ 5: bounded reads, absurd values
def labelled_images(tmp_path: Path, rows: list[tuple[str, object]]) -> Path:
    for file, _ in rows:
        if not file.startswith(("/", "..")):
            write_png(tmp_path / "images" / file)
    labels = tmp_path / "labels.csv"
    labels.write_text("file,label\n" + "".join(f"{f},{y}\n" for f, y in rows))
    return labels


def test_an_absurd_label_in_the_labels_csv_is_refused(tmp_path):
    from erasure.data.sources.image_folder import ImageFolderSource

    labels = labelled_images(tmp_path, [("a.png", 0), ("b.png", 10 ** 12)])
    with pytest.raises(ConfigError, match="1000000000000"):
        ImageFolderSource(str(tmp_path / "images"), labels=str(labels), num_workers=0).load()


def test_an_index_file_over_the_size_limit_is_refused(tmp_path, monkeypatch):
    from erasure.data import forget

    path = tmp_path / "forget.json"
    path.write_text(json.dumps(list(range(1000))))
    assert forget.read_indices(str(path), "forget") == list(range(1000))
    monkeypatch.setattr(forget, "MAX_INDEX_FILE_BYTES", 1000)
    with pytest.raises(ConfigError, match="larger than 1,000 bytes"):
        forget.read_indices(str(path), "forget")


# --------------------------------------------------- 6: a read-only cache with a corrupt entry
def test_a_corrupt_entry_in_a_read_only_cache_is_skipped(tmp_path, monkeypatch, caplog):
    from erasure.core import cache as C

    model = torch.nn.Linear(2, 2)
    store = C.ModelCache(tmp_path)
    (tmp_path / "k.json").write_text("{corrupt")
    (tmp_path / "k.pt").write_bytes(b"junk")

    def read_only(path):
        raise OSError(errno.EROFS, "Read-only file system", str(path))

    monkeypatch.setattr(C, "_remove", read_only)
    monkeypatch.setattr(C.tempfile, "mkstemp", lambda *a, **k: read_only(tmp_path))
    trained = []
    with caplog.at_level(logging.WARNING, "erasure.cache"):
        _, _, hit = store.get_or_train("k", model, lambda m: trained.append(1) or C.Timing())
    assert trained == [1] and not hit and not store.enabled
    assert "Read-only file system" in caplog.text and (tmp_path / "k.json").read_text() == "{corrupt"


# ------------------------------------------------------------------ 8: frozen modules
@pytest.mark.parametrize("module", ["__hello__", "__hello_only__", "__phello__", "__phello__.spam"])
def test_frozen_standard_modules_are_refused(module, capsys):
    from erasure.core.factory import check_plugin_module

    with pytest.raises(ConfigError, match="frozen"):
        check_plugin_module(module, "imports[0]")
    assert "Hello world" not in capsys.readouterr().out


# ------------------------------------------------- 9: config errors, never "unexpected error"
@pytest.mark.parametrize("case", ["include loop", "include long name", "long checkpoint"])
def test_bad_paths_in_a_config_are_config_errors(tmp_path, case, capsys):
    config = tiny_config(tmp_path)
    if case == "include loop":
        (tmp_path / "loop.jsonc").symlink_to(tmp_path / "loop.jsonc")
        config["include"] = ["loop.jsonc"]
    elif case == "include long name":
        config["include"] = ["x" * 300 + ".jsonc"]
    else:
        config["model"]["checkpoint"] = "/tmp/" + "c/" * 2500
    code, err = run_cli(tmp_path, config, capsys, "--validate")
    assert code == 2 and err.startswith("config error:"), err


@pytest.fixture(scope="module")
def tiny_data():
    from erasure.data.dataset import Dataset

    return Dataset(torch.zeros(10, 2), torch.arange(10) % 2, 2), torch.arange(8)


@pytest.mark.parametrize("values", [[2 ** 63], [2 ** 64, 1], [1, 2 ** 70]])
def test_an_index_beyond_int64_is_a_config_error(tmp_path, tiny_data, values):
    from erasure.data.forget import IndexForget

    path = tmp_path / "forget.json"
    path.write_text(json.dumps(values))
    with pytest.raises(ConfigError, match="index"):
        IndexForget(path=str(path)).select(*tiny_data, np.random.default_rng(0))
    with pytest.raises(ConfigError, match="indices"):  # given in the config
        IndexForget(indices=values).check()


@pytest.mark.parametrize("name", ["x{0}{seed}.json", "x{{seed}.json", "{seed}}.json", "{seed}{}.json"])
def test_braces_in_an_index_path_are_plain_characters(tmp_path, tiny_data, name):
    from erasure.data.forget import IndexForget

    spec = IndexForget(path=str(tmp_path / name)).for_seed(3)
    expected = tmp_path / name.replace("{seed}", "3")
    assert spec.path == str(expected)
    with pytest.raises(ConfigError, match="cannot read"):
        spec.select(*tiny_data, np.random.default_rng(0))
    expected.write_text("[1, 2]")
    assert spec.select(*tiny_data, np.random.default_rng(0)).tolist() == [1, 2]


# ------------------------------------------------------ 10: validation and the docs agree
@pytest.mark.parametrize("loss", ["MSELoss", "BCEWithLogitsLoss", "L1Loss"])
def test_validate_catches_a_loss_that_does_not_fit_a_known_task(loss, capsys):
    code = main([str(POC), "--validate", "--set", f'training.loss={{"class": "{loss}"}}'])
    err = capsys.readouterr().err
    assert code == 2 and "training.loss" in err and loss in err, err


def test_validate_accepts_the_loss_of_the_task(tmp_path, capsys):
    config = tiny_config(tmp_path, task="multi-label")
    assert run_cli(tmp_path, config, capsys, "--validate")[0] == 0


@pytest.mark.parametrize("file", ["/etc/hostname", "../outside.png", "sub/../../outside.png"])
def test_labels_csv_paths_stay_under_root(tmp_path, file):
    from erasure.data.sources.image_folder import ImageFolderSource

    write_png(tmp_path / "outside.png")
    labels = labelled_images(tmp_path, [("a.png", 0), (file, 1)])
    with pytest.raises(ConfigError, match="outside"):
        ImageFolderSource(str(tmp_path / "images"), labels=str(labels), num_workers=0).load()
