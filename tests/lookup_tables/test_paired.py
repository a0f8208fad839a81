"""Issue 11: paired validation, real memory, calibration, provenance and measured-when-unsure."""
import json
import re

import pyarrow.parquet as pq
import pytest

from lookup_tables import LookupTable
from lookup_tables.calibrate import default_design, fit
from lookup_tables.grid import backbone_key
from lookup_tables.paired import PairedMeter, paired_stats, se_median
from lookup_tables.unsure import by_provenance, measure_if_unsure, should_measure
from lookup_tables.validate import kendall, spearman
from search_spaces.architecture import Architecture, Layer
from tests.lookup_tables.conftest import FAST, tiny_space_dict, write_experiment


def test_rank_correlations_match_their_definitions():
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    # scipy.stats.spearmanr([1,2,3,4,5],[2,1,4,3,5]) = 0.8, kendalltau = 0.6
    assert spearman([1, 2, 3, 4, 5], [2, 1, 4, 3, 5]) == pytest.approx(0.8)
    assert kendall([1, 2, 3, 4, 5], [2, 1, 4, 3, 5]) == pytest.approx(0.6)
    # ties (tau-b): scipy.stats.kendalltau([1,1,2,3],[1,2,2,3]) = 0.8
    assert kendall([1, 1, 2, 3], [1, 2, 2, 3]) == pytest.approx(0.8)
    assert spearman([1, 1, 1], [1, 2, 3]) is None


def test_paired_difference_cancels_drift():
    drift = [50 + 10 * (i % 7) for i in range(21)]  # the machine slows and speeds up
    a = [d + 2.0 for d in drift]
    b = list(drift)
    p = paired_stats(a, b)
    assert p.diff_ms == pytest.approx(2.0) and p.diff_se_ms == pytest.approx(0.0)
    # Unpaired medians of two separate runs would mix in the drift: here B ran on a slower stretch.
    assert paired_stats(a, [x + 5 for x in b]).diff_ms == pytest.approx(-3.0)


class _FakeProfiler:
    """Interleaves with a drifting clock: each call's time is drift(t) + the network's own cost."""

    def __init__(self):
        self.t, self.calls = 0, []

    def network_call(self, space, arch):
        def fn():
            self.calls.append(str(arch))
            return 10.0 * arch.total_layers
        return fn

    def interleaved(self, fns, rounds, warmup, lead_in=0):
        out = [[] for _ in fns]
        for _ in range(rounds):
            for i, fn in enumerate(fns):
                self.t += 1
                self.calls.extend(["lead-in"] * lead_in)
                out[i].append(100 + 3 * self.t + fn())
        return out


def test_a_slower_machine_state_is_scaled_to_the_tables_speed():
    # The machine spends rounds in a state 1.5x slower; there the temporal layers are slower too.
    slow = [1.0] * 8 + [1.5] * 25 + [1.0] * 7
    b = [20.0 * k for k in slow]
    a = [(20.0 + 2.0) * k for k in slow]
    plain = paired_stats(a, b)
    assert plain.diff_ms == pytest.approx(3.0)  # the slow state's 2 ms x 1.5 wins the median
    p = paired_stats(a, b, ref_ms=20.0)
    assert p.diff_ms == pytest.approx(2.0) and p.raw_diff_ms == pytest.approx(3.0)
    assert p.a_scaled_ms == pytest.approx(22.0) and p.speed == pytest.approx(1.5)
    # Against a table built on a machine twice as fast, the same rounds read at half.
    assert paired_stats(a, b, ref_ms=10.0).diff_ms == pytest.approx(1.0)
    # An action's child and parent: the speed comes from the backbone timed beside them.
    child, parent = [(25.0 + 1.0) * k for k in slow], [25.0 * k for k in slow]
    assert paired_stats(child, parent, ref=b, ref_ms=20.0).diff_ms == pytest.approx(1.0)


