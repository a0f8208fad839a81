"""Worker pools: where candidates are trained and scored.

A pool holds prepared runners (an ``evaluators`` ``CandidateRunner``: dataset and frozen
backbone loaded once) and evaluates jobs — an architecture, its parent's temporal
weights, K steps, a seed — returning each evaluator result (with the child's weights) unchanged, in the
order they finish. ``RayPool`` keeps one runner per Ray actor; parent weights go through
the object store once per round (``ray.put``) and travel as references. A crashed actor
is restarted and its task retried (``max_restarts``/``max_task_retries``); a candidate
that runs past ``timeout_s`` has its actor killed and replaced, and is recorded as failed
with the reason. ``InlinePool`` runs the same interface in this process, for debugging.

GPUs: with ``gpus_per_worker`` g > 0 each actor asks Ray for g GPUs (fractional allowed:
0.5 puts two actors on one GPU), so a node with N GPUs runs N/g candidates at once. Ray
sets each actor's ``CUDA_VISIBLE_DEVICES`` to the GPU it assigned, so a runner on device
``cuda`` trains there (``ray.get_gpu_ids()`` names it; ``RayPool.devices()`` reports it).
A cluster with fewer GPUs than one actor needs is refused at start; with fewer than all
actors need, the pool starts as many actors as fit (Ray would leave the rest waiting).
"""
from __future__ import annotations

import os
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from core.errors import HwnasError, one_line
from evaluators.runner import CandidateResult
from search_spaces.architecture import Architecture


class WorkerError(HwnasError):
    """The pool cannot start (e.g. an unreachable Ray address)."""


@dataclass
class Job:
    key: str  # the candidate's id
    arch: Architecture
    steps: int
    seed: int
    parent_state: dict | None = None  # temporal weights to start from
    wall_s: float = 0.0  # dispatch to result, set by the pool
    task: str = "train"  # "train": runner.run; else a task of evaluators.supernet.TASKS
    options: dict | None = None  # the task's options
    timeout_s: float | None = None  # this job's limit on a Ray worker (None: the pool's, search.timeout_s)
    timeout_key: str = "search.timeout_s"  # the setting that limit comes from, for the failure's reason


def failed(job: Job, reason: str) -> CandidateResult:
    return CandidateResult(str(job.arch), "failed", reason, None)


def _run(runner, job_arch: Architecture, parent_state, steps: int, seed: int, task: str = "train",
         options: dict | None = None) -> CandidateResult:
    try:
        if task != "train":  # e.g. a MobileVD supernet segment: a function of the prepared runner
            from evaluators.supernet import TASKS

            return TASKS[task](runner, job_arch, parent_state, steps, seed, options or {})
        return runner.run(job_arch, parent_state, steps, seed)
    except Exception as exc:  # a runner should not raise, but a bug must not end the campaign
        return CandidateResult(str(job_arch), "failed", one_line(exc, with_type=True), None)


class WorkerPool:
    """Evaluates jobs; ``evaluate`` yields ``(job, CandidateResult)`` as each finishes, the
    result as the evaluator returned it (or failed with the pool's reason: a crash, a
    timeout). ``make_runner`` builds a runner in this process (the engine prepares the
    data and backbone with it once, before the workers start)."""

    workers = 1

    def __init__(self, make_runner: Callable[[], Any]):
        self.make_runner = make_runner

    def __enter__(self) -> "WorkerPool":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def start(self) -> None:
        pass

    def close(self) -> None:
        pass

    def evaluate(self, jobs: list[Job]) -> Iterator[tuple[Job, CandidateResult]]:
        raise NotImplementedError


class InlinePool(WorkerPool):
    """The same interface in this process, one job after another (no timeout)."""

    def __init__(self, make_runner: Callable[[], Any]):
        super().__init__(make_runner)
        self.runner = None

    def start(self) -> None:
        self.runner = self.make_runner()
        self.runner.prepare()

    def evaluate(self, jobs):
        for job in jobs:
            t0 = time.perf_counter()
            result = _run(self.runner, job.arch, job.parent_state, job.steps, job.seed, job.task, job.options)
            job.wall_s = time.perf_counter() - t0
            yield job, result


