"""Training throughput (images/s): erasure's ``train_model`` versus a plain PyTorch loop, and the
fast recipe's time per model.

Synthetic CIFAR-shaped data (N × 3 × 32 × 32, 10 classes) lives on the device. Cases (``--cases``):

* ``resnet18``: a ResNet-18 (CIFAR stem), the same batch size, SGD (lr 0.1, momentum 0.9, weight
  decay 5e-4) and shuffling in both paths;
* ``augmented``: the same with the standard CIFAR augmentation, random crop (4-pixel padding) and
  horizontal flip per batch: ``training.augment`` in the framework, a hand-written batched
  crop and flip in the plain loop; on CUDA both also train in channels-last (``training.channels_last``);
* ``fast``: the fast recipe for reference models (FastResNet, ``--fast-epochs`` epochs at batch 512,
  crop with reflect padding 2 + flip, label smoothing, one-cycle), seconds per trained model.

``--amp`` adds bfloat16 autocast (``training.amp``, CUDA only). The two paths alternate
(framework/plain, then plain/framework, ...) for ``--repeats`` rounds after a warm-up, and the
median images/s of each is reported with their ratio.

GPU (defaults):    python benchmarks/gpu_throughput.py --amp both --json gpu_throughput.json
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
from erasure.models.fast_resnet import FastResNet  # noqa: E402
from erasure.models.resnet import ResNet18  # noqa: E402
from erasure.models.training import TrainingRecipe, autocast, train_model  # noqa: E402

SGD = {"class": "SGD", "parameters": {"lr": 0.1, "momentum": 0.9, "weight_decay": 5e-4}}
CROP_FLIP = [{"class": "RandomCrop", "parameters": {"size": 32, "padding": 4}}, {"class": "RandomHorizontalFlip"}]


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def fresh_model(width: int, device: torch.device, seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return ResNet18((3, 32, 32), 10, width=width).to(device)


def framework(parts: Partitions, args: argparse.Namespace, amp: bool, device: torch.device, seed: int,
              augment: bool = False) -> float:
    """Seconds for ``args.epochs`` epochs of erasure's trainer."""
    model = fresh_model(args.width, device, seed)
    recipe = TrainingRecipe(epochs=args.epochs, batch_size=args.batch_size, optimizer=SGD, amp=amp,
                            augment=CROP_FLIP if augment else [], channels_last=augment)
    synchronize(device)
    start = time.perf_counter()
    train_model(model, parts, "train", recipe, torch.Generator().manual_seed(seed))
    synchronize(device)
    return time.perf_counter() - start


