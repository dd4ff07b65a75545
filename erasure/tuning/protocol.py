"""The equal-budget tuning protocol (Optuna): every unlearner with a search space gets the same
number of trials, on tuning seeds and a validation split, before the evaluation.

Trials are jobs: each one is an :class:`~erasure.execution.jobs.UnlearnTask` per tuning seed,
carrying the trial's unlearner spec, run on the run's executor (serial, local pool, Ray); the
driver alone asks Optuna for trials and tells it their values, so parallel workers share one study
with no storage of their own. Studies live in ``<output_dir>/tuning/study.journal`` (Optuna's
journal storage): a killed run resumes them, keeping every finished trial.

Protocol, per method: trial 0 is the paper's default (the entry's parameters); the tuning seeds
are distinct from the evaluation seeds (other originals); every job of a trial runs on a
validation split carved from train, the test split dropped before any component sees the data;
the trial's value is the objective (:mod:`erasure.tuning.objectives`) averaged over the tuning
seeds. The best parameters then replace the entry's for the evaluation.
"""
from __future__ import annotations

import csv
import dataclasses
import io
import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from erasure.execution.experiment import Experiment, UnlearnerEntry
from erasure.core.errors import ConfigError
from erasure.core.factory import allowed_imports, build
from erasure.core.params import IntRange
from erasure.execution.jobs import JobResult, Plan, ReferenceTask, UnlearnTask
from erasure.execution.workspace import RunError, params_json
from erasure.results.files import atomic_write_text
from erasure.results.targets import Ranking, targets_of
from erasure.tuning.objectives import final_metrics, trial_value
from erasure.tuning.pruning import check_journal, journal_remedy, journal_storage, make_pruner, pruning_hook, trial_link

log = logging.getLogger("erasure")
TRIAL_COLUMNS = ["method", "trial", "state", "value", "parameters", "seed_values", "reason"]
REFERENCES = {"GoldModel": {"class": "GoldModel"}, "Identity": {"class": "Identity"}}


def tunable(experiment: Experiment) -> list[UnlearnerEntry]:
    """The entries the protocol tunes: every one with a non-empty search space."""
    return [e for e in experiment.unlearners if e.search]


def untuned_methods(experiment: Experiment) -> list[str]:
    """Labels of the methods the protocol leaves untuned: no search space, and not a reference
    (GoldModel, Identity), which have nothing to tune."""
    return [e.label for e in experiment.unlearners
            if not e.search and e.spec["class"].rsplit(".", 1)[-1] not in REFERENCES]


def capped(search: dict[str, Any], max_epochs: int | None) -> dict[str, Any]:
    """The search space with every epoch-like dimension capped at ``max_epochs`` (the same cap for every method)."""
    if max_epochs is None:
        return dict(search)
    out = {}
    for name, dim in search.items():
        if isinstance(dim, IntRange) and (name == "epochs" or name.endswith("_epochs")):
            dim = IntRange(min(dim.low, max_epochs), min(dim.high, max_epochs), dim.log)
        out[name] = dim
    return out


def distributions(search: dict[str, Any]) -> dict[str, Any]:
    """Optuna distributions of a search space."""
    import optuna.distributions as d

    from erasure.core.params import Choice, Uniform

    out = {}
    for name, dim in search.items():
        if isinstance(dim, Uniform):
            out[name] = d.FloatDistribution(dim.low, dim.high, log=dim.log)
        elif isinstance(dim, IntRange):
            out[name] = d.IntDistribution(dim.low, dim.high, log=dim.log)
        elif isinstance(dim, Choice):
            out[name] = d.CategoricalDistribution([json.dumps(v) for v in dim.values])
    return out


