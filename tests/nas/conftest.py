"""A cheap, deterministic stand-in objective for the strategy contract tests.

Quality is a fixed function of the architecture (each slot/operator has its own gain,
with diminishing returns per extra layer, plus a small seed-dependent wobble); latency
and memory come from the operators' analytic cost (``op_class(op).cost(shape)``). It
replaces the trainer only: strategies, Optuna samplers and the space are the real ones.
"""
from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import time
import zlib
from pathlib import Path

import pytest
import yaml

from core.budgets import Budgets
from core.config import load_yaml
from evaluators.runner import CandidateResult
from nas.strategies import Cost, Outcome, SearchState
from search_spaces.ops.base import op_class
from search_spaces.space import SearchSpace, SpaceConfig

BACKBONE_MS, BACKBONE_BYTES = 5.0, 4 * 2**20


@pytest.fixture(scope="session")
def tiny_space(tiny_config_path):
    return SearchSpace(SpaceConfig.from_dict(load_yaml(tiny_config_path)["space"]))


def analytic_cost(space, arch) -> Cost:
    latency, memory = BACKBONE_MS, BACKBONE_BYTES
    for slot_name, layer in arch.items():
        c = op_class(layer.op).cost(space.slot(slot_name).shape(layer.op))
        latency += layer.count * c.flops / 2e6  # 2 GFLOP/s
        memory += layer.count * (4 * c.params + c.activation_bytes)
    return Cost(latency, memory)


def outcome(candidate, quality: float | None, cost: Cost, reason: str = "") -> Outcome:
    """What the engine hands a strategy: the evaluator's result (failed when quality is None)
    and the predicted cost."""
    status = "ok" if quality is not None else "failed"
    return Outcome(candidate, CandidateResult(str(candidate.arch), status, reason or None, quality), cost)


def synthetic_quality(arch, seed: int) -> float:
    q = 0.0
    for slot_name, layer in arch.items():
        gain = (zlib.crc32(f"{slot_name}/{layer.op}".encode()) % 1000) / 1000.0
        q += gain * (1 - 0.5 ** layer.count)
    return q + random.Random(seed).gauss(0.0, 0.005)


def synthetic_importances(options: dict, seed: int) -> dict:
    rng = random.Random(seed)
    out = {}
    for key in options["blocks"]:
        head = key.rsplit(".", 1)[0]
        slot, op = head.split("_", 1)
        gain = (zlib.crc32(f"{slot}/{op}".encode()) % 1000) / 1000.0
        out[f"importance/{key}"] = min(1.0, max(0.0, 0.5 + 0.1 * (options["segment"] + 1) * (gain - 0.5)
                                                + rng.gauss(0.0, 0.01)))
    return out


class World:
    """Budgets that the full architecture breaks but most small ones meet."""

    def __init__(self, space, latency_ms=20.0, memory_mib=None):
        self.space = space
        self.budgets = Budgets(latency_ms=latency_ms, memory_mib=memory_mib)
        self.proposed = []

    def state(self, steps_left=None) -> SearchState:
        return SearchState(self.space, lambda a: analytic_cost(self.space, a), self.budgets, steps_left=steps_left)

    def evaluate(self, candidates) -> list[Outcome]:
        out = []
        for c in candidates:
            self.proposed.append(c)
            cost = analytic_cost(self.space, c.arch)
            o = outcome(c, synthetic_quality(c.arch, c.seed), cost)
            if c.task == "supernet":  # a MobileVD segment: importances drift towards each block's gain
                o.result.breakdown.update(synthetic_importances(c.task_options, c.seed))
            out.append(o)
        return out

    def drive(self, strategy, max_rounds=30, max_train_steps=3000) -> list[Outcome]:
        outcomes, used = [], 0
        for _ in range(max_rounds):
            batch = strategy.propose(self.state(max_train_steps - used))
            if not batch:
                break
            used += sum(c.steps for c in batch)
            results = self.evaluate(batch)
            strategy.update(results)
            outcomes += results
        return outcomes


