"""caption_discrimination, the weighted quality, the frame-position code and the speed option."""

import pytest
import torch

from core.config import parse
from core.errors import ConfigError
from evaluators.config import EvaluatorConfig
from evaluators.data import DataError, DatasetWriter, LatentDataset
from evaluators.scores import create_evaluator
from evaluators.synth import COLOURS, MOTIONS, render, synthesise
from evaluators.text import _word_vector
from search_spaces.ops import create_op
from search_spaces.shapes import OpShape

DISC = EvaluatorConfig(name="caption_discrimination", options={"clips": 24, "t_values": (0.5, 0.9)})
FLOW = EvaluatorConfig(name="flow_loss", options={"val_clips": 24, "t_values": (0.5, 0.9)})


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    path = synthesise(tmp_path_factory.mktemp("disc") / "data", videos=240, val_videos=24, frames=6,
                      height=8, width=8, tokens=8, text_dim=32, seed=5)
    return LatentDataset(path)


class MeanModel:
    """Predicts the velocity as if x0 were the mean training clip of the caption's value of
    ``attribute`` (read from the word at ``position`` of the built-in encoding):
    v = (x_t − μ)/t. With ``attribute=None`` it ignores the caption (the mean of all clips)."""

    def __init__(self, data, attribute, values, position):
        train = data.load("train")
        self.values, self.position = list(values), position
        self.words = torch.stack([_word_vector("still" if v == "none" else v, 32) for v in self.values])
        self.all = train.latents.mean(0)
        self.means = None
        if attribute is not None:
            self.means = torch.stack([train.latents[[i for i, v in enumerate(train.labels[attribute]) if v == value]]
                                      .mean(0) for value in self.values])

    def __call__(self, x_t, timestep, text):
        t = (timestep / 1000.0).reshape(-1, 1, 1, 1, 1)
        if self.means is None:
            mu = self.all.expand_as(x_t)
        else:
            mu = self.means[(text[:, self.position] @ self.words.T).argmax(-1)]
        return (x_t - mu) / t


def test_a_model_that_learned_motion_reads_motion_and_one_that_did_not_scores_chance(data):
    ev = create_evaluator(DISC, data)
    learned = ev.score(MeanModel(data, "motion", MOTIONS, 4)).breakdown  # "a red circle moving LEFT fast"
    blind = ev.score(MeanModel(data, None, MOTIONS, 4)).breakdown
    assert learned["acc_motion"] >= 0.6 > learned["chance_motion"] == pytest.approx(0.2)
    assert learned["margin_motion"] > 0
    assert blind["acc_motion"] == pytest.approx(blind["chance_motion"])  # ties score chance, not 0 or 1
    assert blind["margin_motion"] == pytest.approx(0.0, abs=1e-9)
    # the motion model knows nothing about colour: it cannot tell colours apart
    assert learned["acc_colour"] == pytest.approx(learned["chance_colour"])


def test_colour_knowledge_shows_in_the_colour_attribute_only(data):
    ev = create_evaluator(DISC.with_options(quality="margin"), data)
    colour = ev.score(MeanModel(data, "colour", COLOURS, 1))
    blind = ev.score(MeanModel(data, None, COLOURS, 1))
    assert colour.breakdown["acc_colour"] >= 0.6 and colour.breakdown["margin_colour"] > 0
    assert colour.quality > blind.quality  # quality = the mean margin


def test_a_dataset_without_attribute_labels_is_refused_in_one_line(tmp_path):
    w = DatasetWriter(tmp_path / "d", (6, 3, 8, 8), (8, 32), "builtin(L=8,D=32)", "identity")
    w.add("train", torch.randn(4, 6, 3, 8, 8), torch.randn(4, 8, 32), ["a"] * 4)
    w.add("val", torch.randn(2, 6, 3, 8, 8), torch.randn(2, 8, 32), ["a"] * 2, {"colour": ["red", "blue"]})
    with pytest.raises(DataError) as err:
        create_evaluator(DISC, LatentDataset(w.close()))
    message = str(err.value)
    assert "\n" not in message
    assert "motion, object, speed" in message and "flow_loss needs none" in message


def test_weighted_quality_is_the_weighted_mean_of_its_components(data):
    cfg = EvaluatorConfig(name="weighted", options={"components": [
        {"name": "flow_loss", "weight": 3.0, "options": FLOW.options}, {"name": "caption_discrimination", "options": DISC.options}]})
    model = MeanModel(data, "motion", MOTIONS, 4)
    score = create_evaluator(cfg, data).score(model)
    flow = create_evaluator(FLOW, data).score(model).quality
    disc = create_evaluator(DISC, data).score(model).quality
    assert score.quality == pytest.approx((3 * flow + disc) / 4)
    assert score.breakdown["caption_discrimination/acc_motion"] >= 0.6