def from_optuna(search: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """Trial parameters in the unlearner's terms (choices are stored as JSON text)."""
    from erasure.core.params import Choice

    return {k: json.loads(v) if isinstance(search[k], Choice) else v for k, v in params.items()}


@dataclass
class Tuned:
    """The outcome of one method's study."""

    label: str
    parameters: dict[str, Any]
    value: float
    trials: int
    best_trial: int


@dataclass
class _Trial:
    method: str
    trial: Any  # optuna.trial.Trial
    parameters: dict[str, Any]
    rows: dict[int, list[dict[str, Any]]] = field(default_factory=dict)


class Tuner:
    """Runs the protocol for one experiment: ``Tuner(...).run()`` → ``{label: Tuned}``.

    ``execute(plan, on_result)`` runs tasks on the run's executor (in the tuning view of the
    data: see :meth:`erasure.execution.runner.Runner.tune`). Trials are asked in batches of
    ``tuning.parallel`` per method, whatever the executor, so the executor and its workers change
    how fast trials run, never which ones.
    """

    def __init__(self, experiment: Experiment, output_dir: Path, execute: Callable[[Plan, Callable], None],
                 out: Callable[[str], None] = print):
        self.exp = experiment
        self.settings = experiment.tuning
        self.folder = Path(output_dir) / "tuning"
        self.execute = execute
        self.parallel = self.settings.parallel
        self.out = out
        self.targets = targets_of(experiment.evaluators)
        self.ranking = Ranking.from_config(experiment.config)

    # ------------------------------------------------------------- references
    def _reference_values(self) -> tuple[dict[int, dict[str, float]], dict[int, dict[str, float]], dict[int, float]]:
        """Per tuning seed: gold's and the original's metric values, and gold's training seconds."""
        gold_needed = self.settings.objective == "gold_gap" or self.settings.max_time_fraction is not None
        wanted = {"GoldModel": gold_needed, "Identity": self.settings.objective == "gold_free"}
        jobs = {seed: [UnlearnTask(seed, label, params_json_of(spec), spec=json.dumps(spec))
                       for label, spec in REFERENCES.items() if wanted[label]] for seed in self.settings.seeds}
        results: dict[tuple[int, str], list[dict[str, Any]]] = {}
        self._run(jobs, lambda r: results.__setitem__((r.task.seed, r.task.label), r.rows), gold=gold_needed)
        gold = {s: final_metrics(results.get((s, "GoldModel"), [])) for s in self.settings.seeds}
        original = {s: final_metrics(results.get((s, "Identity"), [])) for s in self.settings.seeds}
        seconds = {s: max((float(r["wall_seconds"]) for r in results.get((s, "GoldModel"), [])
                           if r.get("wall_seconds") not in (None, "")), default=math.nan) for s in self.settings.seeds}
        return gold, original, seconds

    def _run(self, jobs: dict[int, list[UnlearnTask]], on_result: Callable[[JobResult], None], gold: bool) -> None:
        references = {s: [ReferenceTask(s, "original"), *([ReferenceTask(s, "gold")] if gold else [])] for s in jobs}

        def checked(result: JobResult) -> None:
            if result.fatal:
                raise RunError(f"tuning: {result.fatal}")
            if isinstance(result.task, UnlearnTask):
                on_result(result)

        self.execute(Plan(references, jobs), checked)

    # ------------------------------------------------------------------ study
    def _study(self, entry: UnlearnerEntry) -> Any:
        import optuna

        self.folder.mkdir(parents=True, exist_ok=True)
        storage = journal_storage(self.folder / "study.journal")
        sampler = (optuna.samplers.TPESampler(seed=self.settings.sampler_seed, constant_liar=True)
                   if self.settings.sampler == "tpe" else optuna.samplers.RandomSampler(seed=self.settings.sampler_seed))
        pruner = make_pruner(self.settings.prune, len(self.settings.seeds))
        study = optuna.create_study(study_name=entry.label, storage=storage, sampler=sampler, pruner=pruner,
                                    direction="minimize", load_if_exists=True)
        self._check_space(entry.label, study, distributions(capped(entry.search, self.settings.max_epochs)))
        running = [t for t in study.get_trials(deepcopy=False) if t.state == optuna.trial.TrialState.RUNNING]
        for stale in running:  # left by a killed run: never finished, not counted in the budget
            storage.set_trial_user_attr(stale._trial_id, "reason", "stale: the run was stopped")
            storage.set_trial_state_values(stale._trial_id, optuna.trial.TrialState.FAIL)
        if not study.get_trials(deepcopy=False):
            search = capped(entry.search, self.settings.max_epochs)
            default = {k: v for k, v in entry.unlearner.get_params().items() if k in search}
            for k, dim in search.items():  # the paper's default, inside the (capped) space
                if isinstance(dim, IntRange):
                    default[k] = min(max(default[k], dim.low), dim.high)
                elif hasattr(dim, "values"):
                    default[k] = json.dumps(default[k])
            study.enqueue_trial(default)
        return study

    def _check_space(self, label: str, study: Any, space: dict[str, Any]) -> None:
        """Refuse a journal whose trials lie outside the method's search space (another config's
        study, or an edited file): such a trial must never become the best setting."""
        journal = self.folder / "study.journal"
        for t in study.get_trials(deepcopy=False):
            for name, value in t.params.items():
                dist = space.get(name)
                try:
                    inside = dist is not None and dist._contains(dist.to_internal_repr(value))
                except (ValueError, TypeError):
                    inside = False
                if not inside:
                    raise ConfigError(f"trial {t.number} of {label} has {name}={value!r}, outside the method's search "
                                      f"space ({dist or 'no such dimension'}): the journal belongs to another "
                                      f"configuration or was edited; {journal_remedy(journal)}", file=str(journal))

    @staticmethod
    def _counted(study: Any) -> int:
        """Trials that used the budget: finished, pruned or failed (not those a killed run left)."""
        return sum(1 for t in study.get_trials(deepcopy=False)
                   if t.state.is_finished() and not str(t.user_attrs.get("reason", "")).startswith("stale"))

    # -------------------------------------------------------------------- run
    def run(self) -> dict[str, Tuned]:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        entries = tunable(self.exp)
        if not entries:
            return {}
        check_journal(self.folder / "study.journal")
        gold, original, gold_seconds = self._reference_values()
        studies = {e.label: (e, self._study(e)) for e in entries}
        budget = self.settings.trials
        self.out(f"tuning {len(entries)} method(s) ({', '.join(e.label for e in entries)}), {budget} trials each, "
                 f"objective {self.settings.objective}, tuning seeds {self.settings.seeds} "
                 f"(validation split {self.settings.validation_fraction:g} of train)")
        untuned = untuned_methods(self.exp)
        if untuned:
            message = (f"not tuned (no search space): {', '.join(untuned)}; they run with their config's parameters "
                       f"against tuned methods. Declare search_space on the class or give the entry a \"search\"")
            log.warning(message)
            self.out(f"warning: {message}")
        while True:
            batch: list[_Trial] = []
            for label, (entry, study) in studies.items():
                search = capped(entry.search, self.settings.max_epochs)
                for _ in range(min(self.parallel, budget - self._counted(study))):
                    trial = study.ask(distributions(search))
                    batch.append(_Trial(label, trial, {**entry.unlearner.get_params(), **from_optuna(search, trial.params)}))
            if not batch:
                break
            self._run_trials(batch, studies, gold, original, gold_seconds)
        return self._finish(studies)

    def _run_trials(self, batch: list[_Trial], studies: dict, gold: dict, original: dict, gold_seconds: dict) -> None:
        import optuna

        jobs: dict[int, list[UnlearnTask]] = {s: [] for s in self.settings.seeds}
        waiting: dict[tuple, list[_Trial]] = {}  # two trials with the same parameters share their jobs' rows
        for t in batch:
            spec = json.dumps({"class": studies[t.method][0].spec["class"], "parameters": t.parameters}, sort_keys=True,
                              default=str)
            for index, seed in enumerate(self.settings.seeds):
                key = (seed, t.method, spec)
                if key not in waiting:  # a pruned job reports to the first trial that asked for it
                    link = trial_link(self.folder / "study.journal", t.method, t.trial._trial_id, index,
                                      len(self.settings.seeds), gold.get(seed, {}), self.ranking) if self.settings.prune else None
                    jobs[seed].append(UnlearnTask(seed, t.method, json.dumps(t.parameters, sort_keys=True, default=str),
                                                  spec=spec, trial=link, reporter=pruning_hook if link else None))
                waiting.setdefault(key, []).append(t)

        def collect(result: JobResult) -> None:
            for t in waiting[(result.task.seed, result.task.label, result.task.spec)]:
                t.rows[result.task.seed] = result.rows

        self._run(jobs, collect, gold=self.settings.objective == "gold_gap")
        for t in batch:
            study = studies[t.method][1]
            values, reasons = {}, []
            for seed in self.settings.seeds:
                rows = t.rows.get(seed, [])
                errors = [r for r in rows if r["status"] == "error"]
                if any("TrialPruned" in r.get("error", "") for r in errors):
                    reasons.append("pruned")
                    break
                if errors:
                    reasons.append(f"seed {seed}: {errors[0]['metric']}: {errors[0]['error'][:200]}")
                    continue
                wall = max((float(r["wall_seconds"]) for r in rows if r.get("wall_seconds") not in (None, "")), default=0.0)
                cap = self.settings.max_time_fraction
                if cap is not None and math.isfinite(gold_seconds.get(seed, math.nan)) and wall > cap * gold_seconds[seed]:
                    reasons.append(f"seed {seed}: {wall:.2f} s, over {cap:g} of gold's {gold_seconds[seed]:.2f} s")
                    continue
                value, why = trial_value(self.settings.objective, final_metrics(rows), gold.get(seed, {}),
                                         original.get(seed, {}), self.targets, self.ranking)
                if why:
                    reasons.append(f"seed {seed}: {why}")
                    continue
                values[seed] = value
            t.trial.set_user_attr("seed_values", {str(k): v for k, v in values.items()})
            if reasons == ["pruned"]:
                study.tell(t.trial, state=optuna.trial.TrialState.PRUNED)
                outcome = "pruned"
            elif reasons or len(values) < len(self.settings.seeds):
                t.trial.set_user_attr("reason", "; ".join(reasons))
                study.tell(t.trial, state=optuna.trial.TrialState.FAIL)
                outcome = f"failed ({'; '.join(reasons)[:200]})"
            else:
                value = sum(values.values()) / len(values)
                study.tell(t.trial, value)
                outcome = f"{self.settings.objective} {value:.4g}"
            tried = {k: v for k, v in t.parameters.items() if k in studies[t.method][0].search}
            self.out(f"tuning {t.method} trial {t.trial.number + 1}/{self.settings.trials}: {outcome}  "
                     f"{json.dumps(tried, sort_keys=True, default=str)}")

    def _finish(self, studies: dict) -> dict[str, Tuned]:
        """Write ``tuning/trials.csv`` and ``tuning/best.json``; the best parameters per method."""
        import optuna

        out: dict[str, Tuned] = {}
        lines, unfinished = [], []
        for label, (entry, study) in studies.items():
            search = capped(entry.search, self.settings.max_epochs)
            trials = study.get_trials(deepcopy=False)
            lines += [{"method": label, "trial": t.number, "state": t.state.name, "value": "" if t.value is None else t.value,
                       "parameters": json.dumps(from_optuna(search, t.params), sort_keys=True),
                       "seed_values": json.dumps(t.user_attrs.get("seed_values", {})),
                       "reason": t.user_attrs.get("reason", "")} for t in trials]
            complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
            if not complete:
                unfinished.append(label)
                continue
            best = min(complete, key=lambda t: (t.value, t.number))
            params = {**entry.unlearner.get_params(), **from_optuna(search, best.params)}
            out[label] = Tuned(label, params, float(best.value), self._counted(study), best.number)
        text = io.StringIO()
        writer = csv.DictWriter(text, TRIAL_COLUMNS)
        writer.writeheader()
        writer.writerows(lines)
        atomic_write_text(self.folder / "trials.csv", text.getvalue())
        if unfinished:
            raise RunError(f"tuning {', '.join(unfinished)}: no trial finished (they failed or were pruned); "
                           f"see the reasons in {self.folder / 'trials.csv'}")
        atomic_write_text(self.folder / "best.json", json.dumps(
            {label: dataclasses.asdict(t) | {"objective": self.settings.objective} for label, t in out.items()},
            indent=1, default=str))
        return out


def params_json_of(spec: dict[str, Any]) -> str:
    """The parameters JSON of a reference job built from ``spec`` (GoldModel, Identity)."""
    with allowed_imports(()):
        return params_json(build(spec, "unlearner", "tuning"))


def tuned_entries(experiment: Experiment, tuned: dict[str, Tuned]) -> list[UnlearnerEntry]:
    """The experiment's entries with each tuned method's best parameters."""
    out = []
    for entry in experiment.unlearners:
        if entry.label not in tuned:
            out.append(entry)
            continue
        spec = {**entry.spec, "parameters": tuned[entry.label].parameters}
        with allowed_imports(experiment.imports):
            out.append(dataclasses.replace(entry, unlearner=build(spec, "unlearner", "tuned"), spec=spec,
                                           tuned=tuned[entry.label]))
    return out


def tune(experiment: Experiment, view: Experiment, execute: Callable[[Plan, Callable], None],
         out: Callable[[str], None] = print) -> list[UnlearnerEntry]:
    """The runner's tuning step (``Runner(..., tuner=tune)``): the protocol on ``view`` (the tuning
    seeds and validation split of ``experiment``), run by ``execute``; returns ``experiment``'s
    entries with each tuned method's best parameters."""
    tuned = Tuner(view, experiment.output_dir, execute, out).run()
    for label, t in tuned.items():
        out(f"tuned {label}: {t.parameters} (objective {t.value:.4g}, trial {t.best_trial} of {t.trials})")
    return tuned_entries(experiment, tuned)
