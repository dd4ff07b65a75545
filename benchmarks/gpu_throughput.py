"""ResNet-18 training throughput (images/s): erasure's ``train_model`` versus a plain PyTorch loop.

Synthetic CIFAR-shaped data (N × 3 × 32 × 32, 10 classes) lives on the device;
both paths train a ResNet-18 (CIFAR stem) with the same batch size, SGD
(lr 0.1, momentum 0.9, weight decay 5e-4), shuffling and, with ``--amp``,
bfloat16 autocast (``training.amp``). They alternate (framework/plain, then
plain/framework, ...) for ``--repeats`` rounds after a warm-up, and the median
images/s of each is reported with their ratio.

GPU (defaults):    python benchmarks/gpu_throughput.py --amp both
CPU smoke test:    python benchmarks/gpu_throughput.py --device cpu --n 256 --batch-size 64 --width 8 --repeats 2
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from erasure.core.seeding import resolve_device  # noqa: E402
from erasure.data.dataset import Dataset  # noqa: E402
from erasure.data.partitions import Partitions  # noqa: E402
from erasure.models.resnet import ResNet18  # noqa: E402
from erasure.models.training import TrainingRecipe, autocast, train_model  # noqa: E402

SGD = {"class": "SGD", "parameters": {"lr": 0.1, "momentum": 0.9, "weight_decay": 5e-4}}


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def fresh_model(width: int, device: torch.device, seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return ResNet18((3, 32, 32), 10, width=width).to(device)


def framework(parts: Partitions, args: argparse.Namespace, amp: bool, device: torch.device, seed: int) -> float:
    """Seconds for ``args.epochs`` epochs of erasure's trainer."""
    model = fresh_model(args.width, device, seed)
    recipe = TrainingRecipe(epochs=args.epochs, batch_size=args.batch_size, optimizer=SGD, amp=amp)
    synchronize(device)
    start = time.perf_counter()
    train_model(model, parts, "train", recipe, torch.Generator().manual_seed(seed))
    synchronize(device)
    return time.perf_counter() - start


def plain(x: torch.Tensor, y: torch.Tensor, args: argparse.Namespace, amp: bool, device: torch.device, seed: int) -> float:
    """Seconds for the same epochs in a hand-written loop."""
    model = fresh_model(args.width, device, seed)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    generator = torch.Generator().manual_seed(seed)
    synchronize(device)
    start = time.perf_counter()
    model.train()
    for _ in range(args.epochs):
        order = torch.randperm(len(x), generator=generator).to(device)
        for chunk in order.split(args.batch_size):
            optimizer.zero_grad(set_to_none=True)
            with autocast(device, amp):
                loss = F.cross_entropy(model(x[chunk]), y[chunk])
            loss.backward()
            optimizer.step()
    synchronize(device)
    return time.perf_counter() - start


def measure(args: argparse.Namespace, amp: bool, device: torch.device) -> dict:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(args.n, 3, 32, 32, generator=g).to(device)
    y = torch.randint(0, 10, (args.n,), generator=g).to(device)
    parts = Partitions(Dataset(x, y, 10, name="synthetic-cifar"), {"train": torch.arange(args.n, device=device)})
    for _ in range(args.warmup):
        framework(parts, args, amp, device, 0)
        plain(x, y, args, amp, device, 0)
    times: dict[str, list[float]] = {"framework": [], "plain": []}
    for r in range(args.repeats):
        order = ("framework", "plain") if r % 2 == 0 else ("plain", "framework")
        for which in order:
            seconds = framework(parts, args, amp, device, r) if which == "framework" else plain(x, y, args, amp, device, r)
            times[which].append(seconds)
    images = args.n * args.epochs
    result = {k: images / statistics.median(v) for k, v in times.items()}
    return {"amp": amp, "framework_images_per_s": result["framework"], "plain_images_per_s": result["plain"],
            "framework_over_plain": result["framework"] / result["plain"],
            "seconds": times}


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto", help="auto, cuda, cuda:1, cpu, mps")
    parser.add_argument("--n", type=int, default=20000, help="synthetic training images")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=1, help="epochs per timed run")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per method (alternating)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs per method first")
    parser.add_argument("--width", type=int, default=64, help="ResNet-18 base width (64 is the standard)")
    parser.add_argument("--amp", choices=["off", "on", "both"], default="off", help="bfloat16 autocast (CUDA only)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    modes = {"off": [False], "on": [True], "both": [False, True]}[args.amp]
    results = []
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else str(device)
    print(f"device {name}, torch {torch.__version__}, n={args.n}, batch {args.batch_size}, width {args.width}, "
          f"{args.epochs} epoch(s) x {args.repeats} repeats")
    for amp in modes:
        if amp and device.type != "cuda":
            print("amp: bf16 autocast applies on CUDA only; skipped")
            continue
        r = measure(args, amp, device)
        results.append(r)
        print(f"amp={'bf16' if amp else 'off':4}  framework {r['framework_images_per_s']:9.1f} img/s   "
              f"plain {r['plain_images_per_s']:9.1f} img/s   ratio {r['framework_over_plain']:.3f}")
    if args.json:
        args.json.write_text(json.dumps({"device": name, "args": {k: str(v) for k, v in vars(args).items()},
                                         "results": results}, indent=2))
    return results


if __name__ == "__main__":
    main()