def test_weighted_config_errors_name_the_problem():
    with pytest.raises(ConfigError, match=r"components\[0\]\.name: unknown evaluator 'flow'"):
        EvaluatorConfig(name="weighted", options={"components": [{"name": "flow"}]})
    with pytest.raises(ConfigError, match="components: give at least one"):
        EvaluatorConfig(name="weighted")
    with pytest.raises(ConfigError, match="evaluator.options: attributes must be a non-empty subset of motion"):
        EvaluatorConfig(name="caption_discrimination", options={"attributes": ["shape"]})
    with pytest.raises(ConfigError, match=r"^evaluator.options.components\[0\].weight: expected a number"):
        parse(EvaluatorConfig, {"name": "weighted", "options": {"components": [{"name": "flow_loss", "weight": "a lot"}]}},
              "evaluator")
    with pytest.raises(ConfigError, match=r"^evaluator.options.components\[1\].options.val_clips: expected an integer"):
        parse(EvaluatorConfig, {"name": "weighted", "options": {"components": [
            {"name": "caption_discrimination"}, {"name": "flow_loss", "options": {"val_clips": "all"}}]}}, "evaluator")


@pytest.mark.parametrize("op", ["conv1d", "self_attn1d", "cross_attn1d"])
def test_the_frame_embedding_lets_a_layer_tell_frames_apart(op):
    shape = OpShape(op, 16, 6, 4, 4, 8, 32, 1, 1, "float32")
    x = torch.randn(1, 1, 16, 4, 4).expand(1, 6, 16, 4, 4).contiguous()  # the same frame six times
    ctx = torch.randn(1, 8, 32)
    outs = {}
    for fe in (False, True):
        torch.manual_seed(0)
        layer = create_op(op, shape, rope=False, frame_embedding=fe)
        assert torch.equal(layer(x, ctx), x)  # still the identity when inserted
        torch.nn.init.normal_(layer.proj_out.weight)
        outs[fe] = layer(x, ctx)
    middle = slice(1, 5)  # conv1d's zero padding marks the two end frames anyway
    assert torch.allclose(outs[False][:, middle], outs[False][:, 1:2].expand(1, 4, 16, 4, 4), atol=1e-5)
    assert not torch.allclose(outs[True][:, 1], outs[True][:, 2], atol=1e-3)


def test_speed_scale_sets_the_pixels_per_frame_and_refuses_paths_that_leave_the_frame(tmp_path):
    def centroid_x(clip):
        w = clip.amax(1)
        return ((w.sum(1) * torch.arange(8.0)).sum(-1) / w.sum((1, 2)))
    for scale in (1.0, 1.5):
        clip = render("square", "red", "right", "fast", 4, 8, 8, (2.0, 4.0), scale)
        assert centroid_x(clip).diff().mean().item() == pytest.approx(1.2 * scale * 8 / 16, abs=0.05)
    with pytest.raises(ValueError, match="speed_scale 3"):
        synthesise(tmp_path / "d", videos=8, val_videos=2, frames=8, height=8, width=8, speed_scale=3.0)


def test_frame_correlated_noise_has_unit_variance_and_the_asked_correlation():
    from evaluators.flow import video_noise
    gen = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    assert torch.equal(video_noise((2, 4, 3, 8, 8), gen()), torch.randn((2, 4, 3, 8, 8), generator=gen()))
    noise = video_noise((4000, 2, 1, 2, 2), gen(), 0.75)
    assert noise.var().item() == pytest.approx(1.0, abs=0.03)
    a, b = noise[:, 0].flatten(), noise[:, 1].flatten()
    assert torch.corrcoef(torch.stack([a, b]))[0, 1].item() == pytest.approx(0.75, abs=0.03)
    with pytest.raises(ValueError, match="noise_correlation"):
        from evaluators.config import TrainConfig
        TrainConfig(noise_correlation=1.0)


def test_lr_scale_gives_each_operator_type_its_own_learning_rate():
    from evaluators.config import TrainConfig
    from evaluators.training import param_groups

    class Model:
        temporal = torch.nn.ModuleDict({"mid_conv1d": torch.nn.Linear(2, 2), "up1_cross_attn1d": torch.nn.Linear(2, 2),
                                        "down0_cross_attn1d": torch.nn.Linear(2, 2)})
    groups = param_groups(Model(), TrainConfig(lr=1e-3, lr_scale={"cross_attn1d": 10.0}))
    lrs = {len(g["params"]): g["lr"] for g in groups}
    assert lrs == {2: pytest.approx(1e-3), 4: pytest.approx(1e-2)}
    with pytest.raises(ValueError, match="lr_scale.conv1d"):
        TrainConfig(lr_scale={"conv1d": 0.0})
