"""Metrics tested as metrics: can each of a config's metrics tell models that saw D_f from models that did not?

    python -m erasure.meta_eval CONFIG [--pool-size N] [--relearn-steps K] [--set PATH=VALUE ...] [--out DIR]
    erasure meta-eval CONFIG ...

For every seed of the config, two pools of ``pool_size`` models are trained with the config's
recipe (through the model cache, so a rerun or another metric pays nothing): *with* D_f (on
train, like the original) and *without* (on the retain set, like gold), each with its own seed,
so none of them is the seed's own original or gold, the references the evaluators measure
against. Every evaluator of the config judges every pool model as if it were an unlearned model
(``Identity`` for the with-pool, ``GoldModel`` for the without-pool, for evaluators that rerun
the method), as is, after int8 quantization (the weights rounded as ``Robustness`` does) and after
relearning (``relearn_steps`` steps of the recipe's optimizer on ``relearn_samples`` forget
samples). Per metric, ``meta_eval.csv`` holds:

* ``auc``: P(m_with > m_without) over all pairs (ties ½), the Mann-Whitney AUC of OpenUnlearning's
  meta-evaluation (Dorna et al. 2025); ``faithfulness`` = max(auc, 1 − auc): 1 separates the pools
  perfectly, 0.5 not at all;
* ``robustness_quantized`` / ``robustness_relearned``: the AUC after the attack, in the direction
  the metric separated before (below 0.5 when the attack turns the metric round).

OpenUnlearning measures robustness as how much an attack moves the metric on unlearned models
relative to retain models; this module reports the AUC after the attack instead (how well the
metric still separates). The pools are retrainings, not unlearned models: a metric faithful here
can still be fooled by a method, but a metric that fails here cannot be trusted on any method.
With several deletion requests (``data.forget`` a list), the pools are built for the first one.
This module sits above execution (it drives a :class:`~erasure.execution.workspace.Workspace`).
"""
from __future__ import annotations

import argparse
import copy
import csv
import math
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

from erasure.core.errors import ConfigError
from erasure.core.factory import build, instantiate
from erasure.core.seeding import derive_seed
from erasure.evaluators.robustness import fake_quantize_
from erasure.results.files import atomic_write_text
from erasure.results.targets import lookup, targets_of

POOLS = ("with", "without")
ATTACKS = ("none", "quantized", "relearned")
META_EVAL_FILE = "meta_eval.csv"
COLUMNS = ["metric", "target", "auc", "faithfulness", "robustness_quantized", "robustness_relearned",
           "n_with", "n_without"]
FAITHFUL = 0.9  # the docs' table calls a metric faithful from this faithfulness on


def pool_auc(with_values: Sequence[float], without_values: Sequence[float]) -> float:
    """P(a > b) + ½ P(a = b) for a from ``with_values`` and b from ``without_values`` (the
    Mann-Whitney AUC, scikit-learn's ``roc_auc_score`` with the with-pool as positives); NaN
    when a pool has no finite value."""
    a = np.asarray([v for v in with_values if math.isfinite(v)], float)
    b = np.asarray([v for v in without_values if math.isfinite(v)], float)
    if len(a) == 0 or len(b) == 0:
        return math.nan
    diff = a[:, None] - b[None, :]
    return float((diff > 0).mean() + 0.5 * (diff == 0).mean())


def relearn(model: nn.Module, partitions: Any, index: torch.Tensor, recipe: Any, steps: int,
            generator: torch.Generator) -> nn.Module:
    """A copy of ``model`` fine-tuned for ``steps`` optimizer steps on the samples ``index`` (the
    recipe's optimizer, loss and batch size): the relearning attack."""
    model = copy.deepcopy(model)
    optimizer = instantiate(recipe.optimizer, "optimizer", model.parameters())
    loss_fn = instantiate(recipe.loss, "loss")
    done = 0
    model.train()
    while done < steps:
        for x, y in partitions.batches(index, recipe.batch_size, shuffle=True, generator=generator):
            optimizer.zero_grad(set_to_none=True)
            loss_fn(model(x), y).backward()
            optimizer.step()
            done += 1
            if done >= steps:
                break
    return model.eval()


def meta_evaluate(experiment: Any, pool_size: int = 4, relearn_steps: int = 10, relearn_samples: int = 32,
                  use_cache: bool = True, log: Callable[[str], None] = lambda _: None) -> list[dict[str, Any]]:
    """Rows (seed, pool, replica, attack, metric, value) of every evaluator of ``experiment`` on
    every pool model (see the module docstring)."""
    from erasure.execution.runner import Runner

    workspace = Runner(experiment, use_cache=use_cache, progress=False, out=log).workspace
    rows = []
    for seed in experiment.seeds:
        state = workspace.state(seed)
        workspace.train_references(state)
        before, after = state.partitions.before_forget(), state.requests[0].evaluation
        forget = after["forget"]
        order = torch.randperm(len(forget), generator=torch.Generator().manual_seed(derive_seed(seed, "meta-eval relearn")))
        relearn_index = forget[order[:relearn_samples].to(forget.device)]
        for pool in POOLS:
            unlearner = build({"class": "Identity" if pool == "with" else "GoldModel"}, "unlearner", "meta-eval")
            for i in range(pool_size):
                pool_seed = derive_seed(seed, "meta-eval", pool, str(i))
                if pool == "with":
                    model, timing = workspace.train_cached(state, "original", before["train"], pool_seed, partitions=before)
                else:
                    model, timing = workspace.train_cached(state, "gold", after["retain"], pool_seed, partitions=after)
                label = f"meta-eval {pool} D_f {i}"
                for attack in ATTACKS:
                    ctx = workspace.make_context(state, label)
                    judged = model
                    if attack == "quantized":
                        judged = fake_quantize_(copy.deepcopy(model))
                    elif attack == "relearned":
                        judged = relearn(model, after, relearn_index, ctx.recipe, relearn_steps, ctx.generator)
                    outcome = workspace.make_outcome(state, label, unlearner, judged, ctx, timing)
                    for evaluator in sorted(experiment.evaluators, key=lambda e: bool(e.requires)):
                        metrics = workspace.evaluate(outcome, evaluator)
                        outcome.metrics.update(metrics)
                    rows += [{"seed": seed, "pool": pool, "replica": i, "attack": attack, "metric": m, "value": v}
                             for m, v in outcome.metrics.items()]
                log(f"seed {seed}: pool {pool} D_f, model {i + 1}/{pool_size} judged")
    return rows


