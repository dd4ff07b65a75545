"""Executors: where the tasks of a plan run.

* :class:`SerialExecutor` runs them one after another in the driver's process.
* :class:`LocalExecutor` runs them on a pool of worker processes on this machine; each worker
  builds its own :class:`~erasure.execution.workspace.Workspace` from the config once and then
  takes one task at a time, so the driver always knows which task a worker holds: a worker that
  dies costs that task only (it is retried ``max_retries`` times, then becomes error rows).
* :class:`~erasure.execution.ray_executor.RayExecutor` runs them as Ray tasks.

Every executor starts a seed's jobs only once that seed's reference models are built, and hands
each :class:`~erasure.execution.jobs.JobResult` to the driver as soon as it arrives. The driver
stays the only writer of results.
"""
from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from multiprocessing.connection import wait
from typing import Any, Callable, Iterator

from erasure.execution.jobs import JobResult, Plan, ReferenceTask, Task
from erasure.execution.worker import WorkerSetup, workspace_from_setup

log = logging.getLogger("erasure")
OnResult = Callable[[JobResult], None]


def dead_worker_rows(task: Task, run: dict[str, Any], reason: str) -> JobResult:
    """Error rows for a job whose worker process died (or a fatal result for a reference task)."""
    if isinstance(task, ReferenceTask):
        return JobResult(task, fatal=f"{task.describe()}: {reason}")
    row = {**run, "seed": task.seed, "unlearning_seed": task.unlearning_seed, "unlearner": task.label,
           "parameters": task.parameters, "metric": "unlearn",
           "value": None, "step": None, "status": "error", "error": reason, "wall_seconds": None}
    return JobResult(task, rows=[row])


def ordered_tasks(plan: Plan) -> Iterator[tuple[Task, int]]:
    """Tasks with the seed they wait for (-1: none): every seed's reference models first (the long
    tasks that unblock the others), then the jobs, seed by seed."""
    for seed in plan.seeds:
        for ref in plan.references.get(seed, []):
            yield ref, -1
    for seed in plan.seeds:
        for job in plan.jobs[seed]:
            yield job, seed


class Executor:
    """Runs the tasks of a plan and hands each result to ``on_result`` as it arrives."""

    name = "executor"

    def run(self, plan: Plan, on_result: OnResult) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Release workers or cluster connections."""


class SerialExecutor(Executor):
    """One task after another in this process, on the driver's workspace."""

    name = "serial"

    def __init__(self, workspace: Any):
        self.workspace = workspace

    def run(self, plan: Plan, on_result: OnResult) -> None:
        for task, _ in ordered_tasks(plan):
            on_result(self.workspace.execute(task))


# ------------------------------------------------------------------ local pool
def _exit_with(parent: int) -> None:
    """Exit this process as soon as ``parent`` is no longer its parent (the driver was killed).

    A killed driver closes no pipe its workers would notice: forked workers hold copies of each
    other's pipe ends, and a busy worker reads none. Without this, they would run on, orphaned."""
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="erasure-driver-watch", daemon=True).start()


def _worker_main(conn: Any, setup: WorkerSetup, driver: int) -> None:
    """A pool worker: build the workspace once, then run tasks until told to stop (or until the
    ``driver`` process is gone)."""
    _exit_with(driver)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(setup.threads)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's: it stops the workers
    for path in reversed(setup.sys_path):
        if path not in sys.path:
            sys.path.insert(0, path)
    try:
        workspace = workspace_from_setup(setup)
    except BaseException as exc:  # noqa: BLE001 - reported to the driver, which stops the run
        conn.send(("init_error", f"{type(exc).__name__}: {exc}"))
        return
    conn.send(("ready", None))
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):  # the driver is gone
            return
        if task is None:
            return
        conn.send(("result", workspace.execute(task)))


def start_method(devices: list[str]) -> str:
    """How pool workers start: forked on Linux when every worker computes on the CPU (no import cost;
    the driver has touched no GPU), else spawned (CUDA cannot be used in a forked child; macOS and
    Windows do not fork safely)."""
    cpu_only = all(d.startswith("cpu") for d in devices)
    return "fork" if sys.platform.startswith("linux") and cpu_only else "spawn"


