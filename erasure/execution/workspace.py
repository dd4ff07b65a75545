"""One process's view of an experiment: its data, the reference models of each seed, and the jobs.

A :class:`Workspace` runs tasks (:mod:`erasure.execution.jobs`) and returns their rows; it never
writes results. Every executor runs the same code: the serial executor has one workspace in the
driver's process, the local pool and Ray one per worker process, each built from the same config.

Reference models (the original and gold of each seed, the shadow and replica models of the
per-example attacks) are trained once per content key, shared through the model cache (whose
file lock makes concurrent workers wait for one writer) and kept in memory once loaded. Gold is
trained only when something reads it.
"""
from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import logging
import platform
import time
import traceback
import weakref
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch
from torch import Tensor, nn

from erasure import __version__
from erasure.core.cache import ModelCache, content_key, index_hash
from erasure.execution.experiment import Experiment, UnlearnerEntry
from erasure.core.errors import ConfigError
from erasure.core.factory import allowed_imports, build
from erasure.core.seeding import derive_seed, seed_everything
from erasure.core.timing import Timing, measure
from erasure.data.dataset import Dataset
from erasure.data.partitions import Partitions, Request, make_request_partitions
from erasure.evaluators.base import Outcome
from erasure.execution.jobs import JobResult, ReferenceTask, Task, UnlearnTask
from erasure.execution.original_probe import WorkspaceProbe
from erasure.execution.safety import (
    SharedTensors, data_tensors, interrupted_by_user, model_tensors, nonfinite_parameters, partitions_for_job,
    undefined_reason, version_of,
)
from erasure.execution.task_check import check_task
from erasure.models.schemes.base import fit_model, prepare_model, uses_candidates
from erasure.models.training import TrainingRecipe
from erasure.results.directory import job_slug
from erasure.unlearners.base import UnlearningContext

log = logging.getLogger("erasure")


class RunError(RuntimeError):
    """The run cannot go on (data that does not load, a device that is missing); exit code 1."""


def versions() -> str:
    return f"erasure={__version__} torch={torch.__version__} python={platform.python_version()}"


def params_json(unlearner: Any) -> str:
    """An unlearner's parameters as canonical JSON (part of a job's identity)."""
    return json.dumps(unlearner.get_params(), sort_keys=True, default=str)


def gold_name(request: int) -> str:
    """The reference model retrained after deletion request ``request``: "gold", "gold@1", ..."""
    return "gold" if request == 0 else f"gold@{request}"


def scheme_tag(config: TrainingRecipe, recipe: TrainingRecipe | None) -> str:
    """"" for the config's recipe; for a method's own training scheme, a suffix naming it
    (" [SISATraining 1a2b3c4d]") that keeps its reference models apart."""
    if recipe is None or recipe.scheme == config.scheme:
        return ""
    digest = hashlib.sha256(json.dumps(recipe.scheme, sort_keys=True, default=str).encode()).hexdigest()[:8]
    return f" [{recipe.scheme['class']} {digest}]"


@dataclass
class SeedState:
    """Everything shared by the jobs of one seed in this process: the partitions after each
    deletion request (one, unless ``data.forget`` lists several) and the reference models."""

    seed: int
    requests: list[Request]
    data_key: str = ""
    models: dict[str, tuple[nn.Module, Timing]] = field(default_factory=dict)  # "original", "gold", "gold@1"...
    memos: dict[int, dict] = field(default_factory=dict)  # per request: outputs of the original and gold
    guards: dict[str, SharedTensors] = field(default_factory=dict)  # "the dataset" and each model: changes
    models_before_job: set[str] = field(default_factory=set)  # what the running job found in ``models``

    @property
    def partitions(self) -> Partitions:
        """The partitions of the first (usually the only) request, as evaluators see them."""
        return self.requests[0].evaluation

    @property
    def original(self) -> nn.Module | None:
        return self.models.get("original", (None, None))[0]

    @property
    def gold(self) -> nn.Module | None:
        return self.models.get("gold", (None, None))[0]

    def memo(self, request: int) -> dict:
        return self.memos.setdefault(request, {})

    def watch_data(self) -> None:
        """Start watching the data and partitions that this seed's jobs share."""
        parts = [p for r in self.requests for p in (r.unlearning, r.evaluation)]
        self.guards["the dataset"] = SharedTensors(lambda: data_tensors(parts))

    def watch_model(self, kind: str) -> None:
        model = self.models[kind][0]
        self.guards[kind] = SharedTensors(lambda: model_tensors(model), exact=True)


