"""Validation of whole networks against the prediction, and the lut CLI contract."""
import json

import pytest

from lookup_tables.validate import accuracy, sample_architectures
from tests.lookup_tables.conftest import tiny_space_dict, write_experiment


def test_accuracy_figures():
    a = accuracy([(104.0, 100.0), (92.0, 100.0), (100.0, 100.0), (130.0, 100.0)])
    assert a["within_5pct"] == 0.5 and a["within_10pct"] == 0.75
    assert a["mape"] == pytest.approx((0.04 + 0.08 + 0 + 0.3) / 4)
    assert a["rmse"] == pytest.approx(((16 + 64 + 0 + 900) / 4) ** 0.5)


def test_samples_are_distinct_and_start_with_the_backbone(mid_space):
    archs = sample_architectures(mid_space, 50, seed=1)
    assert archs[0] == mid_space.empty and len(set(archs)) == len(archs) == mid_space.size


def test_validate_cli_measures_whole_networks(tiny_table_path, tmp_path, hwnas):
    cfg = write_experiment(tmp_path / "e.yaml", tiny_space_dict(slots=["mid"], ops=["conv1d", "self_attn1d"]))
    out = hwnas("lut", "validate", tiny_table_path, cfg, "--samples", 3, "--repeats", 5, "--warmup", 1, "--json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    for what in ("latency", "memory"):
        assert {"within_5pct", "within_10pct", "mape", "rmse"} <= set(report[what]) and report[what]["n"] == 3
    # The memory model (weights + inputs + the tracked activation peak) against the real peak,
    # the CPU allocator's blocks as torch.profiler records them: within issue 11's ±10 %.
    assert report["memory"]["within_10pct"] == 1.0
    # timings on a shared 2-core machine swing by tens of percent: this bound only catches a
    # prediction that is off in kind (accuracy is the benchmarks' business, lut_paired.py)
    assert report["latency"]["mape"] < 2.0
    worst = report["worst_latency"][0]
    assert worst["latency_ms"]["measured"] > 0 and worst["arch"]


def test_the_real_memory_meter_keeps_the_profilers_native_log_off_stderr(tiny_table_path, tmp_path, capfd):
    from nas.cli import main

    # torch.profiler, behind --memory real, logs a line from C++ at every start and stop
    # ("USDT: ... profiler_start"), past Python's sys.stderr: only file descriptor 2 sees it.
    cfg = write_experiment(tmp_path / "e.yaml", tiny_space_dict(slots=["mid"], ops=["conv1d"]))
    assert main(["lut", "validate", str(tiny_table_path), str(cfg), "--samples", "2", "--repeats", "3",
                 "--warmup", "0", "--passes", "1"]) == 0
    out, err = capfd.readouterr()
    assert "memory measured by: cpu allocator events" in out
    assert "profiler_st" not in err and "[2/2]" in err  # the progress still reaches stderr


def test_lut_cli_build_show_predict_needs(tmp_path, hwnas):
    cfg = write_experiment(tmp_path / "e.yaml", tiny_space_dict(slots=["mid"], ops=["conv1d"]),
                           lut={"warmup": 1, "repeats": 3})
    lut = tmp_path / "t.parquet"
    out = hwnas("lut", "build", cfg, "--out", lut)
    assert out.returncode == 0, out.stderr
    assert "2/2" in out.stderr  # the progress bar, on stderr
    show = json.loads(hwnas("lut", "show", lut, "--json").stdout)
    assert show["rows"] == 2 and show["fingerprint"]["backend"] == "torch" and len(show["entries"]) == 2
    pred = json.loads(hwnas("lut", "predict", lut, cfg, "--arch", "mid:conv1d:2", "--json").stdout)
    assert {"latency_ms", "memory_bytes", "missing", "latency_error_ms", "memory_error_bytes"} <= set(pred)
    assert pred["missing"] == [] and pred["latency_ms"] > 0
    other = write_experiment(tmp_path / "o.yaml", tiny_space_dict(slots=["mid"], ops=["conv1d"], text={"tokens": 4}))
    needs = json.loads(hwnas("lut", "needs", lut, other, "--json").stdout)
    assert len(needs["to_measure"]) == 2
    grid = tmp_path / "g.yaml"
    grid.write_text("channels: [16]\nframes: [4]\nheight: [4]\nwidth: [4]\ntext_tokens: [4]\nops: [conv1d]\n")
    out = hwnas("lut", "build", "--grid", grid, "--out", tmp_path / "g.parquet", "--repeats", 3, "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["rows"] == 1


@pytest.mark.parametrize("args, message", [
    (["lut", "build", "{cfg}", "--out", "{tmp}/x.parquet", "--backend", "tpu"], "backend 'tpu'"),
    (["lut", "build", "{cfg}", "--out", "{tmp}/x.parquet", "--device", "gpu7"], "device 'gpu7'"),
    (["lut", "build", "{cfg}", "--out", "{tmp}/x.parquet", "--backend", "analytic", "--device", "tpu"],
     "device spec 'tpu'"),
    (["lut", "build", "--grid", "{tmp}/bad_grid.yaml", "--out", "{tmp}/x.parquet"], "grid.channels"),
    (["lut", "build", "--out", "{tmp}/x.parquet"], "give an experiment CONFIG"),
    (["lut", "show", "{tmp}/corrupt.parquet"], "corrupt.parquet"),
    (["lut", "show", "{tmp}/none.parquet"], "no such lookup table"),
    (["lut", "predict", "{lut}", "{cfg}", "--arch", "mid:conv9d:1"], "conv9d"),
    (["lut", "validate", "{lut}", "{cfg}", "--samples", "0"], "--samples"),
])
def test_bad_input_is_one_line_and_exit_code_2(tiny_table_path, tmp_path, hwnas, args, message):
    cfg = write_experiment(tmp_path / "e.yaml", tiny_space_dict())
    (tmp_path / "bad_grid.yaml").write_text("channels: [0]\nframes: [4]\nheight: [4]\nwidth: [4]\ntext_tokens: [4]\n")
    (tmp_path / "corrupt.parquet").write_bytes(tiny_table_path.read_bytes()[:500])
    out = hwnas(*[a.format(cfg=cfg, tmp=tmp_path, lut=tiny_table_path) for a in args])
    err = out.stderr
    assert out.returncode == 2, err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert message in err
    assert not (tmp_path / "x.parquet").exists()