def test_paired_meter_times_the_backbone_beside_an_action(tiny_space):
    prof = _FakeProfiler()
    parent = Architecture({"mid": Layer("conv1d", 1)})
    child = Architecture({"mid": Layer("conv1d", 2)})
    p = PairedMeter(prof, tiny_space, rounds=3, warmup=0, ref_ms=100.0).measure(child, parent)
    assert prof.calls == ["lead-in", str(child), "lead-in", str(parent), "lead-in", "empty"] * 3
    assert p.speed is not None and p.raw_diff_ms == pytest.approx(10.0 - 3.0)


def test_cpu_allocator_meter_is_the_allocators_peak():
    import torch

    from lookup_tables.memory import CpuAllocatorMeter

    mib = 1 << 20
    keep = torch.empty(mib // 4)  # allocated before: not counted
    with CpuAllocatorMeter() as m:
        x = torch.empty(mib // 4)  # 1 MiB
        y = torch.empty(2 * mib // 4)  # 2 MiB: 3 MiB live
        del x, y
        z = torch.empty(mib // 4)
        del z
    assert m.peak_bytes == 3 * mib
    del keep


def test_real_memory_on_cpu_is_the_allocators_and_repeats(tiny_space):
    from lookup_tables.profilers.torch_backend import TorchProfiler
    from lookup_tables.validate import _real_memory

    arch = Architecture({"up1": Layer("self_attn1d", 2)})
    prof = TorchProfiler(FAST, "float32", {"qk_norm": True, "rope": True})
    one = _real_memory(prof, tiny_space, [tiny_space.empty, arch], FAST, "real")
    two = _real_memory(prof, tiny_space, [arch], FAST, "real")
    assert one[str(arch)]["meter"].startswith("cpu allocator")
    assert one[str(arch)] == two[str(arch)]  # exact: the allocator's record, not the resident set
    assert one[str(arch)]["activation_peak_bytes"] > 0
    assert one[str(arch)]["param_bytes"] > one["empty"]["param_bytes"]


def test_paired_meter_alternates_network_and_reference(tiny_space):
    prof = _FakeProfiler()
    arch = Architecture({"mid": Layer("conv1d", 2)})
    p = PairedMeter(prof, tiny_space, rounds=5, warmup=0).measure(arch, tiny_space.empty)
    assert prof.calls == ["lead-in", str(arch), "lead-in", "empty"] * 5  # A, B, A, B ..., each led in
    assert p.diff_ms == pytest.approx(20.0 - 3.0)  # own cost minus one step of drift, not 5 rounds of it


def test_each_timed_call_follows_a_call_of_itself():
    import time

    # A subject timed right after another is slower than in steady state (cold code and
    # buffers): the lead-in call makes the timed call follow itself, and only it is timed.
    from lookup_tables.profilers.torch_backend import TorchProfiler

    prof, seq = TorchProfiler(FAST, "float32", {}), []

    def subject(name):
        def fn():
            seq.append(name)
            if len(seq) >= 2 and seq[-2] != name:  # follows another subject: 5 ms of busy work
                end = time.thread_time() + 0.005
                while time.thread_time() < end:
                    pass
        return fn

    a, b = prof.interleaved([subject("a"), subject("b")], rounds=4, warmup=1, lead_in=1)
    assert seq == ["a", "b"] + ["a", "a", "b", "b"] * 4
    assert max(a + b) < 4.0  # no timed call paid the 5 ms: each followed a call of itself
    _, b_cold = prof.interleaved([subject("a"), subject("b")], rounds=4, warmup=0)
    assert min(b_cold) >= 4.5  # without the lead-in, every call follows the other subject


def test_calibration_fit_recovers_a_scale_and_prediction_applies_it(tiny_table_path, tiny_space):
    table = LookupTable.load(tiny_table_path)
    key = tiny_space.slot("mid").shape("conv1d").key
    op_ms = table.row(key)["latency_ms"]
    arch = Architecture({"mid": Layer("conv1d", 2)})
    # One and two layers (the default design's pair) tell the scale from the slot's fixed cost.
    obs = [{"arch": str(Architecture({"mid": Layer("conv1d", n)})), "temporal_ms": n * op_ms * 1.5,
            "se_ms": 1e-4 * op_ms} for n in (1, 2)]
    doc = fit(table, tiny_space, obs, noise_floor=0.0)
    term = doc["terms"][key]
    assert term["scale"] == pytest.approx(1.5, rel=1e-3) and term["scale_sd"] < 0.01
    assert doc["overheads"]["mid"]["ms"] == pytest.approx(0.0, abs=1e-3 * op_ms)
    assert term["op"] == "conv1d" and term["slot"] == "mid"
    plain = table.predict(tiny_space, arch)
    assert not plain.calibrated
    table.meta["calibration"] = doc
    cal = table.predict(tiny_space, arch)
    assert cal.calibrated and cal.uncalibrated_latency_ms == pytest.approx(plain.latency_ms)
    assert cal.temporal_ms == pytest.approx(1.5 * plain.temporal_ms, rel=1e-3)
    assert table.predict(tiny_space, arch, calibrated=False).latency_ms == pytest.approx(plain.latency_ms)
    # A term no network informs stays at the prior: noisy evidence barely moves it.
    noisy = fit(table, tiny_space, [{"arch": str(arch), "temporal_ms": 10 * op_ms, "se_ms": 100 * op_ms}])
    assert noisy["terms"][key]["scale"] == pytest.approx(1.0, abs=0.01)
    alone = sum(len(s.ops) * len({1, s.max_layers}) for s in tiny_space.slots)
    structured = default_design(tiny_space, random_networks=0)
    assert len(structured) == alone + 3  # and each operator at every slot
    # Then random networks like those a search meets: distinct, new, the same every time.
    design = default_design(tiny_space, random_networks=5)
    assert design[:len(structured)] == structured and len(set(design)) == len(structured) + 5
    assert tiny_space.empty not in design and design == default_design(tiny_space, random_networks=5)


def test_median_standard_error_holds_on_heavy_tails():
    import math
    import random
    import statistics

    # One round in ten is 8x as noisy (a state switch, a preemption): the median hardly moves,
    # and its standard error must say so; the normal-theory formula reads it from the tails.
    def draw(seed, n=300):
        rng = random.Random(seed)
        return [rng.gauss(0, 1) if rng.random() > 0.1 else rng.gauss(0, 8) for _ in range(n)]

    samples = [draw(s) for s in range(300)]
    true = statistics.pstdev([statistics.median(v) for v in samples])
    est = statistics.median([se_median(v) for v in samples])
    assert est == pytest.approx(true, rel=0.15)
    normal_theory = statistics.median([1.2533 * statistics.stdev(v) / math.sqrt(len(v)) for v in samples])
    assert normal_theory > 2 * true
    # On normal noise it agrees with the normal theory.
    gauss = [random.Random(s).gauss(0, 1) for s in range(2000)]
    assert se_median(gauss) == pytest.approx(1.2533 / math.sqrt(2000), rel=0.15)
    assert se_median([3.0] * 50) == 0.0 and se_median([1.0]) == 0.0


def test_calibration_tells_a_slots_cost_from_an_operators_first_use(tiny_table_path, tiny_space):
    # The first layer of an operator anywhere in the network is cold, each occupied slot costs
    # its own: one-slot networks alone cannot tell the two apart, the default design can, and a
    # network of three slots sharing one operator then pays the operator's first use once.
    table = LookupTable.load(tiny_table_path)
    slot_ms, first_ms = {"down0": 0.06, "mid": 0.03, "up1": 0.01}, {"conv1d": 0.09, "self_attn1d": 0.05,
                                                                   "cross_attn1d": 0.04}

    def truth(arch):
        ops = {layer.op for layer in arch.values()}
        return (sum(layer.count * table.row(tiny_space.slot(s).shape(layer.op).key)["latency_ms"]
                    for s, layer in arch.items()) + sum(slot_ms[s] for s in arch) + sum(first_ms[o] for o in ops))

    obs = [{"arch": str(a), "in_situ_ms": truth(a), "in_situ_se_ms": 1e-4, "paired_ms": truth(a),
            "paired_se_ms": 1e-4} for a in default_design(tiny_space, random_networks=0)]
    doc = fit(table, tiny_space, obs, noise_floor=0.0, source="both")
    for op, ms in first_ms.items():
        assert doc["first_use"][op]["ms"] == pytest.approx(ms, abs=2e-3)
    for slot, ms in slot_ms.items():
        assert doc["overheads"][slot]["ms"] == pytest.approx(ms, abs=2e-3)
    table.meta["calibration"] = doc
    three = Architecture({"down0": Layer("cross_attn1d", 2), "mid": Layer("cross_attn1d", 1),
                          "up1": Layer("conv1d", 1)})
    assert table.predict(tiny_space, three).temporal_ms == pytest.approx(truth(three), abs=5e-3)
    # An action that removes the network's last conv1d saves its first use; one that leaves
    # another cross_attn1d behind does not.
    no_conv = Architecture({"down0": Layer("cross_attn1d", 2), "mid": Layer("cross_attn1d", 1)})
    saved = table.predict(tiny_space, three).latency_ms - table.predict(tiny_space, no_conv).latency_ms
    assert saved == pytest.approx(truth(three) - truth(no_conv), abs=5e-3)


def test_calibration_from_both_sources_separates_scales_from_a_slots_fixed_costs(tiny_table_path, tiny_space):
    table = LookupTable.load(tiny_table_path)
    conv, attn = (tiny_space.slot("mid").shape(op).key for op in ("conv1d", "self_attn1d"))
    c_ms, a_ms = table.row(conv)["latency_ms"], table.row(attn)["latency_ms"]
    first, hook = 0.3 * c_ms, 0.4 * c_ms  # an occupied mid's cost in its layers, and outside them
    obs = []
    for op, ms, scale in (("conv1d", c_ms, 1.5), ("self_attn1d", a_ms, 0.8)):
        for n in (1, 2):
            arch = Architecture({"mid": Layer(op, n)})
            # In-situ hooks time only the layers; the paired difference also holds the hook's cost.
            obs.append({"arch": str(arch), "in_situ_ms": n * ms * scale + first, "in_situ_se_ms": 1e-4 * ms,
                        "paired_ms": n * ms * scale + first + hook, "paired_se_ms": 1e-4 * ms})
    doc = fit(table, tiny_space, obs, noise_floor=0.0, source="both")
    assert doc["terms"][conv]["scale"] == pytest.approx(1.5, rel=1e-3)
    assert doc["terms"][attn]["scale"] == pytest.approx(0.8, rel=1e-3)
    mid, use = doc["overheads"]["mid"], doc["first_use"]
    # One slot cannot tell its own in-layer cost from its operators' first use: their sum is pinned.
    for op in ("conv1d", "self_attn1d"):
        assert mid["in_layers_ms"] + use[op]["ms"] == pytest.approx(first, rel=1e-3)
    assert mid["outside_ms"] == pytest.approx(hook, rel=1e-3) and mid["networks"] == 4
    table.meta["calibration"] = doc
    one = Architecture({"mid": Layer("conv1d", 1)})
    plain = table.predict(tiny_space, one, calibrated=False)
    # Counted once per occupied slot, not per layer.
    assert table.predict(tiny_space, one).temporal_ms == pytest.approx(1.5 * plain.temporal_ms + first + hook,
                                                                      rel=1e-3)
    assert table.predict(tiny_space, tiny_space.empty).temporal_ms == 0
    # From in-situ rows alone the hook's cost is invisible.
    situ = fit(table, tiny_space, [dict(o, temporal_ms=o["in_situ_ms"], se_ms=o["in_situ_se_ms"]) for o in obs],
               noise_floor=0.0, source="in_situ")
    assert situ["overheads"]["mid"]["ms"] + situ["first_use"]["conv1d"]["ms"] == pytest.approx(first, rel=1e-3)
    assert situ["overheads"]["mid"]["outside_ms"] == 0


def test_calibration_survives_save_and_shows(tiny_table_path, tiny_space, tmp_path, hwnas):
    table = LookupTable.load(tiny_table_path)
    arch = Architecture({"mid": Layer("conv1d", 1)})
    key = tiny_space.slot("mid").shape("conv1d").key
    table.meta["calibration"] = fit(table, tiny_space, [
        {"arch": str(Architecture({"mid": Layer("conv1d", n)})), "se_ms": 1e-6,
         "in_situ_ms": 0.5 * n * table.row(key)["latency_ms"], "in_situ_se_ms": 1e-6,
         "paired_ms": 0.5 * n * table.row(key)["latency_ms"] + 0.25, "paired_se_ms": 1e-6} for n in (1, 2)],
        source="both", noise_floor=0.0)
    path = table.save(tmp_path / "c.parquet")
    assert json.loads((tmp_path / "c.parquet.json").read_text())["calibration"]["terms"][key]["scale"] < 0.6
    out = hwnas("lut", "show", path)
    assert out.returncode == 0 and "conv1d@mid: 0.5" in out.stdout
    shown = " ".join(out.stdout.split())  # rich wraps lines
    assert "source both" in shown and "fixed cost of an occupied mid: +0.250" in shown
    assert re.search(r"first conv1d in a network: [+-]0\.000 ± ", shown)  # no cost in its layers here
    cfg = write_experiment(tmp_path / "e.yaml", tiny_space_dict())
    cal = json.loads(hwnas("lut", "predict", path, cfg, "--arch", str(arch), "--json").stdout)
    raw = json.loads(hwnas("lut", "predict", path, cfg, "--arch", str(arch), "--uncalibrated", "--json").stdout)
    op_ms = table.row(key)["latency_ms"]
    assert cal["calibrated"] and not raw["calibrated"]
    assert cal["latency_ms"] == pytest.approx(raw["latency_ms"] - 0.5 * op_ms + 0.25, rel=1e-3)
    assert cal["uncalibrated_latency_ms"] == pytest.approx(raw["latency_ms"])


def test_rows_carry_provenance_and_old_tables_load_as_built(tiny_table_path, tmp_path):
    table = LookupTable.load(tiny_table_path)
    assert set(table.rows["provenance"]) == {"built"}
    assert table.row(table.keys()[0])["protocol"]["threads"] == 1
    # A table written before the provenance/protocol columns existed.
    pt = pq.read_table(tiny_table_path)
    old = pt.drop(["provenance", "protocol"])
    pq.write_table(old.replace_schema_metadata(pt.schema.metadata), tmp_path / "old.parquet")
    loaded = LookupTable.load(tmp_path / "old.parquet")
    assert set(loaded.rows["provenance"]) == {"built"}
    assert loaded.row(loaded.keys()[0])["protocol"]["clock"] == table.fingerprint["clock"]


def test_measured_when_unsure_measures_only_what_could_change_the_decision(tiny_table_path, tiny_space, tmp_path):
    table = LookupTable.load(tiny_table_path)
    key = tiny_space.slot("up1").shape("self_attn1d").key
    table.rows = table.rows.drop(index=key)
    table._estimator = None
    arch = Architecture({"up1": Layer("self_attn1d", 1)})
    pred = table.predict(tiny_space, arch)
    assert pred.missing == [key] and pred.latency_error_ms > 0
    err = pred.latency_error_ms
    assert should_measure(err, threshold_ms=err / 2) and not should_measure(err, threshold_ms=2 * err)
    assert should_measure(err, threshold_ms=10 * err, gap_ms=err / 2)  # the score gap decides
    assert measure_if_unsure(table, tiny_space, pred, FAST, threshold_ms=10 * err) == []
    assert key not in table
    out = tmp_path / "campaign.parquet"
    recs = measure_if_unsure(table, tiny_space, pred, FAST, gap_ms=err / 10, save_to=out)
    assert [r.key for r in recs] == [key] and recs[0].measured_ms > 0
    assert recs[0].as_event()["event"] == "lut_measured_when_unsure"
    saved = LookupTable.load(out)
    assert saved.row(key)["provenance"] == "measured-during-search"
    assert table.predict(tiny_space, arch).missing == []
    groups = by_provenance(saved, tiny_space)
    assert groups["measured-during-search"] == [key] and key not in groups["built"]
    assert groups["estimated"] == []


def test_measured_when_unsure_is_stated_at_the_tables_speed(tiny_table_path, tiny_space):
    from lookup_tables.profilers.base import Measurement
    from lookup_tables.profilers.torch_backend import TorchProfiler

    table = LookupTable.load(tiny_table_path)
    key = tiny_space.slot("up1").shape("self_attn1d").key
    table.rows = table.rows.drop(index=key)
    table._estimator = None
    bb = table.row(backbone_key(tiny_space))["latency_ms"]

    class TwiceAsSlow(TorchProfiler):  # the machine now runs the backbone, and everything, 2x slower
        def measure_op(self, shape):
            return Measurement(latency_ms=3.0, latency_p10_ms=2.0, latency_p90_ms=4.0, repeats=5)

        def measure_backbone(self, space):
            return Measurement(latency_ms=2 * bb, latency_p10_ms=2 * bb, latency_p90_ms=2 * bb, repeats=5)

    pred = table.predict(tiny_space, Architecture({"up1": Layer("self_attn1d", 1)}))
    prof = TwiceAsSlow(FAST, "float32", {"qk_norm": True, "rope": True})
    recs = measure_if_unsure(table, tiny_space, pred, FAST, threshold_ms=0.0, profiler=prof)
    assert recs[0].speed == pytest.approx(2.0) and recs[0].measured_ms == pytest.approx(1.5)
    assert table.row(key)["latency_ms"] == pytest.approx(1.5) and table.row(key)["latency_p90_ms"] == pytest.approx(2.0)


def test_show_lists_rows_by_provenance_and_what_a_space_would_estimate(tiny_table_path, tmp_path, hwnas):
    table = LookupTable.load(tiny_table_path)
    key = table.keys()[1]
    table.add(key, table.row_measurement(key), provenance="measured-during-search")
    path = table.save(tmp_path / "p.parquet")
    other = write_experiment(tmp_path / "o.yaml", tiny_space_dict(text={"tokens": 4}))
    show = json.loads(hwnas("lut", "show", path, other, "--json").stdout)
    assert show["provenance"]["measured-during-search"] == [key]
    assert show["by_provenance"] == {"built": len(table) - 1, "measured-during-search": 1}
    assert len(show["provenance"]["estimated"]) > 0  # cross-attention at 4 text tokens is not measured
    assert "measured-during-search: 1" in hwnas("lut", "show", path, other).stdout


def test_rss_memory_is_a_fresh_process_resident_peak(tiny_space):
    from lookup_tables.memory import TrackerMeter
    from lookup_tables.profilers.torch_backend import TorchProfiler
    from lookup_tables.rss import rss_peaks

    arch = Architecture({"up1": Layer("self_attn1d", 2)})
    got = rss_peaks(tiny_space, [tiny_space.empty, arch], FAST, {"qk_norm": True, "rope": True})
    assert set(got) == {"empty", str(arch)}
    fn = TorchProfiler(FAST, "float32", {"qk_norm": True, "rope": True}).network_call(tiny_space, arch)
    fn()
    with TrackerMeter() as m:
        fn()
    real = got[str(arch)]
    assert "VmHWM" in real["meter"]
    # Not the tracker's number, but the same order: a glibc that kept freed memory would read ~0.
    assert 0.5 * m.peak_bytes < real["activation_peak_bytes"] < 2 * m.peak_bytes
    assert real["param_bytes"] > got["empty"]["param_bytes"]


def test_validate_reports_paired_temporal_ceiling_actions_and_real_memory(tiny_table_path, tmp_path, hwnas):
    cfg = write_experiment(tmp_path / "e.yaml", tiny_space_dict(slots=["mid"], ops=["conv1d", "self_attn1d"]))
    out = hwnas("lut", "validate", tiny_table_path, cfg, "--samples", 3, "--repeats", 5, "--warmup", 1,
                "--actions", 2, "--action-repeats", 4, "--action-passes", 2, "--json")
    assert out.returncode == 0, out.stderr
    r = json.loads(out.stdout)
    assert {"spearman", "kendall", "within_10pct", "mape"} <= set(r["latency"])
    assert {"mape", "within_10pct", "spearman"} <= set(r["temporal"])
    assert r["temporal"]["n"] == 2  # the backbone alone has no temporal part to be relatively right about
    assert {"spearman", "temporal_mape"} <= set(r["ceiling"]) and r["passes"] == 2
    assert r["memory_meter"].startswith("cpu allocator") and r["memory"]["n"] == 3
    # Paired times are stated at the table's speed: its backbone row, and how fast the machine ran.
    assert r["scaled_to_table_speed"] and r["table_backbone_ms"] > 0 and r["machine_speed"]["median"] > 0
    assert r["actions"]["n"] == 2 and all("memory_bytes" in c for c in r["action_cases"])
    assert {"error_rms_ms", "model_error_rms_ms", "two_pass_within_20pct"} <= set(r["actions"])
    assert all(len(c["latency_ms"]["later_passes"]) == 1 for c in r["action_cases"])  # timed twice
    assert r["protocol"]["rounds"] == 5 and r["protocol"]["action_rounds"] == 4
    case = next(c for c in r["cases"] if c["arch"] != "empty")
    assert len(case["temporal_ms"]["passes"]) == 2 and case["temporal_ms"]["predicted"] > 0
    # The backbone alone: nothing temporal, predicted or timed inside the network.
    empty = next(c for c in r["cases"] if c["arch"] == "empty")
    assert empty["temporal_ms"]["predicted"] == 0 and empty["temporal_ms"]["in_situ"] == 0
    # Scaled to the table's speed unless asked: the scaled part is the plain one over the speed.
    assert case["temporal_ms"]["measured"] != case["temporal_ms"]["measured_raw"]
    plain = hwnas("lut", "validate", tiny_table_path, cfg, "--samples", 2, "--repeats", 3, "--warmup", 1,
                  "--passes", 1, "--as-measured", "--json")
    assert plain.returncode == 0, plain.stderr
    p = json.loads(plain.stdout)
    assert not p["scaled_to_table_speed"] and p["machine_speed"] is None
    assert all(c["temporal_ms"]["measured"] == c["temporal_ms"]["measured_raw"] for c in p["cases"])


def test_validate_refuses_a_backbone_row_of_another_protocol(tiny_table_path, tiny_space, tmp_path, hwnas):
    table = LookupTable.load(tiny_table_path)
    key = backbone_key(tiny_space)
    other = dict(table.fingerprint, threads=2)
    table.add(key, table.row_measurement(key), protocol=other)
    path = table.save(tmp_path / "b.parquet")
    cfg = write_experiment(tmp_path / "e.yaml", tiny_space_dict())
    out = hwnas("lut", "validate", path, cfg, "--samples", 2, "--repeats", 3)
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "Traceback" not in out.stderr
    assert "backbone row was measured with threads=2" in out.stderr
    out = hwnas("lut", "calibrate", path, cfg)
    assert out.returncode == 2 and "threads=2" in out.stderr


def test_action_report_states_what_a_true_prediction_would_score_against_the_noise():
    import math

    from lookup_tables.validate import _action_report

    def case(pred, measured, se):
        return {"latency_ms": {"predicted": pred, "predicted_uncalibrated": pred, "measured": measured,
                               "noise_se": se, "in_situ": None, "in_situ_se": None}}

    # A large Δ measured precisely is told within ±20 % almost surely; a small one with
    # an error of a third of it, less than half the time; one within its noise is not counted.
    r = _action_report([case(1.1, 1.0, 0.05), case(0.3, 0.3, 0.1), case(0.5, 0.05, 0.1)])
    assert r["above_noise"] == 2 and r["right_sign_within_20pct"] == 1.0
    assert r["ceiling_within_20pct"] == pytest.approx((math.erf(0.2 / (0.05 * math.sqrt(2)))
                                                       + math.erf(0.06 / (0.1 * math.sqrt(2)))) / 2)
    assert 0.7 < r["ceiling_within_20pct"] < 0.75
    # The error over the two actions above noise (0.1 and 0 ms off); no more than their noise.
    assert r["error_rms_ms"] == pytest.approx(math.sqrt(0.1 ** 2 / 2)) and r["model_error_rms_ms"] == 0.0
    assert r["two_pass_within_20pct"] is None  # one pass: no second to score
    # A second pass scores against the first as the table does: 0.25 vs 0.3 is within ±20 %, 1.3 vs 1.0 not.
    two = [case(1.1, 1.0, 0.05), case(0.3, 0.3, 0.1)]
    two[0]["latency_ms"]["later_passes"], two[1]["latency_ms"]["later_passes"] = [1.3], [0.25]
    assert _action_report(two)["two_pass_within_20pct"] == 0.5
    # Off by 0.3 and 0 ms with noise 0.05: the model's own error is what exceeds the noise.
    r = _action_report([case(1.3, 1.0, 0.05), case(-0.5, -0.5, 0.05)])
    assert r["error_rms_ms"] == pytest.approx(math.sqrt(0.3 ** 2 / 2))
    assert r["model_error_rms_ms"] == pytest.approx(math.sqrt(0.3 ** 2 / 2 - 0.05 ** 2))


def test_lut_calibrate_measures_the_design_with_random_networks(tiny_table_path, tiny_space, mid_space, tmp_path,
                                                                hwnas):
    import shutil

    lut = tmp_path / "t.parquet"
    shutil.copy(tiny_table_path, lut)
    shutil.copy(str(tiny_table_path) + ".json", str(lut) + ".json")
    cfg = write_experiment(tmp_path / "e.yaml", tiny_space_dict())
    out = hwnas("lut", "calibrate", lut, cfg, "--repeats", 3, "--warmup", 0, "--random-networks", 2, "--json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    # the structured design, then two random networks not among it
    archs = [o["arch"] for o in doc["observations"]]
    structured = [str(a) for a in default_design(tiny_space, random_networks=0)]
    assert archs[:len(structured)] == structured and len(set(archs)) == len(structured) + 2
    assert set(doc["first_use"]) == {"conv1d", "self_attn1d", "cross_attn1d"}
    # A space with no networks beyond the structured design gets no more.
    assert len(default_design(mid_space, random_networks=2)) == 4
    assert LookupTable.load(lut).meta["calibration"]["observations"] == doc["observations"]
    bad = hwnas("lut", "calibrate", lut, cfg, "--random-networks", -1)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "random networks" in bad.stderr
    # As text: progress counts the design, and the summary counts every term it lists.
    out = hwnas("lut", "calibrate", lut, cfg, "--repeats", 3, "--warmup", 0, "--random-networks", 0)
    assert out.returncode == 0, out.stderr
    n = len(structured)
    assert f"[1/{n}] " in out.stderr and f"[{n}/{n}] " in out.stderr
    doc = LookupTable.load(lut).meta["calibration"]
    terms = len(doc["terms"]) + len(doc["overheads"]) + len(doc["first_use"])
    assert terms == 9 + 3 + 3 and f"{terms} calibration terms from {n} networks" in out.stdout
    assert len([line for line in out.stdout.splitlines() if line.startswith("  ")]) == terms
    # A space of other shapes is priced uncalibrated, and says so.
    other = write_experiment(tmp_path / "f.yaml", tiny_space_dict(video={"frames": 6, "height": 8, "width": 8}))
    out = hwnas("lut", "predict", lut, other, "--arch", "full")
    assert out.returncode == 0 and "not calibrated: the table's calibration terms price other shapes" in out.stdout
    out = hwnas("lut", "predict", lut, cfg, "--arch", "full")
    assert out.returncode == 0 and "not calibrated" not in out.stdout and "(calibrated;" in out.stdout
