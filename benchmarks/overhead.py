"""Framework overhead: the trainer on the PoC model versus a plain PyTorch loop doing the same work.

Same data (digits train split on the device), model (the PoC MLP, same initialisation),
optimizer (Adam 1e-3), epochs and batch size. The two are run alternately, several times,
and the median per-epoch cost is compared. Target: ratio <= 1.10.

    python benchmarks/overhead.py [--config configs/proof_of_concept.jsonc] [--repeats 7] [--epochs 30]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from erasure.execution.experiment import load_experiment  # noqa: E402
from erasure.execution.runner import Runner  # noqa: E402
from erasure.core.seeding import derive_seed  # noqa: E402
from erasure.models.training import train_model  # noqa: E402


def plain_loop(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: int, batch_size: int, lr: float,
               generator: torch.Generator) -> None:
    """The hand-written reference: shuffle, slice, forward, backward, step."""
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = torch.nn.CrossEntropyLoss()
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=generator).to(x.device)
        for start in range(0, len(x), batch_size):
            idx = order[start:start + batch_size]
            optimizer.zero_grad(set_to_none=True)
            loss_fn(model(x[idx]), y[idx]).backward()
            optimizer.step()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/proof_of_concept.jsonc")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--epochs", type=int, default=None, help="default: the config's")
    parser.add_argument("--device", default=None, help="default: the config's")
    args = parser.parse_args()
    overrides = [f"device={args.device}"] if args.device else []
    experiment = load_experiment(args.config, overrides)
    if args.epochs:
        experiment.recipe.epochs = args.epochs
    runner = Runner(experiment, use_cache=False, progress=False).workspace
    state = runner.prepare_seeds()[0]
    parts, recipe = state.partitions, experiment.recipe
    lr = recipe.optimizer["parameters"]["lr"]
    assert recipe.optimizer["class"] in ("Adam", "torch.optim.Adam"), "the plain loop uses Adam"
    train = parts["train"]
    x, y = parts.dataset.inputs[train], parts.dataset.targets[train]
    init = derive_seed(0, "model-init")
    sync = torch.cuda.synchronize if runner.device.type == "cuda" else (lambda: None)

    def time_framework() -> float:
        model = runner.make_model(parts.dataset, init)
        generator = torch.Generator().manual_seed(1)
        sync()
        start = time.perf_counter()
        train_model(model, parts, train, recipe, generator)
        sync()
        return (time.perf_counter() - start) / recipe.epochs

    def time_plain() -> float:
        model = runner.make_model(parts.dataset, init)
        generator = torch.Generator().manual_seed(1)
        sync()
        start = time.perf_counter()
        plain_loop(model, x, y, recipe.epochs, recipe.batch_size, lr, generator)
        sync()
        return (time.perf_counter() - start) / recipe.epochs

    time_framework(), time_plain()  # warm-up
    framework, plain = [], []
    for _ in range(args.repeats):
        framework.append(time_framework())
        plain.append(time_plain())
    f, p = statistics.median(framework), statistics.median(plain)
    print(f"device {runner.device}, {len(train)} samples, batch {recipe.batch_size}, {recipe.epochs} epochs, "
          f"{args.repeats} alternating repeats, torch threads {torch.get_num_threads()}")
    print(f"framework: {f * 1e3:.2f} ms/epoch (median; min {min(framework) * 1e3:.2f})")
    print(f"plain loop: {p * 1e3:.2f} ms/epoch (median; min {min(plain) * 1e3:.2f})")
    print(f"ratio framework/plain: {f / p:.3f} by medians, {min(framework) / min(plain):.3f} by minimums (target <= 1.10)")


if __name__ == "__main__":
    main()
