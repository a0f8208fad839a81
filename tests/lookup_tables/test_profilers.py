"""Contract of every profiler backend in the registry, and the OOM paths."""
import platform

import pytest
import torch

from core.errors import ConfigError
from lookup_tables import PROFILERS, LutConfig, LutError, create_profiler
from lookup_tables.profilers.torch_backend import is_oom
from search_spaces.shapes import OpShape

SHAPE = OpShape("self_attn1d", 32, 8, 8, 8, 8, 32, 2)
OPTIONS = {"qk_norm": True, "rope": True}
CONFIGS = {"torch": LutConfig(warmup=1, repeats=5), "analytic": LutConfig(backend="analytic", device="cpu"),
           "coreml": LutConfig(backend="coreml", device="CPU_ONLY", warmup=1, repeats=3),
           "onnxruntime": LutConfig(backend="onnxruntime", device="cpu", warmup=1, repeats=5)}


def test_every_backend_has_a_contract_config():
    assert set(PROFILERS.names()) == set(CONFIGS)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_backend_measures_an_operator_and_the_backbone(name, mid_space):
    if name == "coreml" and platform.system() != "Darwin":
        with pytest.raises(LutError, match="export-bundle"):
            create_profiler(CONFIGS[name], "float32", OPTIONS)
        return
    prof = create_profiler(CONFIGS[name], "float32", OPTIONS)
    fp = prof.fingerprint()
    assert fp["backend"] == name and fp["dtype"] == "float32" and fp["versions"]["torch"] == torch.__version__
    m = prof.measure_op(SHAPE)
    assert m.status == "ok", m.reason
    assert 0 < m.latency_p10_ms <= m.latency_ms <= m.latency_p90_ms
    assert m.memory_bytes == m.param_bytes + m.input_bytes + m.activation_peak_bytes
    assert m.activation_peak_bytes > 0 and m.param_bytes > 0
    bb = prof.measure_backbone(mid_space)
    assert bb.status == "ok" and bb.latency_ms > m.latency_ms
    # The backbone holds more than its input at the slot's output, and less than at its peak.
    assert 0 < bb.slot_live_bytes["mid"] <= bb.activation_peak_bytes


def test_torch_fixes_and_records_the_thread_count():
    before = torch.get_num_threads()
    prof = create_profiler(LutConfig(warmup=0, repeats=3, options={"threads": 1}), "float32", OPTIONS)
    assert prof.fingerprint()["threads"] == 1
    assert prof.measure_op(SHAPE).repeats == 3
    assert torch.get_num_threads() == before


def test_over_the_memory_limit_is_oom_not_a_crash():
    prof = create_profiler(LutConfig(warmup=0, repeats=3, memory_limit_mib=0.01), "float32", OPTIONS)
    m = prof.measure_op(SHAPE)
    assert m.status == "oom" and "memory_limit_mib" in m.reason


def test_a_real_allocation_failure_is_oom():
    # conv3d weights of 2^17 x 2^17 x 27 floats (~1.8 PB): the allocator refuses at once.
    huge = OpShape("conv3d", 2 ** 17, 2, 1, 1, 1, 1, 1)
    m = create_profiler(LutConfig(warmup=0, repeats=3), "float32", OPTIONS).measure_op(huge)
    assert m.status == "oom", m.reason


def test_an_operator_that_breaks_is_an_error_row_not_a_crash():
    # An option the operator does not take makes its constructor raise: that row is an error.
    m = create_profiler(LutConfig(warmup=0, repeats=3), "float32", {"window": 3}).measure_op(SHAPE)
    assert m.status == "error" and "window" in m.reason


def test_cuda_oom_is_recognised_and_missing_cuda_is_a_clear_error():
    assert is_oom(torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert is_oom(RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 1 bytes"))
    assert not is_oom(ValueError("shape mismatch"))
    if not torch.cuda.is_available():
        with pytest.raises(LutError, match="CUDA is not available"):
            create_profiler(LutConfig(device="cuda", warmup=0, repeats=3), "float32", OPTIONS).measure_op(SHAPE)


def test_analytic_spec_cites_sources_and_unknown_spec_is_named():
    from core.errors import UnknownNameError
    from lookup_tables.profilers.analytic import list_specs, load_spec

    assert {"a100", "h100", "iphone16_pro_max_ane", "cpu"} <= set(list_specs())
    for name in list_specs():
        spec = load_spec(name)
        assert spec["sources"] and all(v > 0 for v in spec["peak_flops"].values())
    with pytest.raises(UnknownNameError, match="allowed: .*a100"):
        create_profiler(LutConfig(backend="analytic", device="tpu9"), "float32", OPTIONS)


def test_analytic_roofline_is_compute_bound_for_a_wide_conv3d():
    prof = create_profiler(LutConfig(backend="analytic", device="h100"), "float16", OPTIONS)
    shape = OpShape("conv3d", 1280, 15, 8, 8, 77, 768, 20, dtype="float16")
    m = prof.measure_op(shape)
    spec = prof.spec
    assert m.latency_ms == pytest.approx(m.flops / spec["peak_flops"]["float16"] * 1e3 + spec["launch_overhead_ms"],
                                         rel=1e-6)


def test_thread_clock_is_for_one_cpu_thread_and_is_recorded():
    with pytest.raises(ValueError, match="clock 'thread' needs"):
        LutConfig(device="cuda", options={"clock": "thread"})
    with pytest.raises(ValueError, match="clock 'thread' needs"):
        LutConfig(options={"threads": 2, "clock": "thread"})
    with pytest.raises(ConfigError, match="lut.options.clock: unknown key; allowed: threads"):
        LutConfig(backend="onnxruntime", options={"clock": "thread"})
    prof = create_profiler(LutConfig(warmup=1, repeats=5, options={"clock": "thread"}), "float32", OPTIONS)
    assert prof.fingerprint()["clock"] == "thread"
    m = prof.measure_op(SHAPE)
    assert m.status == "ok" and 0 < m.latency_p10_ms <= m.latency_ms


def test_onnxruntime_builds_a_table_that_lut_validate_checks(mid_space, tmp_path):
    """A table on the runtime a deployment uses, and validate comparing it with whole networks."""
    from lookup_tables import build_table
    from lookup_tables.validate import validate

    cfg = CONFIGS["onnxruntime"]
    table = build_table(mid_space, cfg, tmp_path / "ort.parquet", progress=False)
    assert table.fingerprint["backend"] == "onnxruntime" and "onnxruntime" in table.fingerprint["versions"]
    report = validate(table, mid_space, cfg, samples=3, seed=0)
    assert report["measured_ok"] == 3 and report["latency"]["n"] == 3
    assert report["latency"]["mape"] < 1.0  # same order of magnitude: the table prices ORT's network


def test_onnxruntime_unknown_device_is_named():
    with pytest.raises(LutError, match="allowed: cpu, cuda"):
        create_profiler(LutConfig(backend="onnxruntime", device="npu"), "float32", OPTIONS)
