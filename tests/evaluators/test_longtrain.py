"""The long training after the search (evaluators.longtrain): determinism, resume after a
kill, the options, and a checkpoint of another config refused."""
import pytest
import torch

from evaluators.longtrain import LongTrainConfig, Stop, train_model
from evaluators.model_dir import ModelError, load_model
from tests.nas.deploy_helpers import experiment, shared_workdir

ARCH = "down0:conv1d:1,mid:self_attn1d:1"
FAST = dict(steps=6, batch=2, checkpoint_every=2, log_every=2)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return shared_workdir(tmp_path_factory)


def weights(path):
    return torch.load(path / "weights.pt", weights_only=True)


def same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_cpu_training_is_deterministic_and_writes_a_loadable_model(tmp_path, workdir):
    exp = experiment(workdir)
    cfg = LongTrainConfig(**FAST)
    rec1 = train_model(exp, ARCH, tmp_path / "a", cfg, seed=3, workdir=workdir)
    rec2 = train_model(exp, ARCH, tmp_path / "b", cfg, seed=3, workdir=workdir)
    rec3 = train_model(exp, ARCH, tmp_path / "c", cfg, seed=4, workdir=workdir)
    wa, wb, wc = weights(tmp_path / "a"), weights(tmp_path / "b"), weights(tmp_path / "c")
    assert same(wa["temporal"], wb["temporal"]) and rec1["log"] == rec2["log"]
    assert not same(wa["temporal"], wc["temporal"]) and rec1["log"] != rec3["log"]
    assert rec1["steps"] == 6 and len(rec1["log"]) == 3 and rec1["init"]["source"] == "identity"
    trained = load_model(tmp_path / "a")
    assert str(trained.arch) == ARCH
    # the loaded model carries the trained temporal weights, not fresh identity layers
    assert same({k: v for k, v in trained.model.temporal.state_dict().items()}, wa["temporal"])
    assert any(v.abs().sum() > 0 for k, v in wa["temporal"].items() if "proj_out" in k)


def test_a_killed_run_resumes_to_the_same_weights(tmp_path, workdir):
    exp = experiment(workdir)
    cfg = LongTrainConfig(**FAST)
    train_model(exp, ARCH, tmp_path / "whole", cfg, seed=0, workdir=workdir)

    def kill(step, total, loss):
        if step == 3:  # after the checkpoint at step 2: step 3 is lost and done again
            raise Stop()

    with pytest.raises(Stop):
        train_model(exp, ARCH, tmp_path / "killed", cfg, seed=0, workdir=workdir, on_step=kill)
    assert (tmp_path / "killed" / "checkpoint.pt").is_file() and not (tmp_path / "killed" / "model.json").exists()
    rec = train_model(exp, ARCH, tmp_path / "killed", cfg, seed=0, workdir=workdir)
    assert rec["resumed_from"] == 2
    assert same(weights(tmp_path / "whole")["temporal"], weights(tmp_path / "killed")["temporal"])


def test_a_checkpoint_of_another_config_is_refused(tmp_path, workdir):
    exp = experiment(workdir)
    cfg = LongTrainConfig(**FAST)
    train_model(exp, ARCH, tmp_path / "m", cfg, seed=0, workdir=workdir)
    with pytest.raises(ModelError, match="checkpoint of another config"):
        train_model(exp, "mid:conv1d:2", tmp_path / "m", cfg, seed=0, workdir=workdir)


def test_options_unfreeze_image_batches_schedule_and_ema(tmp_path, workdir):
    exp = experiment(workdir)
    base = dict(FAST, ema=None)
    train_model(exp, ARCH, tmp_path / "frozen", LongTrainConfig(**base), seed=0, workdir=workdir)
    train_model(exp, ARCH, tmp_path / "unfrozen", LongTrainConfig(**base, unfreeze_spatial=True), seed=0,
                workdir=workdir)
    frozen, unfrozen = weights(tmp_path / "frozen"), weights(tmp_path / "unfrozen")
    changed = [k for k in frozen["unet"] if not torch.equal(frozen["unet"][k], unfrozen["unet"][k])]
    assert changed, "unfreezing the spatial layers must change them"
    # the frozen run leaves the pre-trained backbone exactly as it was
    from evaluators.model_dir import load_model as load
    assert same(load(tmp_path / "frozen").model.unet.state_dict(), frozen["unet"])
    # image batches: a different run from the same seed
    train_model(exp, ARCH, tmp_path / "mixed", LongTrainConfig(**base, image_ratio=0.5), seed=0, workdir=workdir)
    assert not same(weights(tmp_path / "mixed")["temporal"], frozen["temporal"])
    # EMA: the written weights are the average, which moves slower than the raw ones
    train_model(exp, ARCH, tmp_path / "ema", LongTrainConfig(**dict(FAST, ema=0.9)), seed=0, workdir=workdir)
    ema, raw = weights(tmp_path / "ema")["temporal"], frozen["temporal"]
    start = load(tmp_path / "frozen").model.temporal  # only for the key set
    moved = sum((ema[k] - 0).abs().sum() for k in start.state_dict() if "proj_out.weight" in k)
    moved_raw = sum(raw[k].abs().sum() for k in start.state_dict() if "proj_out.weight" in k)
    assert 0 < moved < moved_raw


def test_learning_rate_schedules():
    cos = LongTrainConfig(steps=100, warmup_steps=10, schedule="cosine", min_lr_ratio=0.1)
    assert cos.lr_factor(0) == pytest.approx(0.1) and cos.lr_factor(9) == pytest.approx(1.0)
    assert cos.lr_factor(10) == pytest.approx(1.0) and cos.lr_factor(99) == pytest.approx(0.1, abs=1e-3)
    lin = LongTrainConfig(steps=100, schedule="linear", min_lr_ratio=0.0)
    assert lin.lr_factor(50) == pytest.approx(0.5)
    assert LongTrainConfig(steps=100, schedule="constant").lr_factor(77) == 1.0
    with pytest.raises(ValueError, match="image_ratio"):
        LongTrainConfig(image_ratio=1.0)
