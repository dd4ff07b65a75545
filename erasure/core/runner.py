"""Runs an :class:`~erasure.core.config.Experiment`.

For each seed: load and split the data, train (or load from the cache) the
original and the gold model; then for each unlearner: reseed from (seed, label),
deep-copy the original, time ``unlearn``, run every evaluator and hand the job's
rows to the writers. A failing unlearner or evaluator becomes ``error`` rows and
the run goes on. Nothing here reads files or configs; components get objects.
"""
from __future__ import annotations

import copy
import hashlib
import json
import logging
import platform
import sys
import traceback
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch
from torch import Tensor, nn

from erasure import __version__
from erasure.core.cache import ModelCache, content_key
from erasure.core.config import Experiment
from erasure.core.errors import ConfigError
from erasure.core.factory import allowed_imports, build
from erasure.core.seeding import derive_seed, resolve_device, seed_everything
from erasure.core.timing import Timing, measure
from erasure.data.dataset import Dataset
from erasure.data.partitions import Partitions, make_partitions
from erasure.evaluators.base import Outcome
from erasure.results.files import atomic_write_text
from erasure.results.summary import format_wide, summarize, write_summary
from erasure.results.writers import CSVWriter, RunInfo, job_key, read_rows
from erasure.models.training import TrainingRecipe, train_model
from erasure.unlearners.base import UnlearningContext

log = logging.getLogger("erasure")


class RunError(RuntimeError):
    """The run cannot go on (data that does not load, a device that is missing); exit code 1."""


def versions() -> str:
    return f"erasure={__version__} torch={torch.__version__} python={platform.python_version()}"


def index_hash(index: Tensor) -> str:
    return hashlib.sha256(index.detach().cpu().numpy().tobytes()).hexdigest()[:16]


@dataclass
class SeedState:
    """Everything shared by the jobs of one seed."""

    seed: int
    partitions: Partitions
    original: nn.Module | None = None
    original_timing: Timing | None = None
    gold: nn.Module | None = None
    gold_timing: Timing | None = None
    shared_memo: dict = field(default_factory=dict)
    data_key: str = ""


@dataclass
class RunReport:
    results_path: Any
    rows_written: int
    errors: int
    skipped: int
    summary: list[dict[str, Any]]

    @property
    def exit_code(self) -> int:
        return 1 if self.errors else 0