def crop_flip(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random 32 × 32 crops of the zero-padded (4 pixels) batch and random horizontal flips, by hand."""
    n = len(x)
    padded = F.pad(x, (4, 4, 4, 4))
    dy, dx = (torch.randint(0, 9, (n,), generator=generator).to(x.device) for _ in range(2))
    base = torch.arange(32, device=x.device)
    rows, cols = (dy[:, None] + base)[:, None, :, None], (dx[:, None] + base)[:, None, None, :]
    out = padded[torch.arange(n, device=x.device)[:, None, None, None], torch.arange(x.shape[1], device=x.device)[None, :, None, None], rows, cols]
    flip = (torch.rand(n, generator=generator) < 0.5).to(x.device)[:, None, None, None]
    return torch.where(flip, out.flip(-1), out)


def plain(x: torch.Tensor, y: torch.Tensor, args: argparse.Namespace, amp: bool, device: torch.device, seed: int,
          augment: bool = False) -> float:
    """Seconds for the same epochs in a hand-written loop."""
    model = fresh_model(args.width, device, seed)
    channels_last = augment and device.type == "cuda"
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    generator = torch.Generator().manual_seed(seed)
    synchronize(device)
    start = time.perf_counter()
    model.train()
    for _ in range(args.epochs):
        order = torch.randperm(len(x), generator=generator).to(device)
        for chunk in order.split(args.batch_size):
            inputs = crop_flip(x[chunk], generator) if augment else x[chunk]
            if channels_last:
                inputs = inputs.contiguous(memory_format=torch.channels_last)
            optimizer.zero_grad(set_to_none=True)
            with autocast(device, amp):
                loss = F.cross_entropy(model(inputs), y[chunk])
            loss.backward()
            optimizer.step()
    synchronize(device)
    return time.perf_counter() - start


def synthetic(n: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, Partitions]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 3, 32, 32, generator=g).to(device)
    y = torch.randint(0, 10, (n,), generator=g).to(device)
    return x, y, Partitions(Dataset(x, y, 10, name="synthetic-cifar"), {"train": torch.arange(n, device=device)})


def measure(args: argparse.Namespace, amp: bool, device: torch.device, augment: bool = False) -> dict:
    x, y, parts = synthetic(args.n, device)
    for _ in range(args.warmup):
        framework(parts, args, amp, device, 0, augment)
        plain(x, y, args, amp, device, 0, augment)
    times: dict[str, list[float]] = {"framework": [], "plain": []}
    for r in range(args.repeats):
        order = ("framework", "plain") if r % 2 == 0 else ("plain", "framework")
        for which in order:
            if which == "framework":
                seconds = framework(parts, args, amp, device, r, augment)
            else:
                seconds = plain(x, y, args, amp, device, r, augment)
            times[which].append(seconds)
    images = args.n * args.epochs
    result = {k: images / statistics.median(v) for k, v in times.items()}
    return {"case": "augmented" if augment else "resnet18", "amp": amp,
            "framework_images_per_s": result["framework"], "plain_images_per_s": result["plain"],
            "framework_over_plain": result["framework"] / result["plain"], "seconds": times}


def fast_recipe(epochs: int, amp: bool, device: torch.device) -> TrainingRecipe:
    """configs/examples/cifar10_fast_gold.jsonc's recipe."""
    return TrainingRecipe(
        epochs=epochs, batch_size=512, amp=amp, channels_last=True,
        augment=[{"class": "RandomCrop", "parameters": {"size": 32, "padding": 2, "padding_mode": "reflect"}},
                 {"class": "RandomHorizontalFlip"}],
        optimizer={"class": "SGD", "parameters": {"lr": 0.2, "momentum": 0.9, "nesterov": True, "weight_decay": 5e-4}},
        loss={"class": "CrossEntropyLoss", "parameters": {"label_smoothing": 0.2}},
        scheduler={"class": "OneCycleLR", "parameters": {"max_lr": 0.2, "total_steps": epochs, "pct_start": 0.25}})


def measure_fast(args: argparse.Namespace, amp: bool, device: torch.device) -> dict:
    """Seconds per model of the fast recipe (FastResNet, widths scaled by ``--width`` / 64)."""
    _, _, parts = synthetic(args.n, device)
    scale = args.width / 64
    widths, stem = [max(1, round(64 * scale)), max(1, round(256 * scale)), max(1, round(256 * scale))], max(1, round(48 * scale))
    recipe = fast_recipe(args.fast_epochs, amp, device)
    seconds = []
    for r in range(args.warmup + args.repeats):
        torch.manual_seed(r)
        model = FastResNet((3, 32, 32), 10, widths=widths, stem=stem).to(device)
        synchronize(device)
        start = time.perf_counter()
        train_model(model, parts, "train", recipe, torch.Generator().manual_seed(r))
        synchronize(device)
        if r >= args.warmup:
            seconds.append(time.perf_counter() - start)
    per_model = statistics.median(seconds)
    return {"case": "fast", "amp": amp, "seconds_per_model": per_model, "epochs": args.fast_epochs,
            "images_per_s": args.n * args.fast_epochs / per_model, "seconds": seconds,
            "parameters": sum(p.numel() for p in model.parameters())}


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
    parser.add_argument("--cases", default="resnet18,augmented,fast",
                        help="comma-separated: resnet18, augmented (crop + flip, channels-last on CUDA), fast")
    parser.add_argument("--fast-epochs", type=int, default=10, help="epochs per model of the fast recipe")
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
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    for amp in modes:
        if amp and device.type != "cuda":
            print("amp: bf16 autocast applies on CUDA only; skipped")
            continue
        for case in cases:
            if case == "fast":
                r = measure_fast(args, amp, device)
                print(f"fast     amp={'bf16' if amp else 'off':4}  {r['seconds_per_model']:8.2f} s/model "
                      f"({r['epochs']} epochs of {args.n} images, {r['images_per_s']:9.1f} img/s, {r['parameters']} parameters)")
            else:
                r = measure(args, amp, device, augment=case == "augmented")
                print(f"{case:9} amp={'bf16' if amp else 'off':4}  framework {r['framework_images_per_s']:9.1f} img/s   "
                      f"plain {r['plain_images_per_s']:9.1f} img/s   ratio {r['framework_over_plain']:.3f}")
            results.append(r)
    if args.json:
        args.json.write_text(json.dumps({"device": name, "args": {k: str(v) for k, v in vars(args).items()},
                                         "results": results}, indent=2))
    return results


if __name__ == "__main__":
    main()
