"""The coarse search: states that cannot fit are pruned, with the reason."""
import json

from core.budgets import Budgets
from lookup_tables import LookupTable, Measurement
from lookup_tables.prune import prune
from search_spaces.architecture import Architecture, Layer
from tests.lookup_tables.conftest import tiny_space_dict, write_experiment


def _table(path):
    return LookupTable.load(path)


def test_no_budget_prunes_nothing(tiny_table_path, tiny_space):
    p = prune(tiny_space, _table(tiny_table_path), Budgets())
    assert p.pruned == [] and p.size_after == tiny_space.size and p.allows(tiny_space.full)


def test_a_latency_budget_prunes_the_states_that_break_it_alone(tiny_table_path, tiny_space):
    table = _table(tiny_table_path)
    base = table.predict(tiny_space, tiny_space.empty).latency_ms
    slot = tiny_space.slot("up1")
    one = table.row(slot.shape("self_attn1d").key)["latency_ms"]
    budget = Budgets(latency_ms=base + 1.5 * one)  # one self_attn1d at up1 fits, two do not
    p = prune(tiny_space, table, budget)
    assert p.state_reason("up1", "self_attn1d", 1) is None
    reason = p.state_reason("up1", "self_attn1d", 2)
    assert reason and reason.startswith("latency")
    assert not p.allows(Architecture({"up1": Layer("self_attn1d", 2)}))
    assert p.allows(Architecture({"up1": Layer("self_attn1d", 1)}))
    assert p.size_after < tiny_space.size
    # every architecture the pruning allows fits the budget by the prediction, and conversely
    for arch in list(tiny_space)[::7]:
        fits = table.predict(tiny_space, arch).latency_ms <= budget.latency_ms_per_step
        assert p.allows(arch) == fits


def test_an_oom_operator_is_pruned_at_every_count(tiny_table_path, tiny_space):
    table = _table(tiny_table_path)
    table.add(tiny_space.slot("mid").shape("cross_attn1d").key, Measurement(status="oom", reason="over 1 MiB"))
    p = prune(tiny_space, table, Budgets())
    assert [(x.slot, x.op, x.count) for x in p.pruned] == [("mid", "cross_attn1d", 1), ("mid", "cross_attn1d", 2)]
    assert "oom" in p.pruned[0].reason
    assert p.size_after == tiny_space.size // 7 * 5


def test_a_backbone_over_the_memory_budget_leaves_nothing(tiny_table_path, tiny_space):
    table = _table(tiny_table_path)
    p = prune(tiny_space, table, Budgets(memory_mib=1))
    assert p.backbone_reason.startswith("backbone alone: memory") and p.size_after == 0
    assert not p.allows(tiny_space.empty)


def test_space_show_lists_pruned_states(tiny_table_path, tmp_path, tiny_space, hwnas):
    table = _table(tiny_table_path)
    base = table.predict(tiny_space, tiny_space.empty).latency_ms
    cfg = write_experiment(tmp_path / "e.yaml", tiny_space_dict(), budgets={"latency_ms": base + 1.0})
    out = hwnas("space", "show", cfg, "--lut", tiny_table_path, "--json")
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    assert info["pruned"] and {"slot", "op", "count", "reason"} <= set(info["pruned"][0])
    assert info["size_after"] < info["size"]
    text = hwnas("space", "show", cfg, "--lut", tiny_table_path).stdout
    assert "pruned by" in text and "latency" in text


def test_snapgen_v_is_priced_analytically_and_pruned_by_its_memory_budget(tmp_path):
    import time

    from core.config import load_yaml, parse
    from lookup_tables import LutConfig, build_table
    from search_spaces.space import SearchSpace
    from tests.lookup_tables.conftest import TINY

    data = load_yaml(TINY.replace("tiny.yaml", "snapgen_v.yaml"))
    space = SearchSpace.from_dict(data["space"])
    t0 = time.perf_counter()
    table = build_table(space, LutConfig(backend="analytic", device="iphone16_pro_max_ane"), tmp_path / "sv.parquet",
                        progress=False)
    assert time.perf_counter() - t0 < 60 and len(table) == 1 + len({s.key for s in space.op_shapes()})
    p = prune(space, table, parse(Budgets, {"memory_mib": 4096}, "budgets"))
    pruned = {(x.slot, x.op) for x in p.pruned}
    # Attention over all 15x64x64 tokens cannot fit an iPhone; temporal convolutions can.
    assert ("up3", "self_attn3d") in pruned and not any(op.startswith("conv") for _, op in pruned)
    assert all("MiB" in x.reason for x in p.pruned)