class Workspace:
    """Builds and runs the tasks of one experiment in this process (see the module docstring)."""

    def __init__(self, experiment: Experiment, *, device: torch.device, cache: ModelCache, run_id: str):
        self.exp = experiment
        self.device = device
        self.cache = cache
        self.run_id = run_id
        self.entries: dict[str, UnlearnerEntry] = {e.label: e for e in experiment.unlearners}
        self.states: dict[int, SeedState] = {}
        self.events: list[str] = []  # log lines about reference models, drained by each task
        self._dataset: Dataset | None = None
        self._fingerprint = ""
        self._on_device: dict[int, Any] = {}  # each loaded tensor's copy on the device, shared by seeds and requests
        self._kept: dict[int, dict[str, tuple[nn.Module, Timing]]] = {}  # models of seeds to rebuild
        self._hashes: dict[int, tuple[Any, int, str]] = {}  # index_hash of shared tensors, by id

    # ------------------------------------------------------------------ data
    def dataset(self) -> Dataset:
        if self._dataset is None:
            try:
                self._dataset = self.exp.source.load()
            except ConfigError:
                raise
            except Exception as exc:
                raise RunError(f"data source {type(self.exp.source).__name__} failed to load: {describe(exc)}") from exc
            self._fingerprint = self._dataset.fingerprint()
            self._on_device = {}
        return self._dataset

    def state(self, seed: int) -> SeedState:
        """The partitions of ``seed`` (built on first use); reference models are added as they are trained."""
        if seed not in self.states:
            dataset = self.dataset()
            data_key = self._fingerprint
            probing = SeedState(seed, [], data_key=data_key)  # what the original needs before the forget set exists
            try:
                check_task(self.exp, dataset)
                requests = make_request_partitions(
                    dataset, self.exp.split, self.exp.requests, seed, prepare=self.exp.source.prepare,
                    named=self.exp.named_partitions, holdout=self.exp.holdout,
                    original=lambda data, train: WorkspaceProbe(self, probing, data.to(self.device), train.to(self.device)))
            except ConfigError as exc:
                raise exc.in_file(self.exp.file_for(exc.path))
            moved = [Request(r.unlearning.to(self.device, self._on_device), r.evaluation.to(self.device, self._on_device))
                     for r in requests]
            if len(requests) == 1:
                moved = [Request(moved[0].evaluation, moved[0].evaluation)]
            modified = requests[-1].evaluation.extras.get("modified")  # e.g. a backdoor: models train on other data
            state = SeedState(seed, moved, data_key=content_key(data=data_key, modified=modified) if modified else data_key)
            state.watch_data()
            state.models.update(self._kept.pop(seed, {}))
            for kind in state.models:
                state.watch_model(kind)
            self.states[seed] = state
        return self.states[seed]

    def prepare_seeds(self) -> list[SeedState]:
        """Load the data and partition it for every seed (config errors surface before any training)."""
        return [self.state(seed) for seed in self.exp.seeds]

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

    def hash_of(self, t: Tensor) -> str:
        """:func:`index_hash` of ``t``, computed once while ``t`` lives unchanged (per-example
        attacks key many models by one partition, or by the edges of one graph)."""
        ref, version, digest = self._hashes.get(id(t), (lambda: None, -1, ""))
        if ref() is not t or version != version_of(t) or version == -1:
            digest = index_hash(t)
            if len(self._hashes) > 1000:  # forget the tensors that are gone
                self._hashes = {k: v for k, v in self._hashes.items() if v[0]() is not None}
            self._hashes[id(t)] = (weakref.ref(t), version_of(t), digest)
        return digest

    def train_cached(self, state: SeedState, tag: str, index: Tensor, seed: int, recipe: TrainingRecipe | None = None,
                     partitions: Partitions | None = None, name: str | None = None) -> tuple[nn.Module, Timing]:
        """A fresh model trained on ``index`` with ``recipe`` (default: the original's), through the cache.

        Initialisation and shuffling derive from ``seed`` alone, so the same
        (tag, data, index, seed, recipe) gives the same model in any run and any process.
        """
        parts = partitions or state.partitions
        recipe = recipe or self.exp.recipe
        graph = {"graph": self.hash_of(parts.dataset.inputs.edge_index)} if parts.dataset.kind == "node_graph" else {}
        candidates, scheme = None, {}
        if uses_candidates(recipe):  # what the run may delete: the scheme logs for it
            if not state.requests:
                raise ConfigError("a forget set chosen with the original model cannot be combined with a training "
                                  "scheme that logs for the forget set (it does not exist yet)", "data.forget")
            candidates = state.requests[-1].evaluation["forget"]
            scheme = {"candidates": self.hash_of(candidates)}
        key = content_key(
            kind=tag, data=state.data_key, source=self.exp.source_spec, split=self.hash_of(index),
            model=self.exp.model_spec, training=recipe.as_dict(), seed=seed, version=__version__, **graph, **scheme,
        )

        def train(model: nn.Module) -> Timing:  # also when first asked for inside a component's no_grad block
            self._check_data(state, f"training the {name or tag} model")
            with torch.random.fork_rng(devices=[]), torch.enable_grad():
                generator = seed_everything(derive_seed(seed, "train"))
                with measure(self.device) as timing:
                    fit_model(model, parts, index, recipe, generator, candidates)
            return timing

        fresh = prepare_model(recipe, lambda *names: self.make_model(parts.dataset, derive_seed(seed, "model-init", *names)),
                              parts, seed)
        model, timing, hit = self.cache.get_or_train(
            key, fresh, train,
            {"kind": tag, "seed": seed, "experiment": self.exp.name},
        )
        how = f"loaded from the cache (its training took {timing.wall_seconds:.1f} s)" if hit else \
            f"trained in {timing.wall_seconds:.1f} s"
        event = f"seed {state.seed}: {name or tag} model (seed {seed}) {how}"
        log.info(event)
        if not hit:
            self.events.append(event)
        return model, timing

    def reference(self, state: SeedState, kind: str, recipe: TrainingRecipe | None = None) -> tuple[nn.Module, Timing]:
        """The seed's ``original`` (trained on train, over the data before any deletion request) or
        ``gold`` / ``gold@r`` (retrained on what request r leaves of train) model with its training
        timing; trained or loaded once per process. ``recipe``: a method's own (its training
        scheme, :meth:`job_recipe`) instead of the config's; its models are kept apart."""
        name = kind + scheme_tag(self.exp.recipe, recipe)
        if name not in state.models:
            parts = state.partitions
            recipe = recipe or self.exp.recipe
            if kind == "original" and self.exp.checkpoint is not None and not scheme_tag(self.exp.recipe, recipe):
                model, timing = self.original_from_checkpoint(parts.dataset, state.seed)
            elif kind == "original":
                model, timing = self.train_cached(state, "original", parts["train"], state.seed, recipe,
                                                  partitions=parts.before_forget(), name=name)
            elif kind in [gold_name(r) for r in range(len(state.requests))]:
                after = state.requests[0 if kind == "gold" else int(kind.split("@")[1])].evaluation
                model, timing = self.train_cached(state, "gold", after["retain"], state.seed, recipe, partitions=after,
                                                  name=name)
            else:
                raise ValueError(f"unknown reference model {kind!r}")
            bad = nonfinite_parameters(model)
            if bad:
                raise RunError(f"the {name} model of seed {state.seed} has non-finite parameters ({bad}); "
                               "check the training recipe (learning rate, loss)")
            state.models[name] = (model, timing)
            state.watch_model(name)
        return state.models[name]

    def job_recipe(self, unlearner: Any) -> TrainingRecipe:
        """The recipe of a method's original and gold: the config's, under the training scheme the
        method declares when the config names none (a config's scheme that differs from the
        method's is refused when the config is built)."""
        needed = None if unlearner is None else unlearner.training_scheme()
        if needed is None or self.exp.recipe.scheme is not None:
            return self.exp.recipe
        return dataclasses.replace(self.exp.recipe, scheme=needed)

    def original_from_checkpoint(self, dataset: Dataset, seed: int) -> tuple[nn.Module, Timing]:
        """The config's model with the weights of ``model.checkpoint`` (the same file for every seed);
        a file that does not fit the model is a config error naming the keys."""
        with measure(self.device) as timing:
            model = self.make_model(dataset, derive_seed(seed, "model-init"))
            state = load_checkpoint(self.exp.checkpoint, self.device)
            problems = checkpoint_mismatch(model, state)
            if problems:
                raise ConfigError(f"{self.exp.checkpoint} does not fit {self.exp.model_spec['class']}: {problems}",
                                  "model.checkpoint", self.exp.file)
            model.load_state_dict(state)
        self.events.append(f"seed {seed}: original model loaded from {self.exp.checkpoint} "
                           f"(SHA-256 {self.exp.checkpoint_sha256[:12]})")
        return model.eval(), timing

    def train_references(self, state: SeedState) -> None:
        """Train (or load) both reference models of ``state`` now."""
        self.reference(state, "original")
        self.reference(state, "gold")

    # ------------------------------------------------------------------ jobs
    def _row(self, seed: int, label: str, params: str, metric: str, value: Any = None, *, status: str = "ok",
             error: str = "", step: int | None = None, wall: float | None = None, request: int | None = None) -> dict[str, Any]:
        return {
            "run_id": self.run_id, "experiment": self.exp.name, "config_hash": self.exp.config_hash, "seed": seed,
            "unlearner": label, "parameters": params, "metric": metric, "value": value, "step": step,
            "request": request, "status": status, "error": error, "wall_seconds": wall, "versions": versions(),
            "device": str(self.device),
        }

    def make_context(self, state: SeedState, label: str, seed: int | None = None,
                     gold_provider: Callable[[], tuple[nn.Module, Timing]] | None = None,
                     request: int = 0, unlearning_seed: int | None = None,
                     recipe: TrainingRecipe | None = None) -> UnlearningContext:
        """Reseed from (seed, label[, request][, unlearning seed]) and build the context an
        unlearner runs in for deletion ``request`` (``seed`` and ``gold_provider`` default to the
        state's; other ones serve repeated unlearning). The context's partitions and recipe are the
        job's own copies: changing them affects no other job."""
        names = (label,) if request == 0 else (label, f"request {request}")
        if unlearning_seed is not None:
            names = (*names, f"unlearning seed {unlearning_seed}")
        job_seed = derive_seed(state.seed if seed is None else seed, *names)
        generator = seed_everything(job_seed)
        parts = partitions_for_job(state.requests[request].unlearning)
        trajectory: list[tuple[int, str, float]] = []
        ctx = UnlearningContext(
            partitions=parts, device=self.device, num_classes=parts.dataset.num_classes,
            recipe=copy.deepcopy(recipe or self.exp.recipe), seed=job_seed, generator=generator, rng=np.random.default_rng(job_seed),
            new_model=lambda: self.make_model(parts.dataset),
            gold_provider=gold_provider or (lambda: self.reference(state, gold_name(request), recipe)),
            log_fn=lambda step, metrics: trajectory.extend((step, k, float(v)) for k, v in metrics.items()),
        )
        ctx.extras["trajectory"] = trajectory
        return ctx

    def make_outcome(self, state: SeedState, label: str, unlearner: Any, model: nn.Module, ctx: UnlearningContext,
                     timing: Timing, request: int = 0) -> Outcome:
        """What evaluators see of one finished ``unlearn`` call (after deletion ``request``)."""
        after = state.requests[request].evaluation
        recipe = self.job_recipe(unlearner)
        scheme = scheme_tag(self.exp.recipe, recipe)  # its original and gold have outputs of their own
        return Outcome(
            model=model, original=self.reference(state, "original", recipe)[0],
            gold_provider=lambda: self.reference(state, gold_name(request), recipe),
            partitions=ctx.evaluation_partitions or after, reference_partitions=after,
            timing=timing, seed=state.seed, unlearner=label, device=self.device,
            context=ctx, shared_memo=state.memo((scheme, request) if scheme else request),
            train_reference=lambda tag, index, seed, recipe=None: self.train_cached(state, tag, index, seed, recipe)[0],
            unlearn_reference=lambda seed, original_seed=None: self.unlearn_cached(
                state, label, unlearner, seed, original_seed, request),
            rerun_unlearn=lambda: self.rerun_unlearn(state, label, unlearner, request),
        )

    def rerun_unlearn(self, state: SeedState, label: str, unlearner: Any,
                      request: int = 0) -> tuple[nn.Module, UnlearningContext]:
        """The job's ``unlearn`` call once more, on a fresh copy of the seed's original with a context
        built as for the job (same seed), so a deterministic unlearner repeats the job's work exactly
        (with several deletion requests, the calls of requests 0..``request`` in turn)."""
        recipe = self.job_recipe(unlearner)
        with torch.random.fork_rng(devices=[]):
            model = copy.deepcopy(self.reference(state, "original", recipe)[0])
            for r in range(request + 1):
                ctx = self.make_context(state, label, request=r, recipe=recipe)
                model = unlearner.unlearn(model, ctx)
        return model, ctx

    def unlearn_cached(self, state: SeedState, label: str, unlearner: Any, seed: int,
                       original_seed: int | None = None, request: int = 0) -> nn.Module:
        """The same unlearner run with the context of ``seed`` on the original trained with
        ``original_seed`` (default: ``seed``), through the cache (deletion requests 0..``request``
        in turn, as the job did).

        The original comes from :meth:`train_cached` (the job's own when ``original_seed`` is the
        state's seed), the gold that the context offers is trained with ``seed``, and the context is
        built as for a job of ``seed``: per-example attacks (ForgettingQuality, ULiRA) get
        independent samples of "unlearned", from varied originals or, with ``original_seed`` set to
        the job's seed, from repeated unlearning of one original. Keyed by that original's
        ingredients, the unlearning seed (when it differs), the forget sets and the unlearner's
        class and parameters.
        """
        parts = state.partitions
        recipe = self.job_recipe(unlearner)
        original_seed = seed if original_seed is None else original_seed
        if original_seed == state.seed:
            original = self.reference(state, "original", recipe)[0]
        else:
            original, _ = self.train_cached(state, "original", parts["train"], original_seed, recipe,
                                            partitions=parts.before_forget())
        forget = [self.hash_of(state.requests[r].unlearning["forget"]) for r in range(request + 1)]
        key = content_key(
            kind="unlearned", data=state.data_key, source=self.exp.source_spec,
            split=self.hash_of(parts["train"]), forget=forget[0] if request == 0 else forget, model=self.exp.model_spec,
            training=recipe.as_dict(), seed=original_seed, version=__version__,
            unlearner=type(unlearner).__name__, parameters=params_json(unlearner),
            **({} if seed == original_seed else {"unlearn_seed": seed}),
            **({} if self.exp.checkpoint is None or original_seed != state.seed else {"checkpoint": self.exp.checkpoint_sha256}),
        )

        def unlearn(model: nn.Module) -> Timing:
            total = Timing()
            for r in range(request + 1):
                after = state.requests[r].evaluation
                gold = lambda: self.train_cached(state, "gold", after["retain"], seed, recipe, partitions=after)  # noqa: E731
                with torch.random.fork_rng(devices=[]):
                    ctx = self.make_context(state, label, seed, gold, request=r, recipe=recipe)
                    with measure(self.device) as timing:
                        result = unlearner.unlearn(model, ctx)
                if result is not model:
                    model.load_state_dict(result.state_dict())
                total.wall_seconds += timing.wall_seconds
                total.cpu_seconds += timing.cpu_seconds
            self._check_data(state, f"caching a model unlearned by {label}")
            return total

        model, _, _ = self.cache.get_or_train(key, copy.deepcopy(original), unlearn, {
            "kind": "unlearned", "seed": original_seed, "unlearn_seed": seed, "unlearner": label})
        return model

    def evaluate(self, outcome: Outcome, evaluator: Any) -> dict[str, float]:
        """Run one evaluator with its own seed (from the job's seed and its class name)."""
        with torch.random.fork_rng(devices=[]):
            seed_everything(derive_seed(outcome.context.seed, type(evaluator).__name__))
            metrics = evaluator.evaluate(outcome)
        return {str(k): v if isinstance(v, float) else float(v) for k, v in metrics.items()}

    def run_job(self, state: SeedState, entry: UnlearnerEntry, params: str | None = None,
                artifacts: dict[str, Any] | None = None, unlearning_seed: int | None = None,
                log_hook: Callable[[int, dict[str, float]], None] | None = None) -> list[dict[str, Any]]:
        """Unlearn and evaluate one (seed, unlearner); never raises for a component's failure.

        With several deletion requests the unlearner processes them one after another on its own
        model, and the evaluators run after each (rows carry the request index). ``params`` is
        the job's identity computed once by the plan (default: from the unlearner now).
        Per-example arrays the evaluators keep go into ``artifacts``; ``log_hook`` sees every value
        the unlearner logs per epoch (tuning prunes on them).
        """
        params = params_json(entry.unlearner) if params is None else params
        model = copy.deepcopy(self.reference(state, "original", self.job_recipe(entry.unlearner))[0])
        state.models_before_job = set(state.models)
        several = len(state.requests) > 1
        rows: list[dict[str, Any]] = []
        for request in range(len(state.requests)):
            model, request_rows, outcome = self._run_request(state, entry, params, model, request if several else None,
                                                             unlearning_seed, log_hook)
            rows += request_rows
            if outcome is None:  # the unlearner failed or spoiled shared state: later requests are moot
                break
            if artifacts is not None:
                prefix = f"request{request}/" if several else ""
                artifacts.update({prefix + k: v for k, v in outcome.artifacts.items()})
        return rows

    def _run_request(self, state: SeedState, entry: UnlearnerEntry, params: str, model: nn.Module,
                     request: int | None, unlearning_seed: int | None = None,
                     log_hook: Callable[[int, dict[str, float]], None] | None = None,
                     ) -> tuple[nn.Module, list[dict[str, Any]], Outcome | None]:
        """One unlearn call and its evaluations; the outcome is None when the job cannot go on."""
        label = entry.label
        ctx = self.make_context(state, label, request=request or 0, unlearning_seed=unlearning_seed,
                                recipe=self.job_recipe(entry.unlearner))
        ctx.output_dir = self.exp.output_dir / "files" / f"seed{state.seed}" / job_slug(label)  # files the job writes
        if log_hook is not None:
            logged = ctx.log_fn
            ctx.log_fn = lambda step, metrics: (logged(step, metrics), log_hook(step, metrics))

        def row(metric: str, value: Any = None, **fields: Any) -> dict[str, Any]:
            return {**self._row(state.seed, label, params, metric, value, request=request, **fields),
                    "unlearning_seed": unlearning_seed}

        try:
            with measure(self.device) as timing:
                model = entry.unlearner.unlearn(model, ctx)
            if not isinstance(model, nn.Module):
                raise TypeError(f"unlearn() returned {type(model).__name__}, expected an nn.Module")
            bad = nonfinite_parameters(model)
            if bad:
                raise FloatingPointError(f"the unlearned model has non-finite parameters ({bad})")
        except BaseException as exc:  # SystemExit and a component's own KeyboardInterrupt too
            if interrupted_by_user(exc):
                raise
            log.debug("unlearner %s failed", label, exc_info=True)
            return model, [row("unlearn", status="error", error=describe(exc))] + self._changed_shared_state(state, row, True), None
        timing = ctx.timing_override or timing
        wall = timing.wall_seconds
        rows = [row(m, v, step=s, wall=wall) for s, m, v in ctx.extras["trajectory"]]
        changed = self._changed_shared_state(state, row, False)
        if changed:
            return model, rows + changed, None
        outcome = self.make_outcome(state, label, entry.unlearner, model, ctx, timing, request or 0)
        for evaluator in sorted(self.exp.evaluators, key=lambda e: bool(e.requires)):
            name = type(evaluator).__name__
            missing = [m for m in evaluator.requires if m not in outcome.metrics]
            if missing:
                rows.append(row(name, status="error", wall=wall,
                                error=f"needs metrics {', '.join(missing)}, which no listed evaluator produced"))
                continue
            try:
                metrics = self.evaluate(outcome, evaluator)
            except BaseException as exc:
                if interrupted_by_user(exc):
                    raise
                log.debug("evaluator %s failed on %s", name, label, exc_info=True)
                rows.append(row(name, status="error", error=describe(exc), wall=wall))
                continue
            outcome.metrics.update(metrics)
            for k, v in metrics.items():
                reason = undefined_reason(v)
                rows.append(row(k, float(v), wall=wall, status="undefined" if reason else "ok", error=reason or ""))
        changed = self._changed_shared_state(state, row, True)
        if changed:
            return model, [r for r in rows if r["status"] != "ok"] + changed, None
        return model, rows, outcome

    def _changed_shared_state(self, state: SeedState, row: Callable[..., dict[str, Any]],
                              final: bool) -> list[dict[str, Any]]:
        """Error rows if the job changed data or models that other jobs share (at a cost that does not
        grow with the data: :class:`~erasure.execution.safety.SharedTensors`; ``final``: the models'
        weights are checksummed in full too). Then every seed that shares what changed is rebuilt
        before its next job: the data reloaded from the source, the changed models from the cache,
        and nothing kept that was built while the job ran."""
        changed = [k for k, guard in state.guards.items() if guard.changed(full=final)]
        if not changed:
            return []
        seeds = [state.seed]
        if "the dataset" in changed:
            spoiled = state.guards["the dataset"].storages
            seeds += [s for s, other in self.states.items() if s != state.seed and other.guards["the dataset"].storages & spoiled]
            self._dataset = None
        for seed in seeds:
            gone = self.states.pop(seed)
            before = gone.models_before_job if seed == state.seed else set(gone.models)
            self._kept[seed] = {k: v for k, v in gone.models.items() if k not in changed and k in before}
        message = f"the job changed shared state ({', '.join(changed)}); components must not modify them in place"
        return [row("shared_state", status="error", error=message)]

    def _check_data(self, state: SeedState, before: str) -> None:
        """Refuse to train or cache a model on shared data that a running job has changed."""
        if state.guards["the dataset"].changed():
            raise RuntimeError(f"the shared data changed before {before}; components must not modify it in place")

    # ----------------------------------------------------------------- tasks
    def entry_of(self, task: UnlearnTask) -> UnlearnerEntry:
        """The config's entry of a job, or one built from the task's own spec (a tuning trial)."""
        if task.spec is None:
            return self.entries[task.label]
        spec = json.loads(task.spec)
        with allowed_imports(self.exp.imports):
            return UnlearnerEntry(task.label, build(spec, "unlearner", "trial"), spec)

    def _pruning_hook(self, task: UnlearnTask) -> Callable[[int, dict[str, float]], None] | None:
        """For a tuning trial that may be pruned: the hook that reports each epoch to its trial."""
        if task.trial is None or task.reporter is None:
            return None
        from erasure.results.targets import targets_of

        return task.reporter(task.trial, self.exp.tuning.objective, targets_of(self.exp.evaluators))

    def execute(self, task: Task) -> JobResult:
        """Run one task and return its rows (unlearning jobs) or its log lines (reference models)."""
        self.events = []
        start = time.perf_counter()
        artifacts: dict[str, Any] = {}
        rows: list[dict[str, Any]] = []
        fatal = None
        if isinstance(task, ReferenceTask):
            try:
                state = self.state(task.seed)
                if task.kind not in state.models:
                    self.reference(state, task.kind)
                    if not self.events:  # loaded from the cache: say so, with the time it took to train
                        self.events.append(f"seed {task.seed}: {task.kind} model loaded from the cache (its "
                                           f"training took {state.models[task.kind][1].wall_seconds:.1f} s)")
            except RunError as exc:
                fatal = str(exc)
            except BaseException as exc:
                if interrupted_by_user(exc):
                    raise
                log.debug("%s model of seed %d failed", task.kind, task.seed, exc_info=True)
                fatal = f"the {task.kind} model of seed {task.seed} could not be trained: {describe(exc)}"
        else:
            try:
                rows = self.run_job(self.state(task.seed), self.entry_of(task), task.parameters, artifacts,
                                    task.unlearning_seed, self._pruning_hook(task))
            except (RunError, ConfigError) as exc:  # data or the original that cannot be built: the run stops
                fatal = str(exc)
        return JobResult(task, rows, list(self.events), artifacts, time.perf_counter() - start, fatal)


