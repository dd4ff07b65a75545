"""Train-time augmentation (training.augment): batched crop and flip match torchvision's, draws come
from the job's generator, the trainer and augmenting unlearners use it, evaluation never does, and
serial and process-pool runs give the same values."""
from __future__ import annotations

import copy
import json

import pytest
import torch
from torchvision.transforms.v2 import functional as TF

from conftest import ROOT, make_runner
from erasure.core.errors import ConfigError
from erasure.data import augment as aug
from erasure.data.augment import Augmentation, augmented, original
from erasure.data.dataset import Dataset
from erasure.data.partitions import Partitions
from erasure.execution.experiment import build_experiment, load_experiment
from erasure.models.training import TrainingRecipe, train_model
from erasure.results.writers import read_rows

CROP = {"class": "RandomCrop", "parameters": {"size": 8, "padding": 2}}
FLIP = {"class": "RandomHorizontalFlip"}


def images(n: int = 16, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 3, 8, 8, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("fill", [0, [0.25, 0.5, 0.75]])
def test_batched_crop_is_a_torchvision_crop_of_the_padded_image_at_varied_offsets(fill):
    x = images()
    spec = {"class": "RandomCrop", "parameters": {"size": 8, "padding": 2, "fill": fill}}
    out = Augmentation([spec])(x, torch.Generator().manual_seed(1))
    offsets = []
    for image, crop in zip(x, out):
        padded = TF.pad(image, [2, 2, 2, 2], fill=fill)
        found = [(t, l) for t in range(5) for l in range(5) if torch.equal(TF.crop(padded, t, l, 8, 8), crop)]
        assert len(found) == 1
        offsets.append(found[0])
    assert len(set(offsets)) > 5  # per-sample offsets, not one for the batch


def test_batched_reflect_crop_and_flips_match_torchvision():
    x = images()
    out = aug.random_crop(x, (8, 8), (1, 1, 1, 1), 0, "reflect", torch.Generator().manual_seed(0))
    for image, crop in zip(x, out):
        padded = TF.pad(image, [1, 1, 1, 1], padding_mode="reflect")
        assert any(torch.equal(TF.crop(padded, t, l, 8, 8), crop) for t in range(3) for l in range(3))
    flipped = Augmentation([FLIP])(x, torch.Generator().manual_seed(0))
    same = [torch.equal(a, b) for a, b in zip(flipped, x)]
    mirrored = [torch.equal(a, TF.horizontal_flip(b)) for a, b in zip(flipped, x)]
    assert all(s != m for s, m in zip(same, mirrored)) and 0 < sum(mirrored) < len(x)


def test_draws_come_from_the_generator_only():
    steps = Augmentation([CROP, FLIP, {"class": "ColorJitter", "parameters": {"brightness": 0.5}}])
    x = images()
    torch.manual_seed(123)
    first = steps(x, torch.Generator().manual_seed(5))
    torch.manual_seed(999)  # the global RNG does not matter
    again = steps(x, torch.Generator().manual_seed(5))
    other = steps(x, torch.Generator().manual_seed(6))
    assert torch.equal(first, again) and not torch.equal(first, other) and not torch.equal(first, x)
    with pytest.raises(ValueError, match=r"float batches \(N, C, H, W\)"):
        steps(torch.rand(4, 64), torch.Generator())


def test_the_view_augments_take_and_original_undoes_it():
    data = Dataset(images(), torch.arange(16) % 2, 2)
    view = augmented(data, Augmentation([CROP, FLIP]), torch.Generator().manual_seed(0))
    assert view.inputs is data.inputs and augmented(view, Augmentation([FLIP]), torch.Generator()) is view
    index = torch.arange(16)
    assert not torch.equal(view.take(index), data.take(index))
    assert torch.equal(original(view).take(index), data.take(index))
    assert augmented(data, Augmentation([]), torch.Generator()) is data


def test_specs_are_checked_through_the_factory_and_the_source_points_to_the_recipe():
    from erasure.core.factory import validate_spec
    from erasure.data.sources.torchvision import check_transform

    with pytest.raises(ConfigError, match="did you mean 'RandomCrop'"):
        validate_spec({"class": "RandomCrp"}, "transform", "training.augment[0]")
    with pytest.raises(ConfigError, match="refusing to import"):
        validate_spec({"class": "os.system"}, "transform", "training.augment[0]")
    with pytest.raises(ConfigError, match="FiveCrop does not map an image tensor"):
        validate_spec({"class": "FiveCrop", "parameters": {"size": 4}}, "transform", "training.augment[0]")
    with pytest.raises(ConfigError, match='"training": {"augment"'):
        check_transform([{"class": "RandomCrop", "parameters": {"size": 32, "padding": 4}}])


def test_the_update_log_scheme_trains_on_augmented_batches_and_still_undoes_exactly():
    from erasure.models.schemes.base import parameter_vector
    from erasure.models.schemes.update_log import UpdateLogTraining, undo

    x, y = images(64), torch.arange(64) % 2
    parts = Partitions(Dataset(x, y, 2), {"train": torch.arange(64)})

    def logged(recipe: TrainingRecipe):
        torch.manual_seed(0)
        scheme = UpdateLogTraining(log="all")
        model = scheme.prepare(lambda: torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(192, 2)), parts, 0)
        start = parameter_vector(model)
        return scheme.fit(model, parts, parts["train"], recipe, torch.Generator().manual_seed(0)), start

    plain, _ = logged(TrainingRecipe(epochs=2, batch_size=16, optimizer={"class": "SGD", "parameters": {"lr": 0.1}}))
    augmenting, start = logged(TrainingRecipe(epochs=2, batch_size=16, augment=[CROP, FLIP],
                                              optimizer={"class": "SGD", "parameters": {"lr": 0.1}}))
    assert not torch.equal(parameter_vector(plain), parameter_vector(augmenting))
    undo(augmenting, torch.arange(64))  # every logged (augmented) step taken back: the initial weights
    assert torch.allclose(parameter_vector(augmenting), start, atol=1e-5)