@dataclass
class _Worker:
    process: Any
    conn: Any
    device: str
    task: Task | None = None


class LocalExecutor(Executor):
    """A pool of ``workers`` processes on this machine (forked on a Linux CPU, else spawned: see
    :func:`start_method`).

    ``devices`` are assigned to workers round-robin (e.g. ``["cuda:0", "cuda:1"]``); ``run``
    is the row template used for error rows of a job whose worker died.
    """

    name = "local"

    def __init__(self, setup: WorkerSetup, workers: int, devices: list[str], max_retries: int, run: dict[str, Any]):
        self.setup = setup
        self.size = workers
        self.devices = devices
        self.max_retries = max_retries
        self.run_template = run
        self.context = multiprocessing.get_context(start_method(devices))
        self.workers: list[_Worker] = []
        self.starting = [self._spawn(slot) for slot in range(self.size)]  # they import while the driver prepares

    def _spawn(self, slot: int) -> _Worker:
        device = self.devices[slot % len(self.devices)]
        setup = WorkerSetup(**{**self.setup.__dict__, "device": device})
        parent, child = self.context.Pipe()
        process = self.context.Process(target=_worker_main, args=(child, setup, os.getpid()), daemon=True,
                                       name=f"erasure-worker-{slot}")
        process.start()
        child.close()
        return _Worker(process, parent, device)

    @staticmethod
    def _await_ready(worker: _Worker) -> None:
        try:
            kind, detail = worker.conn.recv()
        except (EOFError, OSError):
            kind, detail = "init_error", f"it exited with code {worker.process.exitcode}"
        if kind != "ready":
            from erasure.execution.workspace import RunError

            raise RunError(f"a worker process could not start: {detail}")

    def _restart(self, slot: int) -> None:
        self.workers[slot] = self._spawn(slot)
        self._await_ready(self.workers[slot])

    def run(self, plan: Plan, on_result: OnResult) -> None:
        queue: deque[tuple[Task, int]] = deque(ordered_tasks(plan))
        waiting = {seed: len(plan.references.get(seed, [])) for seed in plan.seeds}
        attempts: dict[Task, int] = {}
        for worker in self.starting:  # started together, so their imports overlap
            self._await_ready(worker)
        self.workers += self.starting
        self.starting = []

        def next_task() -> Task | None:
            for i, (task, seed) in enumerate(queue):
                if seed < 0 or waiting[seed] == 0:
                    del queue[i]
                    return task
            return None

        def finished(task: Task, result: JobResult) -> None:
            if isinstance(task, ReferenceTask):
                waiting[task.seed] -= 1
            on_result(result)

        while queue or any(w.task is not None for w in self.workers):
            for worker in self.workers:
                if worker.task is None and queue:
                    worker.task = next_task()
                    if worker.task is not None:
                        worker.conn.send(worker.task)
            busy = [w for w in self.workers if w.task is not None]
            ready = set(wait([w.conn for w in busy] + [w.process.sentinel for w in busy]))
            for slot, worker in enumerate(self.workers):
                if worker.task is None or not ({worker.conn, worker.process.sentinel} & ready):
                    continue
                task, result = worker.task, None
                try:
                    if worker.conn.poll():
                        _, result = worker.conn.recv()
                except (EOFError, OSError):
                    pass
                if result is not None:
                    worker.task = None
                    finished(task, result)
                    continue
                if worker.process.is_alive():
                    continue
                code = worker.process.exitcode
                attempts[task] = attempts.get(task, 0) + 1
                log.warning("worker %s died (exit code %s) running %s", worker.process.name, code, task.describe())
                self._restart(slot)
                if attempts[task] <= self.max_retries:
                    queue.appendleft((task, -1))
                else:
                    reason = f"the worker process died (exit code {code}) {attempts[task]} time(s) running this job"
                    finished(task, dead_worker_rows(task, self.run_template, reason))

    def close(self) -> None:
        """Stop the workers: idle ones (after a run) have nothing to lose, so they are not waited for."""
        self.workers += self.starting
        self.starting = []
        for worker in self.workers:
            worker.process.terminate()
        for worker in self.workers:
            worker.process.join(timeout=5)
            worker.conn.close()
        self.workers = []
