"""SearchSpace: slots and shapes from the backbone, size, sampling, action set, validation."""
import math
import random

import pytest

from core.budgets import Budgets, VideoLatency
from core.config import parse, to_dict
from core.errors import ArchitectureError, ConfigError
from search_spaces.architecture import Action, Architecture, Layer
from search_spaces.space import SearchSpace, SpaceConfig

TINY = {"backbone": {"preset": "tiny"}, "video": {"frames": 8, "height": 16, "width": 16},
        "ops": ["conv1d", "self_attn1d", "cross_attn1d"], "slots": ["down0", "mid", "up1"],
        "op_options": {"head_dim": 16}}


@pytest.fixture(scope="module")
def space():
    return SearchSpace.from_dict(TINY)


def test_slots_see_the_backbone_shapes(space):
    shapes = {s.name: (s.channels, s.frames, s.height, s.width, s.text_tokens, s.text_dim, s.heads)
              for s in space.slots}
    # tiny preset: widths 32/64, down0 downsamples 16 -> 8, up1 works at full resolution
    assert shapes == {"down0": (32, 8, 8, 8, 8, 32, 2), "mid": (64, 8, 8, 8, 8, 32, 4),
                      "up1": (32, 8, 16, 16, 8, 32, 2)}
    assert len(space.op_shapes()) == 9


def test_size_counts_every_architecture(space):
    assert space.size == (1 + 3 * 2) ** 3
    archs = list(space)
    assert len(archs) == len(set(archs)) == space.size
    for a in archs[:: 17]:
        space.validate(a)


def test_random_samples_are_valid_and_reproducible(space):
    a = [space.sample(random.Random(7)) for _ in range(3)]
    assert a[0] == a[1] == a[2]
    seen = {space.sample(random.Random(i)) for i in range(300)}
    assert len(seen) > 100
    for arch in seen:
        space.validate(arch)


def test_action_set_of_algorithm_a1(space):
    empty_actions = space.actions(space.empty)
    assert len(empty_actions) == 9 and all(a.kind == "add" for a in empty_actions)
    arch = Architecture({"mid": Layer("conv1d", 2), "up1": Layer("self_attn1d", 1)})
    actions = set(space.actions(arch))
    assert Action("add", "mid", "conv1d") not in actions  # at its maximum
    assert Action("remove", "mid", "conv1d") in actions
    assert Action("add", "mid", "self_attn1d") not in actions  # no mixing of types
    assert Action("add", "up1", "self_attn1d") in actions and Action("remove", "up1", "self_attn1d") in actions
    for action in actions:
        space.validate(arch.apply(action))


def test_empty_and_full(space):
    assert str(space.empty) == "empty"
    assert space.full == Architecture({s: Layer("conv1d", 2) for s in ("down0", "mid", "up1")})
    assert space.parse("full") == space.full


@pytest.mark.parametrize("text, message", [
    ("down1:conv1d:1", "unknown slot 'down1'"),
    ("mid:conv9d:1", "unknown operator 'conv9d'"),
    ("mid:conv3d:1", "not allowed at slot mid"),
    ("mid:conv1d:3", "exceed its maximum of 2"),
    ("mid:conv1d:1,mid:cross_attn1d:1", "one operator type per slot"),
])
def test_invalid_architectures_are_rejected(space, text, message):
    with pytest.raises(ArchitectureError, match=message):
        space.parse(text)


def test_slot_overrides():
    cfg = dict(TINY, slot_overrides={"mid": {"ops": ["self_attn1d"], "max_layers": 3}, "up1": {"max_layers": 0}})
    space = SearchSpace.from_dict(cfg)
    assert space.slot_names == ["down0", "mid"]
    assert space.slot("mid").ops == ("self_attn1d",) and space.slot("mid").max_layers == 3
    assert space.size == (1 + 3 * 2) * (1 + 3)


@pytest.mark.parametrize("change, message", [
    ({"vidoe": {}}, "space.vidoe: unknown key; allowed: backbone, video"),
    ({"ops": ["conv1d", "conv9d"]}, "unknown operator 'conv9d'"),
    ({"max_layers": "two"}, "space.max_layers: expected an integer"),
    ({"dtype": "fp8"}, "space.dtype: 'fp8' is not allowed; allowed: float32, float16, bfloat16"),
    ({"slots": ["down7"]}, "slot 'down7' does not exist"),
    ({"backbone": {"preset": "sdxl"}}, "preset 'sdxl' is not bundled"),
    ({"video": {"frames": 0, "height": 16, "width": 16}}, "frames must be at least 1"),
])
def test_bad_space_configs_name_the_key(change, message):
    with pytest.raises((ConfigError, ArchitectureError), match=message):
        SearchSpace.from_dict(dict(TINY, **change))


def test_config_round_trips():
    cfg = SpaceConfig.from_dict(TINY)
    assert parse(SpaceConfig, to_dict(cfg), "space") == cfg


def test_sd15_space_builds_on_meta_with_paper_shapes():
    space = SearchSpace.from_dict({"backbone": {"preset": "sd15"}, "video": {"frames": 15, "height": 64, "width": 64},
                                   "text": {"tokens": 77}, "dtype": "float16"})
    names = space.slot_names
    assert names == ["down0", "down1", "down2", "down3", "mid", "up0", "up1", "up2", "up3"]
    assert space.slot("up3").channels == 320 and (space.slot("up3").height, space.slot("up3").width) == (64, 64)
    assert space.slot("mid").channels == 1280 and space.slot("mid").text_dim == 768
    assert space.size == 13 ** 9


def test_budget_from_whole_video_latency():
    b = parse(Budgets, {"video": {"total_s": 5.0, "steps": 4, "text_encoder_ms": 6, "decoder_ms": 500}}, "budgets")
    assert math.isclose(b.latency_ms_per_step, (5000 - 6 - 500) / 4)
    assert b.violations(1200, 0) == ["latency"]
    with pytest.raises(ConfigError, match="leaves no time"):
        parse(Budgets, {"video": {"total_s": 0.4, "steps": 4, "decoder_ms": 500}}, "budgets")
    assert parse(Budgets, {"memory_mib": 1}, "budgets").violations(0, 2 * 2**20) == ["memory"]
    assert VideoLatency(1.0, 2).per_step_ms == 500
