"""The driver: plan the jobs of an experiment, hand them to an executor, write what comes back.

``Runner(experiment).run()`` opens the writers (the CSV writer refuses results of another config
and tells which jobs are already finished), plans the unfinished (seed, unlearner) jobs and the
reference models they need (:mod:`erasure.execution.jobs`), runs them on the chosen executor
(:mod:`erasure.execution.executors`) and writes each job's rows as they arrive: the driver is the
only writer of results, whatever the executor. It ends with the summary table.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import shutil
import sys
import uuid
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import numpy as np
import torch

from erasure.core.cache import ModelCache
from erasure.core.config import SCHEMA_PATH
from erasure.core.errors import ConfigError
from erasure.core.seeding import resolve_device
from erasure.execution.experiment import Experiment
from erasure.execution.executors import Executor, LocalExecutor, SerialExecutor
from erasure.execution.jobs import JobResult, UnlearnTask, make_plan
from erasure.execution.safety import user_interrupts_marked
from erasure.execution.settings import Execution
from erasure.execution.worker import WorkerSetup
from erasure.execution.workspace import RunError, Workspace, params_json, versions
from erasure.results.directory import save_artifact, summarize_run
from erasure.results.files import atomic_write_text, lock_output_dir
from erasure.results.summary import headline
from erasure.results.writers import CSVWriter, RunInfo, job_key, read_rows

log = logging.getLogger("erasure")
__all__ = ["Runner", "RunReport", "RunError"]


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


@dataclass
class _Tally:
    skipped: int
    current: set
    written: int = 0
    errors: int = 0
    done: int = 0


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """torch's intra-op threads set to ``n`` for the block (the job's CPU budget)."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class Runner:
    """Executes an experiment; see the module docstring. ``execution`` overrides the config's."""

    def __init__(self, experiment: Experiment, *, use_cache: bool = True, overwrite: bool = False,
                 progress: bool = True, out: Callable[[str], None] = print, execution: Execution | None = None,
                 tuner: Callable[..., list[Any]] | None = None):
        self.exp = experiment
        self.tuner = tuner  # a config with "tuning" needs one: erasure.tuning.protocol.tune (the CLI's)
        self.overwrite = overwrite
        self.progress = progress
        self.out = out
        self.execution = execution or experiment.execution
        self.cache = ModelCache(experiment.cache_dir, enabled=use_cache and experiment.cache_enabled)
        try:
            self.device = resolve_device(experiment.device)
        except (ValueError, RuntimeError) as exc:
            raise ConfigError(str(exc), "device", experiment.file) from exc
        self.run_id = uuid.uuid4().hex[:12]
        self.workspace = Workspace(experiment, device=self.device, cache=self.cache, run_id=self.run_id)

    # ------------------------------------------------------------- executors
    def _worker_setup(self, cache_dir: str | None, cache_enabled: bool) -> WorkerSetup:
        prefixes = {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)}
        paths = [p for p in sys.path if p and os.path.isdir(p)
                 and not any(os.path.realpath(p).startswith(prefix) for prefix in prefixes)]
        return WorkerSetup(config=self.exp.config, file=self.exp.file, device=str(self.device), cache_dir=cache_dir,
                           cache_enabled=cache_enabled, run_id=self.run_id, threads=self.execution.cpus_per_job,
                           sys_path=paths)

    def _devices(self) -> list[str]:
        """Devices the local pool's workers take round-robin: every visible GPU for ``auto``/``cuda``."""
        if self.device.type == "cuda" and self.exp.device in ("auto", "cuda"):
            return [f"cuda:{i}" for i in range(torch.cuda.device_count())]
        return [str(self.device)]

    def make_executor(self, shared_cache_dir: str | None, workspace: Workspace | None = None) -> Executor:
        """The configured executor; ``workspace`` (default: the run's) is the serial one's, and its
        experiment's ``holdout`` reaches the workers (the tuning view of the data)."""
        settings = self.execution
        workspace = workspace or self.workspace
        if settings.executor == "serial":
            return SerialExecutor(workspace)
        cache_dir, enabled = (str(self.cache.directory), True) if self.cache.enabled else (shared_cache_dir, True)
        setup = dataclasses.replace(self._worker_setup(cache_dir, enabled), holdout=workspace.exp.holdout)
        template = {"run_id": self.run_id, "experiment": self.exp.name, "config_hash": self.exp.config_hash,
                    "versions": versions(), "device": str(self.device)}
        if settings.executor == "local":
            return LocalExecutor(setup, settings.pool_size(), self._devices(), settings.max_retries, template)
        from erasure.execution.ray_executor import RayExecutor

        gpus = settings.gpus_per_job if settings.gpus_per_job is not None else float(self.device.type == "cuda")
        return RayExecutor(setup, settings, gpus, template)

    @contextlib.contextmanager
    def _shared_cache(self) -> Iterator[str | None]:
        """Where pool and Ray workers share the run's reference models when the model cache is off:
        a scratch folder in the output directory (held under the run's lock), removed afterwards,
        and at the start of the next run if a killed run left it. None for the serial executor."""
        if self.cache.enabled or self.execution.executor == "serial":
            yield None
            return
        scratch = self.exp.output_dir / ".scratch-models"
        shutil.rmtree(scratch, ignore_errors=True)
        scratch.mkdir(parents=True)
        try:
            yield str(scratch.resolve())
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    @contextlib.contextmanager
    def _executor(self, shared_cache: str | None, workspace: Workspace | None = None,
                  start: bool = True) -> Iterator[Executor | None]:
        """The configured executor (None unless ``start``), closed on the way out."""
        executor = self.make_executor(shared_cache, workspace) if start else None
        try:
            yield executor
        finally:
            if executor is not None:
                executor.close()

    # ------------------------------------------------------------------- run
    def run(self) -> RunReport:
        exp = self.exp
        exp.output_dir.mkdir(parents=True, exist_ok=True)
        try:
            lock = lock_output_dir(exp.output_dir)
        except ConfigError as exc:
            raise exc.in_file(exp.file)
        with lock:  # held through tuning, the jobs and the summary
            if exp.tuning is not None:
                self.tune()
            return self._run()

    def tune(self) -> None:
        """The tuning step the runner was given (``tuner``: :func:`erasure.tuning.protocol.tune`, the
        equal-budget protocol) on the tuning seeds and a validation split, run on this run's
        executor; the tuned methods' entries then carry their best parameters."""
        exp = self.exp
        if self.tuner is None:
            raise ConfigError("this config tunes its unlearners: run it with the erasure command, or give the "
                              "Runner tuner=erasure.tuning.protocol.tune", "tuning", exp.file)
        view = dataclasses.replace(exp, seeds=list(exp.tuning.seeds), holdout=exp.tuning.validation_fraction)
        workspace = Workspace(view, device=self.device, cache=self.cache, run_id=self.run_id)
        with self._shared_cache() as shared_cache, torch_threads(self.execution.cpus_per_job), \
                user_interrupts_marked(), self._executor(shared_cache, workspace) as executor:
            exp.unlearners = self.tuner(exp, view, executor.run, self.out)
        self.workspace.entries = {e.label: e for e in exp.unlearners}

    def _run(self) -> RunReport:
        exp = self.exp
        resolved = exp.resolved_config()
        schema = os.path.relpath(SCHEMA_PATH, exp.output_dir.resolve())
        resolved = {"$schema": schema, **{k: v for k, v in resolved.items() if k != "$schema"}}
        resolved["execution"] = self.execution.as_dict()
        info = RunInfo(exp.output_dir, exp.name, self.run_id, exp.config_hash, resolved, self.overwrite)
        writers = list(exp.writers)
        if not any(isinstance(w, CSVWriter) for w in writers):
            writers.insert(0, CSVWriter())
        csv_writer = next(w for w in writers if isinstance(w, CSVWriter))
        opened: list = []
        try:  # the CSV writer holds the output directory's lock from open to close
            try:
                for w in writers:
                    w.open(info)
                    opened.append(w)
            except ConfigError as exc:
                raise exc.in_file(exp.file)
            atomic_write_text(exp.output_dir / "config.resolved.json", json.dumps(resolved, indent=2))
            report = self._run_jobs(writers, csv_writer)
            rows = [r for r in read_rows(csv_writer.path)
                    if r["config_hash"] == exp.config_hash and job_key(r) in report.current]
            records, table = summarize_run(rows, exp.output_dir, resolved, exp.evaluators)
        finally:
            for w in opened:
                try:
                    w.close()
                except Exception as exc:  # a writer's cleanup must not hide the results
                    log.warning("writer %s failed to close: %s", type(w).__name__, exc)
        self.out(table)
        self.out(f"\nResults: {csv_writer.path}  ({report.written} rows written, {report.errors} errors)")
        for r in rows:
            if r["status"] == "error" and r["run_id"] == self.run_id:
                self.out(f"  error: seed {r['seed']} {r['unlearner']} {r['metric']}: {r['error']}")
        return RunReport(csv_writer.path, report.written, report.errors, report.skipped, records)

    def _run_jobs(self, writers: list, csv_writer: CSVWriter) -> "_Tally":
        """Plan the unfinished jobs, run them on the executor and write their rows as they arrive."""
        from tqdm import tqdm

        exp = self.exp
        parameters = {e.label: params_json(e.unlearner) for e in exp.unlearners}
        plan = make_plan(exp, parameters, csv_writer.finished)
        with self._shared_cache() as shared_cache, torch_threads(self.execution.cpus_per_job), \
                user_interrupts_marked(), self._executor(shared_cache, start=len(plan) > 0) as executor:
            # a pool starts its workers first: they import while the data is prepared here
            states = self.workspace.prepare_seeds()  # a bad forget set or data fails here, before any training
            if exp.checkpoint is not None:  # a checkpoint that does not fit fails here too
                try:
                    self.workspace.reference(states[0], "original")
                except ConfigError as exc:
                    raise exc.in_file(exp.file)
                for event in self.workspace.events:
                    self.out(event)
            self._save_indices(states)
            if plan.skipped:
                self.out(f"Skipping {plan.skipped} finished job(s) found in {csv_writer.path} "
                         "(--overwrite reruns them).")
            tally = _Tally(skipped=plan.skipped, current={job_key({"seed": s, "unlearner": label, "parameters": p,
                                                                    "unlearning_seed": u})
                                                          for s in exp.seeds for label, p in parameters.items()
                                                          for u in exp.unlearning_seeds or [None]})
            lines = not (self.progress and sys.stderr.isatty())
            bar = tqdm(total=len(plan), desc=exp.name, unit="job", disable=lines, file=sys.stderr, leave=False)
            try:
                if executor is not None:
                    executor.run(plan, lambda result: self._on_result(result, writers, tally, bar, lines, len(plan)))
            finally:
                bar.close()
        return tally

    def _on_result(self, result: JobResult, writers: list, tally: "_Tally", bar: Any, lines: bool, total: int) -> None:
        """Write one finished task's rows (and log it); a fatal result stops the run."""
        if result.fatal:
            raise RunError(result.fatal)
        if lines:
            for event in result.events:
                self.out(event)
        if not isinstance(result.task, UnlearnTask):
            return
        tuned = self.workspace.entries[result.task.label].tuned if result.rows else None
        if tuned is not None:  # where the parameters came from
            first = result.rows[0]
            result.rows += [{**first, "metric": metric, "value": value, "step": None, "request": None, "status": "ok",
                             "error": ""} for metric, value in (("tuning_objective", tuned.value),
                                                                ("tuning_trials", float(tuned.trials)))]
        self._write(writers, result.rows)
        self._save_artifacts(result)
        tally.errors += sum(r["status"] == "error" for r in result.rows)
        tally.written += len(result.rows)
        tally.done += 1
        bar.update()
        bar.set_postfix_str(result.task.describe())
        if lines:
            self.out(f"[{tally.done}/{total}] {result.task.describe()}: {result.seconds:.1f} s, "
                     f"{headline(_last_request(result.rows))}")

    def _write(self, writers: list, rows: list[dict[str, Any]]) -> None:
        for w in list(writers):
            try:
                w.write(rows)
            except Exception as exc:
                if isinstance(w, CSVWriter):
                    raise
                log.warning("writer %s failed and is switched off: %s", type(w).__name__, exc)
                writers.remove(w)

    def _save_indices(self, states: list[Any]) -> None:
        """Each seed's partitions as ``indices/seed<N>.json`` (``IndexForget(path=...)`` and
        ``data.split.path`` read them back, so another run splits and forgets alike)."""
        folder = self.exp.output_dir / "indices"
        folder.mkdir(exist_ok=True)
        for state in states:
            final = state.requests[-1].evaluation
            record = {"seed": state.seed, "dataset": final.dataset.name, "fingerprint": state.data_key,
                      **{name: index.tolist() for name, index in final.indices.items()}}
            if len(state.requests) > 1:
                record["requests"] = [r.unlearning["forget"].tolist() for r in state.requests]
            atomic_write_text(folder / f"seed{state.seed}.json", json.dumps(record))

    def _save_artifacts(self, result: JobResult) -> None:
        """Per-example arrays, as ``artifacts/seed<seed>/<unlearner>/<name>.npy`` listed in ``artifacts/index.csv``."""
        for name, array in sorted(result.artifacts.items()):
            save_artifact(self.exp.output_dir, result.task.seed, result.task.label, name, np.asarray(array))


def _last_request(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows of a job's last deletion request (all of them with a single request)."""
    last = max((r["request"] for r in rows if r.get("request") is not None), default=None)
    return [r for r in rows if r.get("request") == last or r["status"] == "error"]
