"""Same inputs, same numbers: the backbone's pre-training repeats bit for bit in another
process (whatever ran before it there) and after a kill mid-way; a candidate's quality
repeats for one seed."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import torch

from evaluators.config import PretrainConfig, TrainConfig
from evaluators.data import LatentDataset
from evaluators.pretrain import pretrain_spatial
from evaluators.synth import synthesise
from search_spaces.backbones import build_unet

STEPS = 6
PRE = PretrainConfig(steps=STEPS, batch=4)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    path = tmp_path_factory.mktemp("det") / "data"
    synthesise(path, 24, 4, 8, 8, 8, 8, 32, 0, "builtin")  # the tiny experiment's 8x8 clips
    return path


PROGRAM = textwrap.dedent("""
    import sys, torch
    torch.set_num_threads(1)
    torch.randn(int(sys.argv[3]))  # whatever ran before in this process must not matter
    from evaluators import CandidateRunner
    from evaluators.config import DataConfig, EvaluatorConfig, PretrainConfig, TrainConfig
    from nas.config import Experiment
    exp = Experiment.load("experiments/tiny.yaml")
    train = TrainConfig(steps=2, batch=2, threads=1, pretrain=PretrainConfig(steps=%d, batch=4))
    r = CandidateRunner(exp.space, DataConfig(dir=sys.argv[1]), train, EvaluatorConfig(options={"val_clips": 2}), sys.argv[2])
    r.prepare()
    torch.save(r.unet.state_dict(), sys.argv[2] + "/weights.pt")
""" % STEPS)


def test_pretraining_repeats_exactly_in_separate_processes(data, tmp_path):
    weights = []
    for i, noise in enumerate((3, 11)):
        work = tmp_path / f"w{i}"
        work.mkdir()
        subprocess.run([sys.executable, "-c", PROGRAM, str(data), str(work), str(noise)], check=True, timeout=300)
        weights.append(torch.load(work / "weights.pt", weights_only=True))
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


class Kill(Exception):
    pass


def test_pretraining_killed_midway_resumes_to_the_same_weights(data, tmp_path, tiny_config_path):
    from nas.config import Experiment

    exp = Experiment.load(tiny_config_path)
    dataset, train = LatentDataset(data), TrainConfig()

    def fresh():
        torch.manual_seed(0)
        return build_unet(exp.space.backbone, "cpu")

    whole = fresh()
    pretrain_spatial(whole, dataset, PRE, train, seed=0)

    ckpt = tmp_path / "partial.pt"

    def killer(step, total, loss):
        if step == 4:
            raise Kill()

    with pytest.raises(Kill):
        pretrain_spatial(fresh(), dataset, PRE, train, 0, "cpu", killer, ckpt, checkpoint_every=2)
    assert ckpt.is_file()
    resumed, reported = fresh(), []
    pretrain_spatial(resumed, dataset, PRE, train, 0, "cpu", lambda s, t, l: reported.append(s), ckpt,
                     checkpoint_every=2)
    assert reported == [3, 4, 5, 6]  # continued from the step-2 checkpoint (step 4 was killed before its save)
    a, b = whole.state_dict(), resumed.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_one_seed_one_quality(runner):
    first = runner.run("mid:conv1d:1", None, 3, 5)
    again = runner.run("mid:conv1d:1", None, 3, 5)
    assert first.status == again.status == "ok"
    assert first.quality == again.quality


def test_the_image_model_pretrains_at_its_own_t_when_given_and_caches_by_it(data, tiny_config_path):
    """``train.pretrain.logit_mean`` decouples the backbone's t from the temporal layers': unset,
    pre-training follows ``train`` (same weights, same cache key); set, it trains at its own t
    whatever ``train`` says."""
    import dataclasses

    from evaluators.pretrain import cache_key
    from nas.config import Experiment

    exp = Experiment.load(tiny_config_path)
    dataset = LatentDataset(data)
    high, low = TrainConfig(logit_mean=1.0), TrainConfig(logit_mean=0.0)
    own = dataclasses.replace(PRE, logit_mean=0.0)
    unet = exp.space.backbone

    def weights(pre, train):
        torch.manual_seed(0)
        model = build_unet(unet, "cpu")
        pretrain_spatial(model, dataset, pre, train, seed=0)
        return model.state_dict()

    key = lambda pre, train: cache_key(build_unet(unet, "meta").config, dataset, pre, train)  # noqa: E731
    assert key(own, high) == key(PRE, low) != key(PRE, high)
    a, b, c = weights(own, high), weights(PRE, low), weights(PRE, high)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)
