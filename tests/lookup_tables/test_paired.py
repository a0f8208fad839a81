"""Issue 11: paired validation, real memory, calibration, provenance and measured-when-unsure."""
import json

import pyarrow.parquet as pq
import pytest

from lookup_tables import LookupTable
from lookup_tables.calibrate import default_design, fit
from lookup_tables.grid import backbone_key
from lookup_tables.paired import PairedMeter, paired_stats
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

    def interleaved(self, fns, rounds, warmup):
        out = [[] for _ in fns]
        for _ in range(rounds):
            for i, fn in enumerate(fns):
                self.t += 1
                out[i].append(100 + 3 * self.t + fn())
        return out


def test_paired_meter_alternates_network_and_reference(tiny_space):
    prof = _FakeProfiler()
    arch = Architecture({"mid": Layer("conv1d", 2)})
    p = PairedMeter(prof, tiny_space, rounds=5, warmup=0).measure(arch, tiny_space.empty)
    assert prof.calls == [str(arch), "empty"] * 5  # A, B, A, B ...
    assert p.diff_ms == pytest.approx(20.0 - 3.0)  # own cost minus one step of drift, not 5 rounds of it


def test_calibration_fit_recovers_a_scale_and_prediction_applies_it(tiny_table_path, tiny_space):
    table = LookupTable.load(tiny_table_path)
    key = tiny_space.slot("mid").shape("conv1d").key
    op_ms = table.row(key)["latency_ms"]
    arch = Architecture({"mid": Layer("conv1d", 2)})
    obs = [{"arch": str(arch), "temporal_ms": 2 * op_ms * 1.5, "se_ms": 1e-4 * op_ms}]
    doc = fit(table, tiny_space, obs, noise_floor=0.0)
    term = doc["terms"][key]
    assert term["scale"] == pytest.approx(1.5, rel=1e-3) and term["scale_sd"] < 0.01
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
    assert len(default_design(tiny_space)) == sum(len(s.ops) for s in tiny_space.slots)


def test_calibration_survives_save_and_shows(tiny_table_path, tiny_space, tmp_path, hwnas):
    table = LookupTable.load(tiny_table_path)
    arch = Architecture({"mid": Layer("conv1d", 1)})
    key = tiny_space.slot("mid").shape("conv1d").key
    table.meta["calibration"] = fit(table, tiny_space, [{"arch": str(arch), "se_ms": 1e-6,
                                                         "temporal_ms": 0.5 * table.row(key)["latency_ms"]}])
    path = table.save(tmp_path / "c.parquet")
    assert json.loads((tmp_path / "c.parquet.json").read_text())["calibration"]["terms"][key]["scale"] < 0.6
    out = hwnas("lut", "show", path)
    assert out.returncode == 0 and "conv1d@mid: 0.5" in out.stdout
    cfg = write_experiment(tmp_path / "e.yaml", tiny_space_dict())
    cal = json.loads(hwnas("lut", "predict", path, cfg, "--arch", str(arch), "--json").stdout)
    raw = json.loads(hwnas("lut", "predict", path, cfg, "--arch", str(arch), "--uncalibrated", "--json").stdout)
    assert cal["calibrated"] and not raw["calibrated"] and cal["latency_ms"] < raw["latency_ms"]
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


def test_real_memory_is_a_fresh_process_resident_peak(tiny_space):
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
                "--actions", 2, "--json")
    assert out.returncode == 0, out.stderr
    r = json.loads(out.stdout)
    assert {"spearman", "kendall", "within_10pct", "mape"} <= set(r["latency"])
    assert {"mape", "within_10pct", "spearman"} <= set(r["temporal"])
    assert {"spearman", "temporal_mape"} <= set(r["ceiling"]) and r["passes"] == 2
    assert r["memory_meter"].startswith("resident-set") and r["memory"]["n"] == 3
    assert r["actions"]["n"] == 2 and all("memory_bytes" in c for c in r["action_cases"])
    case = next(c for c in r["cases"] if c["arch"] != "empty")
    assert len(case["temporal_ms"]["passes"]) == 2 and case["temporal_ms"]["predicted"] > 0
    # The backbone alone: nothing temporal, predicted or timed inside the network.
    empty = next(c for c in r["cases"] if c["arch"] == "empty")
    assert empty["temporal_ms"]["predicted"] == 0 and empty["temporal_ms"]["in_situ"] == 0


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
