"""``hwnas train --ray``: the long training in a Ray actor ends with the weights of the same
run in this process, bit for bit; a worker killed mid-run is restarted by Ray and resumes
from the last checkpoint, a killed driver's rerun too, and no Ray process outlives the
driver. GPUs are Ray's fake ones (``ray.init(num_gpus=2)``), as in test_gpu_workers: the
request and Ray's assignment are real, the devices are not."""
import json
import os
import re
import signal
import subprocess
import time

import pytest
import torch

from evaluators.longtrain import LongTrainConfig
from nas.reaper import alive, descendants
from tests.nas.conftest import HWNAS
from tests.nas.deploy_helpers import experiment, shared_workdir, write_config

ray = pytest.importorskip("ray")

ARCH = "down0:conv1d:1,mid:self_attn1d:1"
STEPS, EVERY = 16, 2  # long enough that a kill lands mid-run, checkpoints often enough to resume


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return shared_workdir(tmp_path_factory)


@pytest.fixture(scope="module")
def config(workdir, tmp_path_factory):
    return write_config(tmp_path_factory.mktemp("cfg") / "c.yaml", experiment(workdir))


def train_args(config, workdir, out, *more) -> list[str]:
    return [str(a) for a in ("train", config, "--arch", ARCH, "--steps", STEPS, "--checkpoint-every", EVERY,
                             "--out", out, "--workdir", workdir, *more)]


def weights(out):
    return torch.load(out / "weights.pt", weights_only=True)


def same(a, b) -> bool:
    return all(a[g].keys() == b[g].keys() and all(torch.equal(a[g][k], b[g][k]) for k in a[g]) for g in a)


@pytest.fixture(scope="module")
def local(config, workdir, tmp_path_factory):
    """The reference: the same run in this process, never interrupted."""
    from nas.cli import main

    out = tmp_path_factory.mktemp("local") / "m"
    assert main(train_args(config, workdir, out, "--json")) == 0
    return weights(out)


def watched(args, log, until=None, timeout=300):
    """Run ``hwnas ARGS`` as its own process (output to files: Ray's processes inherit them,
    and a pipe nobody reads could stall them); every process it started, seen while it ran;
    with ``until``: SIGKILL the driver (only it, as a user's kill -9) once ``until()`` holds."""
    with open(f"{log}.out", "w") as out, open(f"{log}.err", "w") as err:
        proc = subprocess.Popen(HWNAS + args, stdout=out, stderr=err, start_new_session=True)
    seen, deadline = set(), time.time() + timeout
    while proc.poll() is None and time.time() < deadline:
        seen |= descendants(proc.pid)
        if until is not None and until():
            seen |= descendants(proc.pid)
            os.kill(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.1)
    proc.wait(timeout=timeout)
    return proc.returncode, open(f"{log}.out").read(), open(f"{log}.err").read(), seen


def outlived(pids, wait_s=10.0) -> list[int]:
    deadline = time.time() + wait_s
    while time.time() < deadline and any(alive(p) for p in pids):
        time.sleep(0.2)
    return [p for p in pids if alive(p)]


@pytest.mark.timeout(900)  # two drivers, each starting a local cluster, on a busy 2-core machine
def test_a_killed_driver_leaves_no_ray_process_and_the_rerun_resumes_to_the_same_weights(config, workdir, local,
                                                                                         tmp_path):
    out = tmp_path / "m"
    code, _, _, seen = watched(train_args(config, workdir, out, "--ray"), tmp_path / "killed",
                               until=lambda: (out / "checkpoint.pt").is_file())
    assert code == -signal.SIGKILL and len(seen) >= 3  # reaper, gcs, raylet, the worker ...
    assert not outlived(seen), "Ray processes outlived the killed driver"
    assert not (out / "model.json").exists()  # killed mid-run
    killed_at = torch.load(out / "checkpoint.pt", weights_only=True)["step"]
    assert killed_at < STEPS

    code, stdout, stderr, seen = watched(train_args(config, workdir, out, "--ray", "--json"), tmp_path / "rerun")
    assert code == 0, stderr[-2000:]
    record = json.loads(stdout)
    assert record["resumed_from"] is not None and record["resumed_from"] >= killed_at
    assert record["worker"]["pid"] in seen  # trained in a process of the local cluster, not the driver
    assert same(weights(out), local)
    assert not outlived(seen), "Ray processes outlived a finished run"


def test_a_gpu_worker_trains_the_same_weights_and_its_progress_reaches_the_driver(two_fake_gpus, config, workdir,
                                                                                   local, tmp_path, hwnas):
    r = hwnas(*train_args(config, workdir, tmp_path / "m", "--ray", "--gpus", 1, "--device", "cpu"))
    assert r.returncode == 0, r.stderr
    assert f"training: {STEPS}/{STEPS} training, loss" in r.stderr  # the actor's steps, shown here
    where = re.search(r"on Ray worker pid (\d+) \(.*, GPU (\d)\)", r.stdout)
    assert where and int(where[1]) != os.getpid() and where[2] in ("0", "1")
    assert same(weights(tmp_path / "m"), local)
    deadline = time.time() + 30  # the actor is gone and its GPU returned (Ray's accounting lags a little)
    while ray.available_resources().get("GPU") != 2.0 and time.time() < deadline:
        time.sleep(0.2)
    assert ray.available_resources().get("GPU") == 2.0


def test_a_killed_worker_is_restarted_and_resumes_from_its_last_checkpoint(two_fake_gpus, workdir, local, tmp_path):
    from nas.remote_train import RemoteTrainer

    workers, steps = [], []

    def on_step(step, total, loss):
        steps.append(step)
        if step >= 2 * EVERY and len(workers) == 1 and not steps[:-1].count(-1):
            os.kill(workers[0], signal.SIGKILL)
            steps.append(-1)  # killed once

    job = {"experiment": experiment(workdir), "arch": ARCH, "out": tmp_path / "m", "workdir": workdir, "seed": 0,
           "config": LongTrainConfig(steps=STEPS, batch=2, checkpoint_every=EVERY), "device": "cpu", "threads": 1}
    with RemoteTrainer(gpus=1) as trainer:
        record = trainer.train(job, on_step=on_step, on_worker=workers.append)
    assert len(workers) == 2 and record["worker"]["pid"] == workers[1]
    assert record["resumed_from"] >= 2 * EVERY and record["resumed_from"] % EVERY == 0
    assert record["worker"]["cuda_visible_devices"] == record["worker"]["gpu_ids"][0]  # Ray's assignment
    assert steps[-1] == STEPS
    assert same(weights(tmp_path / "m"), local)


def test_more_gpus_than_the_cluster_has_or_gpus_without_ray_is_one_line_and_exit_2(two_fake_gpus, config, workdir,
                                                                                    tmp_path, hwnas):
    r = hwnas(*train_args(config, workdir, tmp_path / "m", "--ray", "--gpus", 3))
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    assert "--gpus 3: this machine's Ray cluster has only 2 GPU" in r.stderr
    r = hwnas(*train_args(config, workdir, tmp_path / "m", "--gpus", 1))
    assert r.returncode == 2 and "--gpus is for a Ray worker: add --ray" in r.stderr
    assert not (tmp_path / "m").exists()