def load_checkpoint(path: str, device: torch.device) -> dict[str, Tensor]:
    """A ``state_dict`` from ``.safetensors`` or a torch file read with ``weights_only=True``;
    a dict that wraps one (``{"state_dict": ...}``, ``{"model": ...}``) and DataParallel's
    ``module.`` prefixes are unwrapped."""
    try:
        if path.endswith(".safetensors"):
            from safetensors.torch import load_file

            state: Any = load_file(path, device=str(device))
        else:
            state = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:
        raise ConfigError(f"cannot read the checkpoint {path}: {type(exc).__name__}: {exc}", "model.checkpoint") from exc
    for key in ("state_dict", "model_state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
            break
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise ConfigError(f"{path} holds no state_dict (a mapping of parameter names to tensors)", "model.checkpoint")
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


def checkpoint_mismatch(model: nn.Module, state: dict[str, Tensor], limit: int = 5) -> str:
    """What keeps ``state`` from loading into ``model``: missing and unexpected keys, wrong shapes ("" if none)."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [f"{k} {tuple(state[k].shape)} in the file, {tuple(v.shape)} in the model"
              for k, v in expected.items() if k in state and state[k].shape != v.shape]

    def listing(what: str, items: list[str]) -> str:
        more = f" and {len(items) - limit} more" if len(items) > limit else ""
        return f"{what}: {', '.join(items[:limit])}{more}" if items else ""

    return "; ".join(x for x in (listing("missing keys", missing), listing("unexpected keys", unexpected),
                                 listing("shape mismatch", shapes)) if x)


def describe(exc: BaseException) -> str:
    """``Type: message`` and the innermost frame, on one line."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" (at {frames[-1].filename.rsplit('/', 1)[-1]}:{frames[-1].lineno})" if frames else ""
    text = f"{type(exc).__name__}: {exc}{where}"
    return " ".join(text.split())[:500]
