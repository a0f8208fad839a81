"""``hwnas train --ray``: the long training (``evaluators.longtrain.train_model``) inside a
Ray actor, on a local cluster or the one at an address.

The actor writes the model folder and its checkpoints where the driver asked (a filesystem
the driver and the worker share, as the search's workdir already is). Resume is
``train_model``'s own: a checkpoint of the same run in the folder is picked up, so

* a killed worker: Ray restarts the actor (``max_restarts``) and retries the task
  (``max_task_retries``); the new process resumes from the last checkpoint;
* a killed driver: its actor goes with it (a local cluster is reaped by ``nas.reaper``);
  the same command again resumes from the last checkpoint;

and either way the weights are those of a run never interrupted (``longtrain``'s
determinism: batches and noise are functions of the seed and the step).

Progress: the actor runs two calls at once (``max_concurrency=2``): ``train``, and
``progress(since)``, which the driver polls for the steps done since its last look, from
whichever process now runs the training.
"""
from __future__ import annotations

import os
from collections.abc import Callable

from core.errors import HwnasError, one_line
from nas.workers import RayCluster, WorkerError

Callback = Callable[[int, int, float], None]


class _Trainer:
    """One Ray actor: trains one model and keeps its progress events for the driver."""

    def __init__(self):
        self.events: list[tuple[str, int, int, float]] = []  # (kind, step, total, loss)

    def train(self, job: dict) -> dict:
        from evaluators.longtrain import train_model

        def log(kind):
            return lambda step, total, loss: self.events.append((kind, step, total, float(loss)))

        record = train_model(**job, progress=log("pretrain"), on_step=log("train"))
        return {**record, "worker": self.where()}

    def progress(self, since: int) -> tuple[int, list]:
        return os.getpid(), self.events[since:]

    def where(self) -> dict:
        import ray

        return {"pid": os.getpid(), "node": ray.util.get_node_ip_address(),
                "gpu_ids": [str(g) for g in ray.get_gpu_ids()],
                "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES")}


class RemoteTrainer:
    """Trains in Ray actors asking for ``gpus`` GPUs each, on the cluster at ``address`` (else
    a local one, started on entry and stopped on exit). Entering checks that the cluster has
    the GPUs, before any work."""

    def __init__(self, address: str | None = None, gpus: float = 0.0, retries: int = 2, max_restarts: int = 2):
        if gpus < 0:
            raise WorkerError(f"--gpus {gpus:g}: must be 0 or more")
        self.address, self.gpus, self.retries, self.max_restarts = address, gpus, retries, max_restarts
        self.cluster = RayCluster(address, num_cpus=1)

    def __enter__(self) -> RemoteTrainer:
        self.cluster.start()
        have = self.cluster.gpus()
        if self.gpus and have < self.gpus:
            self.cluster.close()
            where = f"the Ray cluster at {self.address}" if self.address else "this machine's Ray cluster"
            raise WorkerError(f"--gpus {self.gpus:g}: {where} has {f'only {have:g} GPU' if have else 'no GPUs'}; "
                              "give --gpus 0 to train on a CPU")
        return self

    def __exit__(self, *exc) -> None:
        self.cluster.close()

    def train(self, job: dict, on_step: Callback | None = None, on_pretrain: Callback | None = None,
              on_worker: Callable[[int], None] | None = None, poll_s: float = 0.25) -> dict:
        """Run ``train_model(**job)`` in a new actor; the record it returns, with ``worker``
        (pid, node, the GPUs Ray assigned). ``on_step`` and ``on_pretrain`` get the actor's
        progress in this process; ``on_worker(pid)`` each process that trains (a second one:
        the first died and this one resumes)."""
        import ray
        from ray.exceptions import RayActorError, RayTaskError

        actor = ray.remote(num_cpus=1, num_gpus=self.gpus, max_restarts=self.max_restarts,
                           max_task_retries=self.retries, max_concurrency=2)(_Trainer).remote()
        try:
            done = actor.train.remote(job)
            pid, seen, finished = None, 0, False
            while not finished:
                finished = bool(ray.wait([done], timeout=poll_s)[0])
                try:
                    now, events = ray.get(actor.progress.remote(seen))
                    if now != pid:  # a new process (the first, or a restarted one): its events from the start
                        pid, seen = now, 0
                        if on_worker is not None:
                            on_worker(pid)
                        events = ray.get(actor.progress.remote(0))[1]
                except RayActorError:  # the worker died; Ray restarts it and retries the training
                    continue
                seen += len(events)
                for kind, step, total, loss in events:
                    callback = on_step if kind == "train" else on_pretrain
                    if callback is not None:
                        callback(step, total, loss)
            try:
                return ray.get(done)
            except RayTaskError as exc:
                if isinstance(exc.cause, HwnasError):
                    raise exc.cause from None
                raise WorkerError(f"training on the Ray worker failed: {one_line(exc.cause, with_type=True)}") \
                    from None
            except RayActorError as exc:
                raise WorkerError(f"the Ray worker died {self.max_restarts + 1} times ({one_line(exc)[:160]}); "
                                  "run the same command again to resume from the last checkpoint") from None
        finally:
            ray.kill(actor, no_restart=True)