class Runner:
    """Executes an experiment; see the module docstring."""

    def __init__(self, experiment: Experiment, *, use_cache: bool = True, overwrite: bool = False,
                 progress: bool = True, out: Callable[[str], None] = print):
        self.exp = experiment
        self.overwrite = overwrite
        self.progress = progress
        self.out = out
        self.cache = ModelCache(experiment.cache_dir, enabled=use_cache and experiment.cache_enabled)
        try:
            self.device = resolve_device(experiment.device)
        except (ValueError, RuntimeError) as exc:
            raise ConfigError(str(exc), "device", experiment.file) from exc
        self.run_id = uuid.uuid4().hex[:12]

    # ---------------------------------------------------------------- models
    def make_model(self, dataset: Dataset, init_seed: int | None = None) -> nn.Module:
        """The config's model for this data; initialised from ``init_seed`` without touching the global RNG."""
        provided = {**dataset.info, "input_shape": dataset.input_shape, "num_classes": dataset.num_classes}
        with allowed_imports(self.exp.imports):
            if init_seed is None:
                return build(self.exp.model_spec, "model", "model", **provided).to(self.device)
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(init_seed)
                return build(self.exp.model_spec, "model", "model", **provided).to(self.device)

    def train_cached(self, state: SeedState, tag: str, index: Tensor, seed: int,
                     recipe: TrainingRecipe | None = None, partitions: Partitions | None = None) -> tuple[nn.Module, Timing]:
        """A fresh model trained on ``index`` with ``recipe`` (default: the original's), through the cache.

        Initialisation and shuffling derive from ``seed`` alone, so the same
        (tag, data, index, seed, recipe) gives the same model in any run.
        """
        parts = partitions or state.partitions
        recipe = recipe or self.exp.recipe
        graph = {"graph": index_hash(parts.dataset.inputs.edge_index)} if parts.dataset.kind == "node_graph" else {}
        key = content_key(
            kind=tag, data=state.data_key, source=self.exp.config["data"]["source"], split=index_hash(index),
            model=self.exp.model_spec, training=recipe.as_dict(), seed=seed, version=__version__, **graph,
        )

        def train(model: nn.Module) -> Timing:
            with torch.random.fork_rng(devices=[]):
                generator = seed_everything(derive_seed(seed, "train"))
                with measure(self.device) as timing:
                    train_model(model, parts, index, recipe, generator)
            return timing

        model, timing, hit = self.cache.get_or_train(
            key, self.make_model(parts.dataset, derive_seed(seed, "model-init")), train,
            {"kind": tag, "seed": seed, "experiment": self.exp.name},
        )
        log.info("%s model (seed %d) %s (%.1fs to train)", tag, seed, "loaded from cache" if hit else "trained", timing.wall_seconds)
        return model, timing

    def train_references(self, state: SeedState) -> None:
        """The original (on train, over the data before the forget request) and gold (retrained on retain) models."""
        parts = state.partitions
        state.original, state.original_timing = self.train_cached(state, "original", parts["train"], state.seed,
                                                                  partitions=parts.before_forget())
        state.gold, state.gold_timing = self.train_cached(state, "gold", parts["retain"], state.seed)

    # ------------------------------------------------------------------ jobs
    @staticmethod
    def params_json(unlearner: Any) -> str:
        """An unlearner's parameters as canonical JSON (part of a job's identity)."""
        return json.dumps(unlearner.get_params(), sort_keys=True, default=str)

    def _row(self, seed: int, label: str, params: str, metric: str, value: Any = None, *, status: str = "ok",
             error: str = "", step: int | None = None, wall: float | None = None) -> dict[str, Any]:
        return {
            "run_id": self.run_id, "experiment": self.exp.name, "config_hash": self.exp.config_hash, "seed": seed,
            "unlearner": label, "parameters": params, "metric": metric, "value": value, "step": step,
            "status": status, "error": error, "wall_seconds": wall, "versions": versions(), "device": str(self.device),
        }

    def make_context(self, state: SeedState, label: str, seed: int | None = None,
                     gold_provider: Callable[[], tuple[nn.Module, Timing]] | None = None) -> UnlearningContext:
        """Reseed from (seed, label) and build the context an unlearner runs in (``seed`` and
        ``gold_provider`` default to the state's; other ones serve repeated unlearning)."""
        job_seed = derive_seed(state.seed if seed is None else seed, label)
        generator = seed_everything(job_seed)
        parts = state.partitions
        trajectory: list[tuple[int, str, float]] = []
        ctx = UnlearningContext(
            partitions=parts, device=self.device, num_classes=parts.dataset.num_classes, recipe=self.exp.recipe,
            seed=job_seed, generator=generator, rng=np.random.default_rng(job_seed),
            new_model=lambda: self.make_model(parts.dataset),
            gold_provider=gold_provider or (lambda: (state.gold, state.gold_timing)),
            log_fn=lambda step, metrics: trajectory.extend((step, k, float(v)) for k, v in metrics.items()),
        )
        ctx.extras["trajectory"] = trajectory
        return ctx

    def make_outcome(self, state: SeedState, label: str, unlearner: Any, model: nn.Module, ctx: UnlearningContext,
                     timing: Timing) -> Outcome:
        """What evaluators see of one finished ``unlearn`` call."""
        return Outcome(
            model=model, original=state.original, gold=state.gold,
            partitions=ctx.evaluation_partitions or state.partitions, reference_partitions=state.partitions,
            timing=timing, gold_timing=state.gold_timing, seed=state.seed, unlearner=label, device=self.device,
            context=ctx, shared_memo=state.shared_memo,
            train_reference=lambda tag, index, seed, recipe=None: self.train_cached(state, tag, index, seed, recipe)[0],
            unlearn_reference=lambda seed: self.unlearn_cached(state, label, unlearner, seed),
        )

    def unlearn_cached(self, state: SeedState, label: str, unlearner: Any, seed: int) -> nn.Module:
        """The same unlearner applied to an original trained with another ``seed``, through the cache.

        The original and gold for ``seed`` come from :meth:`train_cached` and the context is built
        as for a job of that seed, so per-example attacks (ForgettingQuality, ULiRA) get independent
        samples of "unlearned". Keyed by that original's ingredients, the forget set and the
        unlearner's class and parameters.
        """
        parts = state.partitions
        original, _ = self.train_cached(state, "original", parts["train"], seed, partitions=parts.before_forget())
        key = content_key(
            kind="unlearned", data=state.data_key, source=self.exp.config["data"]["source"],
            split=index_hash(parts["train"]), forget=index_hash(parts["forget"]), model=self.exp.model_spec,
            training=self.exp.recipe.as_dict(), seed=seed, version=__version__, unlearner=type(unlearner).__name__,
            parameters=self.params_json(unlearner),
        )

        def unlearn(model: nn.Module) -> Timing:
            gold = lambda: self.train_cached(state, "gold", parts["retain"], seed)  # noqa: E731
            with torch.random.fork_rng(devices=[]):
                ctx = self.make_context(state, label, seed, gold)
                with measure(self.device) as timing:
                    result = unlearner.unlearn(model, ctx)
            if result is not model:
                model.load_state_dict(result.state_dict())
            return timing

        model, _, _ = self.cache.get_or_train(key, copy.deepcopy(original), unlearn,
                                              {"kind": "unlearned", "seed": seed, "unlearner": label})
        return model

    def run_job(self, state: SeedState, entry: Any) -> list[dict[str, Any]]:
        """Unlearn and evaluate one (seed, unlearner); never raises for a component's failure."""
        params = self.params_json(entry.unlearner)
        ctx = self.make_context(state, entry.label)
        model = copy.deepcopy(state.original)
        try:
            with measure(self.device) as timing:
                model = entry.unlearner.unlearn(model, ctx)
            if not isinstance(model, nn.Module):
                raise TypeError(f"unlearn() returned {type(model).__name__}, expected an nn.Module")
        except Exception as exc:
            log.debug("unlearner %s failed", entry.label, exc_info=True)
            return [self._row(state.seed, entry.label, params, "unlearn", status="error", error=_describe(exc))]
        timing = ctx.timing_override or timing
        wall = timing.wall_seconds
        rows = [self._row(state.seed, entry.label, params, m, v, step=s, wall=wall) for s, m, v in ctx.extras["trajectory"]]
        outcome = self.make_outcome(state, entry.label, entry.unlearner, model, ctx, timing)
        for evaluator in sorted(self.exp.evaluators, key=lambda e: bool(e.requires)):
            name = type(evaluator).__name__
            missing = [m for m in evaluator.requires if m not in outcome.metrics]
            if missing:
                rows.append(self._row(state.seed, entry.label, params, name, status="error", wall=wall,
                                      error=f"needs metrics {', '.join(missing)}, which no listed evaluator produced"))
                continue
            try:
                metrics = self.evaluate(outcome, evaluator)
            except Exception as exc:
                log.debug("evaluator %s failed on %s", name, entry.label, exc_info=True)
                rows.append(self._row(state.seed, entry.label, params, name, status="error", error=_describe(exc), wall=wall))
                continue
            outcome.metrics.update(metrics)
            rows += [self._row(state.seed, entry.label, params, k, v, wall=wall) for k, v in metrics.items()]
        return rows

    def evaluate(self, outcome: Outcome, evaluator: Any) -> dict[str, float]:
        """Run one evaluator with its own seed (from the job's seed and its class name)."""
        with torch.random.fork_rng(devices=[]):
            seed_everything(derive_seed(outcome.context.seed, type(evaluator).__name__))
            metrics = evaluator.evaluate(outcome)
        return {str(k): float(v) for k, v in metrics.items()}

    # ------------------------------------------------------------------- run
    def prepare_seeds(self) -> list[SeedState]:
        """Load the data once and partition it for every seed (config errors surface before any training)."""
        try:
            dataset = self.exp.source.load()
        except ConfigError:
            raise
        except Exception as exc:
            raise RunError(f"data source {type(self.exp.source).__name__} failed to load: {_describe(exc)}") from exc
        data_key = dataset.fingerprint()
        states = []
        for seed in self.exp.seeds:
            try:
                parts = make_partitions(dataset, self.exp.split, self.exp.forget, seed, prepare=self.exp.source.prepare)
            except ConfigError as exc:
                raise exc.in_file(self.exp.file)
            states.append(SeedState(seed, parts.to(self.device), data_key=data_key))
        return states

    def run(self) -> RunReport:
        from tqdm import tqdm

        exp = self.exp
        exp.output_dir.mkdir(parents=True, exist_ok=True)
        info = RunInfo(exp.output_dir, exp.name, self.run_id, exp.config_hash, exp.resolved_config(), self.overwrite)
        writers = list(exp.writers)
        if not any(isinstance(w, CSVWriter) for w in writers):
            writers.insert(0, CSVWriter())
        csv_writer = next(w for w in writers if isinstance(w, CSVWriter))
        try:
            for w in writers:
                w.open(info)
        except ConfigError as exc:
            raise exc.in_file(exp.file)
        atomic_write_text(exp.output_dir / "config.resolved.json", json.dumps(info.config, indent=2))
        states = self.prepare_seeds()
        jobs = []
        skipped = 0
        for state in states:
            for entry in exp.unlearners:
                key = job_key({"seed": state.seed, "unlearner": entry.label, "parameters": self.params_json(entry.unlearner)})
                if key in csv_writer.finished:
                    skipped += 1
                else:
                    jobs.append((state, entry))
        if skipped:
            self.out(f"Skipping {skipped} finished job(s) found in {csv_writer.path} (--overwrite reruns them).")
        errors = written = 0
        bar = tqdm(total=len(jobs), desc=exp.name, unit="job", disable=None if self.progress else True, file=sys.stderr, leave=False)
        try:
            for state, entry in jobs:
                if state.original is None:
                    bar.set_postfix_str(f"seed {state.seed}: original and gold")
                    self.train_references(state)
                bar.set_postfix_str(f"seed {state.seed}: {entry.label}")
                rows = self.run_job(state, entry)
                errors += sum(r["status"] == "error" for r in rows)
                self._write(writers, rows)
                written += len(rows)
                bar.update()
        finally:
            bar.close()
            for w in writers:
                try:
                    w.close()
                except Exception as exc:  # a writer's cleanup must not hide the results
                    log.warning("writer %s failed to close: %s", type(w).__name__, exc)
        current = {job_key({"seed": s.seed, "unlearner": e.label, "parameters": self.params_json(e.unlearner)})
                   for s in states for e in exp.unlearners}
        rows = [r for r in read_rows(csv_writer.path) if r["config_hash"] == exp.config_hash and job_key(r) in current]
        records = summarize(rows)
        write_summary(records, exp.output_dir / "summary.csv")
        self.out(format_wide(records))
        self.out(f"\n95% intervals and paired differences to GoldModel: {exp.output_dir / 'summary.csv'}"
                 f" (python -m erasure.summarize {csv_writer.path})")
        self.out(f"\nResults: {csv_writer.path}  ({written} rows written, {errors} errors)")
        for r in rows:
            if r["status"] == "error" and r["run_id"] == self.run_id:
                self.out(f"  error: seed {r['seed']} {r['unlearner']} {r['metric']}: {r['error']}")
        return RunReport(csv_writer.path, written, errors, skipped, records)

    def _write(self, writers: list, rows: list[dict[str, Any]]) -> None:
        for w in list(writers):
            try:
                w.write(rows)
            except Exception as exc:
                if isinstance(w, CSVWriter):
                    raise
                log.warning("writer %s failed and is switched off: %s", type(w).__name__, exc)
                writers.remove(w)


def _describe(exc: BaseException) -> str:
    """``Type: message`` and the innermost frame, on one line."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" (at {frames[-1].filename.rsplit('/', 1)[-1]}:{frames[-1].lineno})" if frames else ""
    text = f"{type(exc).__name__}: {exc}{where}"
    return " ".join(text.split())[:500]