def check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """Fail fast on a Ray address nobody listens at (``ray.init`` would retry for minutes)."""
    if address == "auto":
        return
    hostport = address.split("://", 1)[-1]
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise WorkerError(f"Ray address {address!r} is not HOST:PORT (or ray://HOST:PORT, or auto)")
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise WorkerError(f"Ray address {address!r} is unreachable ({exc.strerror or exc}); "
                          "is `ray start --head` running there?") from None


def check_local_gpus(gpus_per_worker: float) -> None:
    """Before any work on a local Ray cluster: one worker's GPU share must exist on this machine
    (the driver prepares the data and backbone on ``train.device`` too)."""
    if gpus_per_worker <= 0:
        return
    import torch

    have = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if have < gpus_per_worker:
        what = f"only {have} GPU" if have else "no GPUs"
        raise WorkerError(f"search.gpus_per_worker {gpus_per_worker:g}: this machine's Ray cluster has {what}; "
                          "set it to 0 to train on CPUs, or give --ray-address of a cluster with GPUs")


class _Actor:
    """One worker process: a prepared runner, one thread of torch."""

    def __init__(self, make_runner):
        import torch

        torch.set_num_threads(1)
        self.runner = make_runner()
        self.runner.prepare()

    def run(self, arch, parent_state, steps, seed, task="train", options=None):
        return _run(self.runner, arch, parent_state, steps, seed, task, options)

    def pid(self) -> int:
        return os.getpid()

    def device(self) -> dict:
        """Where this actor trains: the GPUs Ray assigned it and what torch sees."""
        import ray
        import torch

        return {"pid": os.getpid(), "gpu_ids": [str(g) for g in ray.get_gpu_ids()],
                "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
                "torch_cuda_devices": torch.cuda.device_count() if torch.cuda.is_available() else 0,
                "runner_device": str(getattr(self.runner, "device", "cpu"))}


class RayCluster:
    """The Ray cluster work runs on: the one at ``address`` (joined), or a local one started
    here and stopped by ``close``. A local cluster gets its own temporary directory and a
    watchdog (``nas.reaper``) started before it, so a kill -9 of this process leaves none of
    its processes behind. When Ray is already initialised in this process (a test's cluster,
    a caller's), it is used as it is and left running."""

    def __init__(self, address: str | None = None, num_cpus: int = 1):
        self.address, self.num_cpus = address, num_cpus
        self._started_ray = False
        self._reaper = None

    @property
    def owned(self) -> bool:
        """A local cluster this object started (``close`` ends it, and all on it)."""
        return self._started_ray and not self.address

    def start(self) -> None:
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
        import ray

        if self.address:
            check_reachable(self.address)
        if ray.is_initialized():
            return
        kwargs = dict(include_dashboard=False, log_to_driver=False, configure_logging=False)
        try:
            if self.address:
                ray.init(address=self.address, **kwargs)
            else:
                from nas import reaper

                root = tempfile.mkdtemp(prefix="hwnas_ray_", dir="/tmp")  # short: Ray's socket paths
                self._reaper = reaper.start(root)
                ray.init(address="local", num_cpus=self.num_cpus, _temp_dir=root, **kwargs)
        except (ConnectionError, RuntimeError, TimeoutError, ValueError) as exc:
            where = f"--ray-address / search.ray_address {self.address!r}" if self.address else "a local Ray cluster"
            raise WorkerError(f"cannot start {where}: {one_line(exc)}") from None
        self._started_ray = True

    def close(self) -> None:
        if not self._started_ray:
            return
        import ray

        ray.shutdown()
        self._started_ray = False
        if self._reaper is not None:  # it exits by itself once the cluster is gone; reap it
            try:
                self._reaper.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._reaper.kill()
                self._reaper.wait()
            self._reaper = None

    def gpus(self) -> float:
        import ray

        return float(ray.cluster_resources().get("GPU", 0.0))