def test_trainer_uses_augmentation_and_it_enters_the_cache_key():
    x, y = images(64), torch.arange(64) % 2
    parts = Partitions(Dataset(x, y, 2), {"train": torch.arange(64)})

    def trained(recipe: TrainingRecipe) -> torch.Tensor:
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(192, 2))
        train_model(model, parts, "train", recipe, torch.Generator().manual_seed(0))
        return model[1].weight.detach().clone()

    plain = TrainingRecipe(epochs=2, batch_size=16)
    augmenting = TrainingRecipe(epochs=2, batch_size=16, augment=[CROP, FLIP])
    assert not torch.equal(trained(plain), trained(augmenting))
    assert torch.equal(trained(augmenting), trained(augmenting))
    assert plain.as_dict() != augmenting.as_dict()  # the cache key hashes the recipe's dict


def digits_config(tmp_path, name: str, executor: str = "serial") -> dict:
    """Digits as 1 x 8 x 8 images, a tiny CNN, crop-and-flip augmentation; SalUn (augments by
    default), FineTuning (does not) and FineTuning with augment on."""
    config = json.loads(json.dumps(load_experiment(ROOT / "configs/proof_of_concept.jsonc").config))
    config.update(
        seeds=[0], device="cpu", output={"dir": str(tmp_path / name), "writers": [{"class": "CSVWriter"}]},
        cache={"enabled": False}, execution={"executor": executor, **({"workers": 2} if executor == "local" else {})},
        model={"class": "CNN", "parameters": {"channels": [4], "hidden": 16}},
        training={"epochs": 2, "batch_size": 64, "augment": [CROP, FLIP],
                  "optimizer": {"class": "Adam", "parameters": {"lr": 0.01}}},
        unlearners=[{"class": "SalUn", "parameters": {"epochs": 1}},
                    {"class": "FineTuning", "parameters": {"epochs": 1}},
                    {"class": "FineTuning", "label": "FT+augment", "parameters": {"epochs": 1, "augment": True}}],
        evaluators=[{"class": "Accuracy"}, {"class": "UMIA"}])
    config["data"]["forget"] = {"class": "RandomForget", "parameters": {"fraction": 0.1}}
    return config


def test_augmentation_runs_in_training_only(tmp_path, monkeypatch):
    from erasure.evaluators.base import Evaluator

    calls = {"training": 0, "evaluating": 0}
    state = {"evaluating": False}
    real_call = Augmentation.__call__

    def counting(self, x, generator):
        calls["evaluating" if state["evaluating"] else "training"] += 1
        return real_call(self, x, generator)

    monkeypatch.setattr(Augmentation, "__call__", counting)
    for cls in {type(e) for e in build_experiment(digits_config(tmp_path, "probe")).evaluators}:
        real = cls.evaluate

        def flagged(self, outcome, _real=real):
            state["evaluating"] = True
            try:
                return _real(self, outcome)
            finally:
                state["evaluating"] = False

        assert isinstance(cls, type) and issubclass(cls, Evaluator)
        monkeypatch.setattr(cls, "evaluate", flagged)
    runner = make_runner(digits_config(tmp_path, "serial"))
    runner.run()
    assert calls["evaluating"] == 0 and calls["training"] > 0



