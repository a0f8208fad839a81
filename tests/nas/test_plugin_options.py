"""One idiom for plug-in options: a strategy, evaluator or profiler backend registered here,
with its own frozen ``Options``, is parsed from an experiment config, round-trips, changes
the config hash and is built with its options, without any edit of a central list or class."""
from dataclasses import dataclass
from typing import Literal

import pytest
import yaml

from core.config import NoOptions
from core.errors import ConfigError
from evaluators.scores import EVALUATORS, Evaluator, Score, create_evaluator, register_evaluator
from lookup_tables.profilers.base import PROFILERS, Measurement, Profiler, create_profiler, register_profiler
from nas.campaign import config_hash
from nas.config import Experiment
from nas.strategies import STRATEGIES, Strategy, create_strategy, register_strategy


@dataclass(frozen=True)
class PatienceOptions:
    rounds: int = 3
    mode: Literal["greedy", "lazy"] = "greedy"


class PatienceStrategy(Strategy):
    Options = PatienceOptions

    def propose(self, state):
        return []


@dataclass(frozen=True)
class ConstantOptions:
    value: float = 0.5

    def __post_init__(self):
        if not 0 <= self.value <= 1:
            raise ValueError(f"value must be in [0, 1], got {self.value}")


class ConstantEvaluator(Evaluator):
    Options = ConstantOptions

    def score(self, model) -> Score:
        return Score(self.options.value, {"value": self.options.value})


class PlainEvaluator(Evaluator):  # declares no options
    def score(self, model) -> Score:
        return Score(1.0)


@dataclass(frozen=True)
class StopwatchOptions:
    ms_per_channel: float = 0.01


class StopwatchProfiler(Profiler):
    Options = StopwatchOptions

    @staticmethod
    def check_config(lut) -> None:
        if lut.device != "cpu":
            raise ValueError(f"device {lut.device!r}; allowed for stopwatch: cpu")

    def device_name(self) -> str:
        return "a stopwatch"

    def measure_op(self, shape) -> Measurement:
        return Measurement(latency_ms=shape.channels * self.config.options.ms_per_channel, repeats=1)


@pytest.fixture
def registered(monkeypatch):
    """The three dummies registered the way a plug-in module registers itself; each registry
    is restored afterwards, so the package's own contract tests see only its entries."""
    for registry in (STRATEGIES, EVALUATORS, PROFILERS):
        registry.names()  # the package's entries first
        monkeypatch.setattr(registry, "_entries", dict(registry._entries))
    register_strategy("patience")(PatienceStrategy)
    register_evaluator("constant")(ConstantEvaluator)
    register_evaluator("plain")(PlainEvaluator)
    register_profiler("stopwatch")(StopwatchProfiler)


@pytest.fixture
def tiny(tiny_config_path):
    return yaml.safe_load(open(tiny_config_path))


def with_sections(base: dict, **sections) -> dict:
    return {**base, **sections}


def test_new_plugins_parse_round_trip_and_build_with_their_options(registered, tiny):
    data = with_sections(
        tiny,
        search={"strategy": "patience", "options": {"rounds": 5}, "workers": 0},
        evaluator={"name": "constant", "options": {"value": 0.25}, "noise_seed": 7},
        lut={"backend": "stopwatch", "options": {"ms_per_channel": 0.5}, "device": "cpu", "repeats": 3})
    exp = Experiment.from_dict(data)
    assert exp.search.options == PatienceOptions(rounds=5) and exp.search.workers == 0
    assert exp.evaluator.options == ConstantOptions(0.25) and exp.evaluator.noise_seed == 7
    assert exp.lut.options == StopwatchOptions(0.5) and exp.lut.repeats == 3

    plain = exp.to_dict()
    assert plain["search"]["options"] == {"rounds": 5, "mode": "greedy"}  # defaults are written out
    assert plain["lut"]["options"] == {"ms_per_channel": 0.5}
    assert Experiment.from_dict(plain) == exp
    assert Experiment.from_dict(yaml.safe_load(yaml.safe_dump(plain))) == exp
    changed = with_sections(data, evaluator={"name": "constant", "options": {"value": 0.3}, "noise_seed": 7})
    assert config_hash(Experiment.from_dict(changed).to_dict()) != config_hash(plain)
    assert config_hash(Experiment.from_dict(data).to_dict()) == config_hash(plain)

    strategy = create_strategy(exp.search.strategy, exp.search.options, exp.seed, exp.candidate_steps)
    assert isinstance(strategy, PatienceStrategy) and strategy.options.rounds == 5
    assert create_evaluator(exp.evaluator, data=None).score(None).quality == 0.25
    profiler = create_profiler(exp.lut, exp.space.dtype)
    assert profiler.measure_op(type("Shape", (), {"channels": 8})()).latency_ms == 4.0
    assert exp.lut.protocol()["ms_per_channel"] == 0.5
    fingerprint = profiler.fingerprint()  # a backend without threads/clock options: one thread, wall clock
    assert fingerprint["backend"] == "stopwatch" and (fingerprint["threads"], fingerprint["clock"]) == (1, "wall")