def faithfulness_table(rows: Sequence[dict[str, Any]], targets: dict | None = None) -> list[dict[str, Any]]:
    """One record per metric (columns :data:`COLUMNS`) from :func:`meta_evaluate`'s rows."""
    values: dict[tuple[str, str, str], list[float]] = defaultdict(list)
    for r in rows:
        values[(r["metric"], r["attack"], r["pool"])].append(float(r["value"]))
    out = []
    for metric in dict.fromkeys(r["metric"] for r in rows):
        auc = {a: pool_auc(values[(metric, a, "with")], values[(metric, a, "without")]) for a in ATTACKS}
        flip = auc["none"] < 0.5

        def oriented(a: str) -> float:
            return 1 - auc[a] if flip else auc[a]

        target = lookup(metric, targets or {})
        out.append({"metric": metric, "target": target.describe() if target else "", "auc": auc["none"],
                    "faithfulness": max(auc["none"], 1 - auc["none"]) if math.isfinite(auc["none"]) else math.nan,
                    "robustness_quantized": oriented("quantized"), "robustness_relearned": oriented("relearned"),
                    "n_with": sum(math.isfinite(v) for v in values[(metric, "none", "with")]),
                    "n_without": sum(math.isfinite(v) for v in values[(metric, "none", "without")])})
    return out


def write_table(records: Sequence[dict[str, Any]], path: str | Path) -> None:
    """``meta_eval.csv`` (numbers with 4 decimals), written atomically."""
    import io

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, COLUMNS)
    writer.writeheader()
    for r in records:
        writer.writerow({k: f"{v:.4f}" if isinstance(v, float) else v for k, v in r.items()})
    atomic_write_text(path, buffer.getvalue())


def format_table(records: Sequence[dict[str, Any]]) -> str:
    """A plain-text table: metric, faithfulness and the two robustness AUCs."""
    lines = [f"{'metric':40s} {'target':24s} {'faithful':>8s} {'quantized':>9s} {'relearned':>9s}"]
    for r in records:
        lines.append(f"{r['metric'][:40]:40s} {r['target'][:24]:24s} {r['faithfulness']:8.3f} "
                     f"{r['robustness_quantized']:9.3f} {r['robustness_relearned']:9.3f}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m erasure.meta_eval", description=__doc__.split("\n\n")[0])
    parser.add_argument("config", help="a .jsonc experiment config (its data, model, recipe, seeds and evaluators)")
    parser.add_argument("--pool-size", type=int, default=4, help="models per pool and seed (default 4)")
    parser.add_argument("--relearn-steps", type=int, default=10, help="optimizer steps of the relearning attack (default 10)")
    parser.add_argument("--relearn-samples", type=int, default=32, help="forget samples it relearns on (default 32)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="PATH=VALUE",
                        help="override a config key, e.g. --set seeds=[0,1]")
    parser.add_argument("--out", type=Path, help=f"directory of {META_EVAL_FILE} (default: the config's output.dir)")
    parser.add_argument("--no-cache", action="store_true", help="neither read nor write the model cache")
    args = parser.parse_args(argv)
    if min(args.pool_size, args.relearn_steps, args.relearn_samples) < 1:
        print("error: --pool-size, --relearn-steps and --relearn-samples must be at least 1", file=sys.stderr)
        return 2
    from erasure.execution.experiment import load_experiment

    try:
        experiment = load_experiment(args.config, args.overrides)
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return 2
    try:
        rows = meta_evaluate(experiment, args.pool_size, args.relearn_steps, args.relearn_samples,
                             use_cache=not args.no_cache, log=lambda line: print(line, file=sys.stderr))
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # an evaluator or a training failed: say which, no traceback
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    records = faithfulness_table(rows, targets_of(experiment.evaluators))
    out = args.out or experiment.output_dir
    out.mkdir(parents=True, exist_ok=True)
    write_table(records, out / META_EVAL_FILE)
    print(format_table(records))
    print(f"\n{len(experiment.seeds)} seed(s) x {args.pool_size} models per pool; faithfulness = max(AUC, 1 − AUC) "
          f"of the metric between the pools; robustness: the AUC after int8 quantization / after relearning.\n"
          f"Table: {out / META_EVAL_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
