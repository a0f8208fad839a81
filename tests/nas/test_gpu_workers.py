"""GPU Ray workers, tested on CPU: Ray is told this machine has 2 GPUs (``ray.init(num_gpus=2)``,
Ray's own resource override), so the resource requests, Ray's assignment and the
``CUDA_VISIBLE_DEVICES`` each actor trains under are the real ones; only the devices are not."""
from __future__ import annotations

import pytest

from core.errors import ConfigError
from nas.workers import RayPool, WorkerError
from tests.nas.test_workers import EchoSpec

ray = pytest.importorskip("ray")


def test_each_actor_asks_for_its_share_and_sees_the_gpu_ray_assigned(two_fake_gpus):
    with RayPool(EchoSpec(), workers=2, gpus_per_worker=1, cpus_per_worker=0.1) as pool:
        devices = pool.devices()
        assert sorted(d["gpu_ids"][0] for d in devices) == ["0", "1"]  # one GPU each, different ones
        assert all(d["cuda_visible_devices"] == d["gpu_ids"][0] for d in devices)
        assert ray.available_resources().get("GPU", 0.0) == 0.0
    with pytest.warns(UserWarning, match="needs 2.5 GPUs, the cluster has 2: 4 workers"):
        pool = RayPool(EchoSpec(), workers=5, gpus_per_worker=0.5, cpus_per_worker=0.1)
        pool.start()
    try:
        devices = pool.devices()
        assert len(devices) == 4 and len({d["pid"] for d in devices}) == 4
        ids = sorted(d["gpu_ids"][0] for d in devices)
        assert ids == ["0", "0", "1", "1"]  # two actors share each GPU at 0.5
    finally:
        pool.close()


def test_cpu_workers_ask_for_no_gpu(two_fake_gpus):
    with RayPool(EchoSpec(), workers=1, cpus_per_worker=0.1) as pool:
        assert pool.devices()[0]["gpu_ids"] == []
        assert ray.available_resources().get("GPU") == 2.0


def test_gpus_per_worker_on_a_cluster_without_gpus_is_one_clear_error():
    if ray.is_initialized():
        ray.shutdown()
    ray.init(address="local", num_cpus=1, num_gpus=0, include_dashboard=False, log_to_driver=False,
             configure_logging=False)
    try:
        with pytest.raises(WorkerError, match=r"search.gpus_per_worker 0.5: this machine's Ray cluster has no "
                                              r"GPUs; set it to 0"):
            RayPool(EchoSpec(), workers=2, gpus_per_worker=0.5).start()
    finally:
        ray.shutdown()


def test_the_config_key_and_its_device_rule(tiny_config_path):
    from core.config import load_yaml
    from nas.config import Experiment
    from nas.engine import make_pool

    data = load_yaml(tiny_config_path)
    data["search"]["gpus_per_worker"] = 0.5
    with pytest.raises(ConfigError, match="set train.device to cuda"):
        Experiment.from_dict(data)
    data["train"]["device"] = "cuda"
    exp = Experiment.from_dict(data)
    assert make_pool(exp, "/tmp/w", None).gpus_per_worker == 0.5
    data["search"]["gpus_per_worker"] = -1
    with pytest.raises(ConfigError, match="gpus_per_worker must be 0 or more"):
        Experiment.from_dict(data)
    assert Experiment.load(tiny_config_path).search.gpus_per_worker == 0.0


def test_search_run_with_gpus_per_worker_on_a_machine_without_gpus_exits_2_before_any_work(
        tiny_config_path, tmp_path, capsys):
    import torch
    import yaml

    from nas.cli import main

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    cfg = yaml.safe_load(open(tiny_config_path))
    cfg["train"]["device"] = "cuda"
    cfg["search"]["gpus_per_worker"] = 0.5
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["search", "run", str(tmp_path / "c.yaml"), "--out", str(tmp_path / "camp")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["hwnas: error: search.gpus_per_worker 0.5: this machine's Ray cluster has no GPUs; set it to 0 "
                   "to train on CPUs, or give --ray-address of a cluster with GPUs"]
    assert not (tmp_path / "camp" / "lut.parquet").exists()
