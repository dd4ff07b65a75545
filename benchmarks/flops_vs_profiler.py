"""The Flops evaluator's count (torch's FlopCounterMode) beside ERASURE's (the FLOPs torch.profiler
attaches to its events), for one unlearn call on the digits proof of concept.

    python benchmarks/flops_vs_profiler.py
    python benchmarks/flops_vs_profiler.py \\
        --set 'model={"class":"CNN","parameters":{"channels":[8,16],"hidden":32}}' --set training.epochs=2
"""
from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from erasure.execution.experiment import load_experiment  # noqa: E402
from erasure.core.factory import build  # noqa: E402
from erasure.evaluators.flops import count_flops  # noqa: E402
from erasure.execution.runner import Runner  # noqa: E402


def profiler_flops(fn) -> dict[str, int]:
    """FLOPs per operator as torch.profiler reports them (what ERASURE's TorchFlops sums)."""
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], with_flops=True) as prof:
        fn()
    totals: dict[str, int] = {}
    for event in prof.events():
        if event.flops:
            totals[event.name] = totals.get(event.name, 0) + event.flops
    return totals


def main(argv: list[str] | None = None) -> int:
    torch.set_num_threads(1)  # as every job runs (execution.cpus_per_job's default)
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default="configs/proof_of_concept.jsonc")
    p.add_argument("--set", action="append", default=[], help="config override, as in main.py")
    args = p.parse_args(argv)
    exp = load_experiment(args.config, overrides=["seeds=[0]", *args.set])
    workspace = Runner(exp, progress=False, out=lambda s: None).workspace
    state = workspace.prepare_seeds()[0]
    workspace.train_references(state)
    for spec in ({"class": "FineTuning", "parameters": {"epochs": 1}}, {"class": "NegGrad", "parameters": {"epochs": 5, "lr": 0.002}}):
        unlearner = build(spec, "unlearner", "u")

        def run() -> torch.nn.Module:
            return unlearner.unlearn(copy.deepcopy(state.original), workspace.make_context(state, spec["class"]))

        counted, _ = count_flops(run)
        profiled = profiler_flops(run)
        print(f"{spec['class']}: FlopCounterMode {counted:,}; torch.profiler {sum(profiled.values()):,} {profiled}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