@pytest.fixture
def world(tiny_space):
    return World(tiny_space)


# Real campaigns: a small subset of the tiny experiment ------------------------------------

HWNAS = [sys.executable, "-m", "nas.cli"]
RAY = str(Path(sys.executable).with_name("ray"))


def small_config(path: Path, tiny_config_path, workdir, lut=None, search=None, budgets=None, rescore=None) -> Path:
    """Two slots, two operators, one layer each; three training steps per candidate; the
    final stage only when ``rescore`` is given."""
    cfg = yaml.safe_load(open(tiny_config_path))
    cfg["space"].update(slots=["down0", "mid"], ops=["conv1d", "self_attn1d"], max_layers=1)
    cfg["data"] = {"videos": 48, "val_videos": 8}
    cfg["train"] = {"steps": 3, "batch": 2, "pretrain": {"steps": 30, "batch": 8}}
    cfg["evaluator"] = {"name": "flow_loss", "options": {"val_clips": 4, "t_values": [0.5]}}
    cfg["lut"] = {"warmup": 1, "repeats": 3, **({"path": str(lut)} if lut else {})}
    cfg["budgets"] = budgets or {}
    cfg["search"] = {"strategy": "snapgen", "workers": 2, "workdir": str(workdir), "timeout_s": 300,
                     **(search or {})}
    cfg["rescore"] = rescore or {}
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture(scope="session")
def work(tmp_path_factory):
    """Data and pre-trained backbone shared by every campaign of the session."""
    return tmp_path_factory.mktemp("hwnas_work")


@pytest.fixture(scope="session")
def small_lut(tmp_path_factory, tiny_config_path, work):
    from lookup_tables import build_table
    from nas.config import Experiment
    from search_spaces.space import SearchSpace

    d = tmp_path_factory.mktemp("lut")
    exp = Experiment.load(small_config(d / "c.yaml", tiny_config_path, work))
    path = d / "small.parquet"
    build_table(SearchSpace(exp.space), exp.lut, path, progress=False)
    return path


def hwnas(*args, timeout=300, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(HWNAS + [str(a) for a in args], capture_output=True, text=True, timeout=timeout, **kw)


@pytest.fixture(scope="module")
def ray_cluster():
    """A real multi-process Ray cluster on this machine (head on loopback, 2 CPUs)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, RAY_AUTH_MODE="disabled")
    proc = subprocess.Popen([RAY, "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}",
                             "--num-cpus=2", "--include-dashboard=false", "--disable-usage-stats", "--block"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True)
    address = f"127.0.0.1:{port}"
    CLUSTER_PIDS[address] = proc.pid
    deadline = time.time() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if time.time() > deadline or proc.poll() is not None:
                raise RuntimeError("ray start --head did not come up")
            time.sleep(0.5)
    yield address
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


CLUSTER_PIDS: dict[str, int] = {}  # address -> pid of its `ray start --head --block`


def _parent(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return 0


def actor_pids(address: str, running_only=False) -> list[int]:
    """Our worker actors in the cluster at ``address`` (descendants of its head process,
    whose title Ray set to ``ray::_Actor...``); other clusters' workers are left alone."""
    root, out = CLUSTER_PIDS[address], []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if not cmd.startswith("ray::_Actor.run" if running_only else "ray::_Actor"):
            continue
        p = int(pid)
        while p > 1 and p != root:
            p = _parent(p)
        if p == root:
            out.append(int(pid))
    return out


@pytest.fixture(scope="module")
def two_fake_gpus():
    """A local Ray cluster told this machine has 2 GPUs (Ray's resource override): GPU requests,
    assignment and CUDA_VISIBLE_DEVICES are Ray's real ones; only the devices are not."""
    import ray

    if ray.is_initialized():
        ray.shutdown()
    ray.init(address="local", num_cpus=2, num_gpus=2, include_dashboard=False, log_to_driver=False,
             configure_logging=False)
    yield
    ray.shutdown()
