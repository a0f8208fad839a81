"""The inflated video UNet: frame-by-frame equivalence, identity insertion, frozen spatial layers."""
import time

import pytest
import torch

from search_spaces.architecture import Architecture, Layer
from search_spaces.backbones import build_unet
from search_spaces.cost import model_cost
from search_spaces.ops import op_class
from search_spaces.space import SearchSpace

TINY = {"backbone": {"preset": "tiny"}, "video": {"frames": 6, "height": 16, "width": 16},
        "op_options": {"head_dim": 16}}


@pytest.fixture(scope="module")
def space():
    return SearchSpace.from_dict(TINY)


@pytest.fixture(scope="module")
def unet(space):
    torch.manual_seed(0)
    return build_unet(space.config.backbone)


def batch(space, b=2):
    g = torch.Generator().manual_seed(0)
    _, t, c, h, w = space.video_shape
    return (torch.randn(b, t, c, h, w, generator=g), torch.tensor([900, 15]),
            torch.randn(b, space.config.text.tokens, space.text_shape[-1], generator=g))


def test_no_temporal_layer_is_the_2d_unet_frame_by_frame(space, unet):
    model = space.build(space.empty, unet=unet)
    x, t, ctx = batch(space)
    with torch.no_grad():
        video = model(x, t, ctx)
        frames = torch.stack([unet(x[:, i], t, encoder_hidden_states=ctx).sample for i in range(x.shape[1])], 1)
    torch.testing.assert_close(video, frames, atol=1e-5, rtol=1e-5)


def test_inserted_operators_keep_the_output_until_trained(space, unet):
    x, t, ctx = batch(space)
    with torch.no_grad():
        base = space.build(space.empty, unet=unet)(x, t, ctx)
        for arch in (space.full, Architecture({s: Layer(op, 2) for s, op in zip(space.slot_names, space.config.ops)})):
            assert torch.equal(space.build(arch, unet=unet)(x, t, ctx), base)


@pytest.mark.parametrize("slot", ["down0", "mid", "up1"])
def test_temporal_layers_at_a_slot_act_on_the_output(space, unet, slot):
    model = space.build(Architecture({slot: Layer("self_attn1d", 1)}), unet=unet)
    x, t, ctx = batch(space)
    with torch.no_grad():
        before = model(x, t, ctx)
        for p in model.temporal_parameters():
            p.normal_(0, 0.1)
        after = model(x, t, ctx)
    assert not torch.allclose(before, after)


def test_spatial_parameters_get_no_gradient(space, unet):
    model = space.build(space.full, unet=unet)
    x, t, ctx = batch(space)
    model(x, t, ctx).pow(2).mean().backward()
    assert all(not p.requires_grad and p.grad is None for p in model.unet.parameters())
    temporal = list(model.temporal_parameters())
    assert temporal and all(p.grad is not None for p in temporal)


def test_child_inherits_parent_weights_by_key(space, unet):
    parent = space.build(Architecture({"mid": Layer("conv1d", 1)}), unet=unet)
    with torch.no_grad():
        for p in parent.temporal_parameters():
            p.normal_(0, 0.1)
    child = space.build(Architecture({"mid": Layer("conv1d", 2)}), unet=unet)
    missing, unexpected = child.temporal.load_state_dict(parent.temporal.state_dict(), strict=False)
    assert not unexpected and all(k.startswith("mid_conv1d.1.") for k in missing)
    x, t, ctx = batch(space)
    with torch.no_grad():
        torch.testing.assert_close(child(x, t, ctx), parent(x, t, ctx))


def test_sd15_with_every_slot_full_builds_and_costs_on_meta():
    start = time.perf_counter()
    space = SearchSpace.from_dict({"backbone": {"preset": "sd15"}, "video": {"frames": 15, "height": 64, "width": 64},
                                   "text": {"tokens": 77}, "dtype": "float16",
                                   "ops": ["self_attn1d", "conv3d", "cross_attn3d"]})
    arch = Architecture({s: Layer(op, 2) for s, op in zip(space.slot_names, ["self_attn1d", "conv3d", "cross_attn3d"] * 3)})
    model = space.build(arch, unet=build_unet(space.config.backbone, "meta").half())
    assert all(p.is_meta for p in model.parameters())
    assert next(model.temporal_parameters()).dtype == torch.float16
    cost = model_cost(model, torch.empty(space.video_shape, device="meta", dtype=torch.float16),
                      torch.zeros(1, device="meta"), torch.empty(space.text_shape, device="meta", dtype=torch.float16))
    base = model_cost(space.build(space.empty, unet=build_unet(space.config.backbone, "meta").half()),
                      torch.empty(space.video_shape, device="meta", dtype=torch.float16),
                      torch.zeros(1, device="meta"), torch.empty(space.text_shape, device="meta", dtype=torch.float16))
    assert cost.params > base.params > 8e8  # SD-1.5 UNet is ~860M parameters
    extra = sum(op_class(l.op).cost(space.slot(s).shape(l.op)).flops * l.count for s, l in arch.items())
    assert abs((cost.flops - base.flops) - extra) <= 0.01 * extra
    assert time.perf_counter() - start < 60