class RayPool(WorkerPool):
    def __init__(self, make_runner: Callable[[], Any], workers: int = 2, address: str | None = None,
                 timeout_s: float = 1800.0, retries: int = 2, max_restarts: int = 2, cpus_per_worker: float = 1.0,
                 gpus_per_worker: float = 0.0):
        super().__init__(make_runner)
        if gpus_per_worker < 0:
            raise WorkerError(f"search.gpus_per_worker {gpus_per_worker:g}: must be 0 or more")
        self.gpus_per_worker = gpus_per_worker
        self.notes: list[str] = []
        self.workers, self.address = workers, address
        self.timeout_s, self.retries, self.max_restarts = timeout_s, retries, max_restarts
        self.cpus_per_worker = cpus_per_worker
        self.actors: list = []
        self._cluster = RayCluster(address, num_cpus=max(1, int(workers * cpus_per_worker)))

    def start(self) -> None:
        import ray

        self._cluster.start()
        if self.gpus_per_worker:
            self._fit_gpus()
        self._remote = ray.remote(num_cpus=self.cpus_per_worker, num_gpus=self.gpus_per_worker,
                                  max_restarts=self.max_restarts, max_task_retries=self.retries)(_Actor)
        self.actors = [self._new_actor() for _ in range(self.workers)]

    def _fit_gpus(self) -> None:
        total = self._cluster.gpus()
        if total < self.gpus_per_worker:
            where = f"the Ray cluster at {self.address}" if self.address else "this machine's Ray cluster"
            have = f"only {total:g} GPU" if total else "no GPUs"
            self.close()
            raise WorkerError(f"search.gpus_per_worker {self.gpus_per_worker:g}: {where} has {have}; "
                              "set it to 0 to train on CPUs")
        fit = int(total / self.gpus_per_worker + 1e-9)
        if fit < self.workers:
            self.notes.append(f"search.workers {self.workers} at {self.gpus_per_worker:g} GPU each needs "
                              f"{self.workers * self.gpus_per_worker:g} GPUs, the cluster has {total:g}: "
                              f"{fit} workers")
            import warnings

            warnings.warn(self.notes[-1], stacklevel=2)
            self.workers = fit

    def devices(self) -> list[dict]:
        """Each actor's assigned GPUs and device (see ``_Actor.device``)."""
        import ray

        return ray.get([a.device.remote() for a in self.actors])

    def _new_actor(self):
        return self._remote.remote(self.make_runner)

    def close(self) -> None:
        import ray

        if not self._cluster.owned:
            # Another's cluster lives on: free what the actors hold. On our own local cluster the
            # shutdown ends them; killing each first has Ray's driver print, on stdout, that their
            # running tasks "will be retried".
            for actor in self.actors:
                ray.kill(actor, no_restart=True)
        self.actors = []
        self._cluster.close()

    def pids(self) -> list[int]:
        import ray

        return ray.get([a.pid.remote() for a in self.actors])

    def _limit(self, job: Job) -> float:
        return self.timeout_s if job.timeout_s is None else job.timeout_s

    def evaluate(self, jobs):
        import ray
        from ray.exceptions import RayError

        parents: dict[int, Any] = {}  # one object-store copy of each parent's weights
        queue = list(jobs)
        idle = list(range(len(self.actors)))
        running: dict[Any, tuple[Job, int, float]] = {}
        while queue or running:
            while queue and idle:
                job, slot = queue.pop(0), idle.pop(0)
                ref_state = None
                if job.parent_state is not None:
                    if id(job.parent_state) not in parents:
                        parents[id(job.parent_state)] = ray.put(job.parent_state)
                    ref_state = parents[id(job.parent_state)]
                ref = self.actors[slot].run.remote(job.arch, ref_state, job.steps, job.seed, job.task, job.options)
                running[ref] = (job, slot, time.monotonic())
            now = time.monotonic()
            next_deadline = min(t + self._limit(job) for job, _, t in running.values())
            ready, _ = ray.wait(list(running), num_returns=1, timeout=max(0.0, next_deadline - now))
            for ref in ready:
                job, slot, t0 = running.pop(ref)
                try:
                    result = ray.get(ref)
                except RayError as exc:
                    result = failed(job, f"worker crashed after {self.retries} retries: "
                                         f"{one_line(exc, with_type=True)}")
                    self.actors[slot] = self._new_actor()  # a dead actor (restarts spent) is replaced
                job.wall_s = time.monotonic() - t0
                idle.append(slot)
                yield job, result
            now = time.monotonic()
            for ref, (job, slot, t0) in list(running.items()):
                if now - t0 >= self._limit(job):
                    del running[ref]
                    ray.kill(self.actors[slot], no_restart=True)
                    self.actors[slot] = self._new_actor()
                    idle.append(slot)
                    job.wall_s = now - t0
                    yield job, failed(job, f"timed out after {self._limit(job):g} s ({job.timeout_key})")