def test_each_method_follows_its_reference_and_the_option_overrides_it(monkeypatch):
    import numpy as np

    from erasure.core.factory import build
    from erasure.unlearners.base import UnlearningContext

    seen = []
    real_call = Augmentation.__call__
    monkeypatch.setattr(Augmentation, "__call__", lambda self, x, g: seen.append(len(x)) or real_call(self, x, g))
    data = Dataset(images(48), torch.arange(48) % 3, 3)
    parts = Partitions(data, {"train": torch.arange(40), "forget": torch.arange(4), "retain": torch.arange(4, 40),
                              "test": torch.arange(40, 48)})
    recipe = TrainingRecipe(epochs=1, batch_size=16, augment=[CROP, FLIP])

    def calls(spec: dict) -> int:
        seen.clear()
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(192, 3))
        ctx = UnlearningContext(parts, torch.device("cpu"), 3, recipe, 0, torch.Generator().manual_seed(0),
                                np.random.default_rng(0), lambda: None, lambda: None)
        build(spec, "unlearner", "u").unlearn(model, ctx)
        assert ctx.partitions is parts  # the training view does not outlive the call
        return len(seen)

    assert calls({"class": "SalUn", "parameters": {"epochs": 1}}) > 0
    assert calls({"class": "SalUn", "parameters": {"epochs": 1, "augment": False}}) == 0
    assert calls({"class": "FineTuning", "parameters": {"epochs": 1}}) == 0
    assert calls({"class": "FineTuning", "parameters": {"epochs": 1, "augment": True}}) == 3  # 36 retained / 16
    assert calls({"class": "SCRUB", "parameters": {"epochs": 1}}) == 0
    # Goel et al.'s loop (CF-k, EU-k) and the OPTML-Group loaders (L1Sparse, Boundary*) augment
    for name in ("CFk", "EUk", "L1Sparse", "BoundaryShrink", "BoundaryExpanding", "DELETE", "SFRon"):
        short = {"iterations": 2} if name == "SFRon" else {"epochs": 1}
        assert calls({"class": name, "parameters": short}) > 0, name
        assert calls({"class": name, "parameters": {**short, "augment": False}}) == 0, name


def test_the_fidelity_table_states_every_training_methods_augmentation_default():
    """docs/fidelity.md's "Train-time augmentation during unlearning" table lists each training
    unlearner once, with the default its class has."""
    from erasure.core.registry import load_builtins, registry
    from erasure.unlearners.base import TrainingUnlearner

    load_builtins()
    text = (ROOT / "docs" / "fidelity.md").read_text()
    section = text.split("## Train-time augmentation during unlearning")[1].split("\n## ")[0]
    stated = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) == 3 and cells[2].split(" ")[0] in ("on", "off"):
            for name in cells[0].replace("`", "").split(","):
                stated[name.strip()] = cells[2].split(" ")[0] == "on"
    training = {n: c for n, c in registry("unlearner").items() if issubclass(c, TrainingUnlearner)}
    assert set(stated) == set(training), set(stated) ^ set(training)
    assert {n: c.augments for n, c in training.items()} == stated


def test_serial_and_process_pool_agree_with_augmentation(tmp_path):
    reports = {e: make_runner(digits_config(tmp_path, e, e)).run() for e in ("serial", "local")}
    serial, local = ({(r["unlearner"], r["metric"]): r["value"] for r in read_rows(reports[e].results_path)
                      if r["status"] == "ok" and "seconds" not in r["metric"] and "peak" not in r["metric"]
                      and "speedup" not in r["metric"]} for e in reports)
    assert serial == local and len(serial) >= 3 * 4
    assert serial[("SalUn", "accuracy_test")] != serial[("FineTuning", "accuracy_test")]


def test_compile_trains_the_model_through_the_compiled_module(monkeypatch):
    compiled = []

    def fake_compile(module):  # torch.compile itself takes minutes on a busy CPU; its use is what is tested
        compiled.append(module)
        return lambda x: module(x)

    monkeypatch.setattr(torch, "compile", fake_compile)
    parts = Partitions(Dataset(images(32), torch.arange(32) % 2, 2), {"train": torch.arange(32)})
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(192, 2))
    before = model[1].weight.detach().clone()
    train_model(model, parts, "train", TrainingRecipe(epochs=1, batch_size=16, compile=True), torch.Generator())
    assert compiled == [model] and not torch.equal(before, model[1].weight)