def test_a_new_evaluator_is_a_weighted_component_and_one_without_options_takes_none(registered, tiny):
    exp = Experiment.from_dict(with_sections(tiny, evaluator={"name": "weighted", "options": {"components": [
        {"name": "constant", "weight": 3.0, "options": {"value": 1.0}}, {"name": "plain"}]}}))
    assert exp.evaluator.options.components[1].options == NoOptions()
    score = create_evaluator(exp.evaluator, data=None).score(None)
    assert score.quality == pytest.approx((3 * 1.0 + 1.0) / 4)
    assert score.breakdown["constant/value"] == 1.0
    with pytest.raises(ConfigError, match=r"^evaluator.options.components\[1\].options.x: unknown key; allowed: none$"):
        Experiment.from_dict(with_sections(tiny, evaluator={"name": "weighted", "options": {"components": [
            {"name": "constant"}, {"name": "plain", "options": {"x": 1}}]}}))


@pytest.mark.parametrize("section, value, message", [
    ("search", {"strategy": "patience", "options": {"rounds": "long"}},
     r"^search.options.rounds: expected an integer, got 'long'$"),
    ("search", {"strategy": "patience", "options": {"mode": "eager"}},
     r"^search.options.mode: 'eager' is not allowed; allowed: greedy, lazy$"),
    ("search", {"strategy": "patience", "rounds": 5},
     r"^search.rounds: now an option of strategy patience; write it as search.options.rounds$"),
    ("search", {"strategy": "random", "rounds": 5},
     (r"^search.rounds: an option of strategy patience, not of random; write it as search.options.rounds "
      r"with search.strategy: patience$")),
    ("evaluator", {"name": "constant", "options": {"value": 2.0}},
     r"^evaluator.options: value must be in \[0, 1\], got 2.0$"),
    ("evaluator", {"name": "constant", "value": 0.1},
     r"^evaluator.value: now an option of evaluator constant; write it as evaluator.options.value$"),
    ("evaluator", {"name": "constnat"}, r"^evaluator.name: unknown evaluator 'constnat'; allowed: .*constant"),
    ("lut", {"backend": "stopwatch", "device": "cuda"}, r"^lut: device 'cuda'; allowed for stopwatch: cpu$"),
    ("lut", {"backend": "stopwatch", "options": {"threads": 2}},
     r"^lut.options.threads: unknown key; allowed: ms_per_channel$"),
    ("lut", {"backend": "torch", "ms_per_channel": 1.0},
     (r"^lut.ms_per_channel: an option of profiler backend stopwatch, not of torch; "
      r"write it as lut.options.ms_per_channel with lut.backend: stopwatch$")),
])
def test_bad_options_are_one_line_naming_the_key(registered, tiny, section, value, message):
    with pytest.raises(ConfigError, match=message):
        Experiment.from_dict(with_sections(tiny, **{section: value}))


def test_the_old_flat_shape_says_where_each_field_went(tiny):
    old = {"evaluator": {"name": "flow_loss", "t_values": [0.5], "val_clips": 8},
           "lut": {"backend": "torch", "device": "cpu", "threads": 1, "clock": "thread"}}
    with pytest.raises(ConfigError, match=r"^evaluator.t_values: now an option of evaluator flow_loss; "
                                          r"write it as evaluator.options.t_values$"):
        Experiment.from_dict(with_sections(tiny, evaluator=old["evaluator"]))
    with pytest.raises(ConfigError, match=r"^lut.threads: now an option of profiler backend torch; "
                                          r"write it as lut.options.threads$"):
        Experiment.from_dict(with_sections(tiny, lut=old["lut"]))
    with pytest.raises(ConfigError, match=r"^evaluator.discrimination: the options of evaluator caption_discrimination "
                                          r"now go under evaluator.options \(with evaluator.name: caption_discrimination\)$"):
        Experiment.from_dict(with_sections(tiny, evaluator={"name": "flow_loss", "discrimination": {"clips": 8}}))
    with pytest.raises(ConfigError, match=r"^evaluator.prompts: an option of evaluator prompt_suite, vbench, not of "
                                          r"flow_loss; write it as evaluator.options.prompts with evaluator.name: "
                                          r"prompt_suite$"):
        Experiment.from_dict(with_sections(tiny, evaluator={"prompts": 8}))


def test_switching_plugins_in_code_keeps_the_shared_options(tiny):
    exp = Experiment.from_dict(with_sections(tiny, evaluator={"name": "flow_loss",
                                                              "options": {"t_values": [0.3, 0.5], "val_clips": 16}}))
    disc = exp.evaluator.switch("caption_discrimination", clips=8)
    assert disc.options.t_values == exp.evaluator.options.t_values and disc.options.clips == 8
    assert exp.evaluator.with_options(val_clips=4).options.val_clips == 4
    with pytest.raises(ConfigError, match=r"^evaluator.options.clips: unknown key; allowed: t_values, val_clips$"):
        exp.evaluator.with_options(clips=4)
    with pytest.raises(ConfigError, match="FlowLossOptions given for evaluator prompt_suite, which takes SamplingOptions"):
        type(exp.evaluator)(name="prompt_suite", options=exp.evaluator.options)
