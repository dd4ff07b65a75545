"""Each evaluator's time relative to the unlearning it judges, on the digits proof of concept.

    python benchmarks/evaluation_cost.py [--config configs/proof_of_concept.jsonc]
        [--unlearner "NegGrad lr=2e-3"] [--num-models 16] [--repeats 3]

Trains the original and gold once (in a fresh temporary model cache), unlearns with the chosen
unlearner, then times ``evaluate`` of every evaluator on a fresh Outcome (so each pays its own
forward passes; nothing memoised by another evaluator). ForgettingQuality is timed
cold (its 3N replica models trained into the empty cache) and warm (replicas loaded from the
cache: what a rerun costs), and ShadowMIA likewise with its shadow models; ULiRA then runs on
the replicas ForgettingQuality left in the cache, as it does in a job that lists both. Prints
one line per evaluator: seconds and seconds / unlearn seconds.
"""
from __future__ import annotations

import argparse
import copy
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from erasure.execution.experiment import load_experiment  # noqa: E402
from erasure.core.factory import build  # noqa: E402
from erasure.execution.runner import Runner  # noqa: E402
from erasure.core.seeding import seed_everything  # noqa: E402

EVALUATORS = ["Accuracy", "RunTime", "UMIA", "EntropyMIA", "MIAEfficacy", "GoldDistance", "ZRF", "RelearnTime",
              "Scores", "UMIA attack=mlp", "SklearnMetric", "ModelDistance", "Flops", "ShadowMIA", "ForgettingQuality",
              "ULiRA"]
SPECS = {"UMIA attack=mlp": {"class": "UMIA", "parameters": {"attack": "mlp"}},
         "SklearnMetric": {"class": "SklearnMetric", "parameters": {"metric": "f1_score", "parameters": {"average": "macro"}}}}


def main(argv: list[str] | None = None) -> int:
    torch.set_num_threads(1)  # as every job runs (execution.cpus_per_job's default)
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default="configs/proof_of_concept.jsonc")
    p.add_argument("--unlearner", default="NegGrad lr=2e-3", help="label of the unlearner to judge")
    p.add_argument("--num-models", type=int, default=16)
    p.add_argument("--repeats", type=int, default=3, help="timed repeats of the cheap evaluators (median)")
    args = p.parse_args(argv)
    cache = tempfile.mkdtemp(prefix="erasure-evalcost-")
    exp = load_experiment(args.config, overrides=["seeds=[0]", f'cache.dir="{cache}"'])
    runner = Runner(exp, progress=False, out=lambda s: None).workspace
    state = runner.prepare_seeds()[0]
    runner.train_references(state)
    entry = next(e for e in exp.unlearners if e.label == args.unlearner)

    ctx = runner.make_context(state, entry.label)
    t0 = time.perf_counter()
    model = entry.unlearner.unlearn(copy.deepcopy(state.original), ctx)
    unlearn_s = time.perf_counter() - t0
    gold_timing = state.models["gold"][1]
    timing = copy.copy(gold_timing)

    def outcome(metrics: dict):
        o = runner.make_outcome(state, entry.label, entry.unlearner, model, ctx, timing)
        o.shared_memo = {}  # nothing memoised by an earlier evaluator
        o.metrics.update(metrics)
        return o

    def spec(name: str) -> dict:
        params = {"num_models": args.num_models} if name in ("ForgettingQuality", "ULiRA") else {}
        return SPECS.get(name, {"class": name, "parameters": params})

    metrics: dict = {}
    print(f"{exp.name}: {entry.label} unlearns in {unlearn_s:.4f} s; gold retrains in {gold_timing.wall_seconds:.3f} s; "
          f"torch threads {torch.get_num_threads()}")
    gold_s = gold_timing.wall_seconds
    print(f"{'evaluator':<34}{'seconds':>10}{'x unlearn':>12}{'x gold':>10}")
    for name in EVALUATORS:
        evaluator = build(spec(name), "evaluator", name)
        runs = {"ForgettingQuality": ["cold", "warm"], "ULiRA": ["warm"], "ShadowMIA": ["cold", "warm"]}.get(
            name, ["median"] * args.repeats)
        times: dict[str, list[float]] = {}
        for kind in runs:
            o = outcome(metrics)
            seed_everything(1)
            t0 = time.perf_counter()
            result = evaluator.evaluate(o)
            times.setdefault(kind, []).append(time.perf_counter() - t0)
        metrics.update(result)
        for kind, values in times.items():
            label = name if kind == "median" else f"{name} ({kind}" + (f", N={args.num_models})" if name != "ShadowMIA" else ")")
            s = statistics.median(values)
            print(f"{label:<34}{s:>10.4f}{s / unlearn_s:>12.1f}{s / gold_s:>10.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
