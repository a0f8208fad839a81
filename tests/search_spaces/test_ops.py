"""Contract tests over the operator registry: every registered operator is held to them."""
import pytest
import torch

from search_spaces.cost import count_flops, peak_activation_bytes
from search_spaces.ops import OPS, TemporalOp, create_op, list_ops, op_class
from search_spaces.shapes import OpShape

SHAPE = dict(channels=32, frames=4, height=6, width=5, text_tokens=5, text_dim=24, heads=2, batch=2)


def make(name, **options):
    torch.manual_seed(0)
    shape = OpShape(name, **SHAPE)
    return create_op(name, shape, **options), shape


def inputs(shape):
    g = torch.Generator().manual_seed(1)
    return torch.randn(*shape.video_shape, generator=g), torch.randn(*shape.text_shape, generator=g)


def test_registry_holds_the_six_paper_operators():
    assert set(list_ops()) >= {"conv1d", "conv3d", "self_attn1d", "self_attn3d", "cross_attn1d", "cross_attn3d"}


@pytest.mark.parametrize("name", list_ops())
def test_shape_in_equals_shape_out(name):
    op, shape = make(name)
    x, ctx = inputs(shape)
    assert op(x, ctx).shape == x.shape


@pytest.mark.parametrize("name", list_ops())
def test_fresh_operator_is_exactly_identity(name):
    op, shape = make(name)
    x, ctx = inputs(shape)
    assert torch.equal(op(x, ctx), x)


@pytest.mark.parametrize("name", list_ops())
@pytest.mark.parametrize("options", [dict(qk_norm=True, rope=True), dict(qk_norm=False, rope=False)])
def test_gradients_reach_every_parameter(name, options):
    op, shape = make(name, **options)
    x, ctx = inputs(shape)
    optim = torch.optim.SGD(op.parameters(), lr=0.1)
    # Step 0: only the zero-initialised output projection can receive gradient.
    op(x, ctx).pow(2).mean().backward()
    assert op.proj_out.weight.grad.abs().sum() > 0
    optim.step()
    optim.zero_grad()
    # After one step every parameter is on the gradient path.
    op(x, ctx).pow(2).mean().backward()
    for pname, p in op.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, pname
    assert not torch.equal(op(x, ctx), x)  # and it no longer is the identity


@pytest.mark.parametrize("name", list_ops())
def test_operator_mixes_along_time(name):
    """A trained temporal operator makes frame t depend on other frames (or on the text)."""
    op, shape = make(name)
    with torch.no_grad():
        for p in op.parameters():
            p.normal_(0, 0.2)
    x, ctx = inputs(shape)
    x2 = x.clone()
    x2[:, -1] += torch.randn(x2[:, -1].shape, generator=torch.Generator().manual_seed(2))  # last frame only
    y, y2 = op(x, ctx), op(x2, ctx)
    if op.needs_context:
        ctx2 = ctx + torch.randn(ctx.shape, generator=torch.Generator().manual_seed(3))
        assert not torch.allclose(op(x, ctx2)[:, 0], y[:, 0])
    else:
        assert not torch.allclose(y2[:, 0], y[:, 0])


@pytest.mark.parametrize("name", list_ops())
@pytest.mark.parametrize("device", ["cpu", "meta"])
def test_analytic_flops_and_params_match_counted(name, device):
    op, shape = make(name)
    x, ctx = inputs(shape)
    op, x, ctx = op.to(device), x.to(device), ctx.to(device)
    counted = count_flops(lambda: op(x, ctx))
    cost = op_class(name).cost(shape)
    assert counted > 0
    assert abs(cost.flops - counted) <= 0.01 * counted
    assert cost.params == sum(p.numel() for p in op.parameters())


@pytest.mark.parametrize("name", list_ops())
def test_analytic_activation_bytes_match_tracked_peak(name):
    shape = OpShape(name, channels=64, frames=8, height=16, width=16, text_tokens=8, text_dim=32, heads=2)
    op = create_op(name, shape)
    x, ctx = inputs(shape)
    tracked = peak_activation_bytes(lambda: op(x, ctx))
    assert abs(op_class(name).cost(shape).activation_bytes - tracked) <= 0.15 * tracked


@pytest.mark.parametrize("name", list_ops())
def test_converts_to_coreml_mlprogram(name):
    import coremltools as ct

    op, shape = make(name)
    op.eval()
    x, ctx = inputs(shape)
    exported = torch.export.export(op, (x, ctx)).run_decompositions({})
    model = ct.convert(exported, convert_to="mlprogram", compute_precision=ct.precision.FLOAT16,
                       minimum_deployment_target=ct.target.iOS18)
    spec = model.get_spec()
    assert spec.WhichOneof("Type") == "mlProgram"
    types = {o.type for block in spec.mlProgram.functions["main"].block_specializations.values()
             for o in block.operations}
    expected = "conv" if name.startswith("conv") else "scaled_dot_product_attention"
    assert expected in types, sorted(types)


def test_cross_attention_requires_context():
    op, shape = make("cross_attn1d")
    x, _ = inputs(shape)
    with pytest.raises(ValueError, match="text tokens"):
        op.residual(x, None)


def test_unknown_operator_is_a_typed_error():
    from core.errors import UnknownNameError

    with pytest.raises(UnknownNameError, match="unknown operator 'conv9d'; allowed: conv1d"):
        create_op("conv9d", OpShape("conv9d", **SHAPE))


def test_new_operator_is_one_decorated_class():
    @OPS.register("test_identity_op")
    class Identity(TemporalOp):
        def __init__(self, channels, **kw):
            super().__init__(channels, **kw)
            self.proj_out = torch.nn.Linear(channels, channels)
            self.zero_init_output()

        def residual(self, x, context=None):
            return self.proj_out(x.transpose(2, -1)).transpose(2, -1)

    try:
        assert "test_identity_op" in list_ops()
        op = create_op("test_identity_op", OpShape("test_identity_op", **SHAPE))
        x = torch.randn(2, 4, 32, 6, 5)
        assert torch.equal(op(x), x)
    finally:
        OPS._entries.pop("test_identity_op")
