"""One small pre-trained backbone per test session, shared by the runner tests."""
import dataclasses

import pytest

from evaluators import CandidateRunner
from evaluators.config import DataConfig, EvaluatorConfig, PretrainConfig, TrainConfig
from nas.config import Experiment

# Small enough to pre-train in ~20 s on one thread, large enough for a real quality signal.
SMALL_DATA = DataConfig(videos=192, val_videos=32)
SMALL_TRAIN = TrainConfig(steps=20, batch=4, pretrain=PretrainConfig(steps=100, batch=16))
SMALL_EVAL = EvaluatorConfig(options={"val_clips": 16})


@pytest.fixture(scope="session")
def tiny_experiment(tiny_config_path):
    return Experiment.load(tiny_config_path)


@pytest.fixture(scope="session")
def runner(tiny_experiment, tmp_path_factory):
    r = CandidateRunner(tiny_experiment.space, SMALL_DATA, SMALL_TRAIN, SMALL_EVAL,
                        tmp_path_factory.mktemp("runner"), seed=0)
    r.prepare()
    return r


@pytest.fixture
def make_runner(runner, tmp_path):
    """A runner sharing the session's data and cached backbone, with other settings."""
    def make(train=None, evaluator=None):
        train = train or SMALL_TRAIN
        pre = dataclasses.replace(train.pretrain, cache_dir=str(runner.workdir / "cache"))
        return CandidateRunner(runner.space_config, dataclasses.replace(SMALL_DATA, dir=str(runner.data_dir)),
                               dataclasses.replace(train, pretrain=pre), evaluator or SMALL_EVAL, tmp_path, seed=0)
    return make
