"""Lookup table of the tiny space on this CPU: time to build it, and how well it predicts
whole networks (latency and memory), beside the spread of repeated measurements.

Each sampled architecture is measured twice, in two passes over the sample (same
protocol as the table); the disagreement between the two passes is the measurement
noise, to read the prediction error against. Writes results/lut_tiny_cpu.json.

    .venv/bin/python experiments/benchmarks/lut_tiny_cpu.py [--samples 30] [--device cpu]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import machine, write  # noqa: E402

from core.config import load_yaml  # noqa: E402
from lookup_tables import LutConfig, build_table  # noqa: E402
from lookup_tables.validate import accuracy, validate  # noqa: E402
from search_spaces.space import SearchSpace  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def noise(first: list[dict], second: list[dict]) -> dict:
    """Relative disagreement between two measurements of the same networks."""
    a = {c["arch"]: c["latency_ms"]["measured"] for c in first}
    b = {c["arch"]: c["latency_ms"]["measured"] for c in second}
    a10 = {c["arch"]: c["latency_ms"]["measured_p10"] for c in first}
    b10 = {c["arch"]: c["latency_ms"]["measured_p10"] for c in second}
    return {"median": accuracy([(b[k], a[k]) for k in a if k in b]),
            "p10": accuracy([(b10[k], a10[k]) for k in a10 if k in b10])}


def run(device: str, samples: int, repeats: int, out_dir: str | None, name: str, keep_table: Path | None = None) -> dict:
    torch.set_num_threads(1)
    space = SearchSpace.from_dict(load_yaml(ROOT / "experiments" / "tiny.yaml")["space"])
    clock = "thread" if device == "cpu" else "wall"  # as experiments/tiny.yaml (see its lut section)
    cfg = LutConfig(device=device, options={"clock": clock})  # 10 warm-up calls, 50 repeats, 1 thread
    result = {"machine": machine(), "device": device, "space": "experiments/tiny.yaml", "protocol": cfg.protocol()}
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        table = build_table(space, cfg, Path(tmp) / "tiny.parquet", progress=False)
        result["build_seconds"] = time.perf_counter() - t0
        result["rows"] = len(table)
        result["fingerprint"] = table.fingerprint
        result["estimator_loo"] = table.estimator.loo_report()
        check = LutConfig(device=device, repeats=repeats, options={"clock": clock})
        passes = [validate(table, space, check, samples=samples, seed=0, passes=1) for _ in range(2)]
        if keep_table is not None:
            table.save(keep_table)
        # The same measurements read with the 10th percentile on both sides: what the
        # networks take when nothing else preempts them.
        p10 = table.with_statistic("p10")
        for p in passes:
            pairs = [(p10.predict(space, space.parse(c["arch"])).latency_ms, c["latency_ms"]["measured_p10"])
                     for c in p["cases"]]
            p["latency_p10"] = accuracy(pairs)
    result["validation_protocol"] = check.protocol()
    result["validation"] = [{k: p[k] for k in ("samples", "measured_ok", "latency", "latency_p10", "memory",
                                                "measurement_spread_p10_p90")} for p in passes]
    result["cases"] = [[{"arch": c["arch"], "latency_ms": c["latency_ms"], "memory_bytes": c["memory_bytes"]}
                        for c in p["cases"]] for p in passes]
    result["worst_latency_first_pass"] = passes[0]["worst_latency"]
    result["worst_memory_first_pass"] = passes[0]["worst_memory"][:3]
    result["noise_between_passes"] = noise(passes[0]["cases"], passes[1]["cases"])
    result["summary"] = {
        "latency_within_10pct": [p["latency"]["within_10pct"] for p in passes],
        "latency_mape": [p["latency"]["mape"] for p in passes],
        "latency_p10_within_10pct": [p["latency_p10"]["within_10pct"] for p in passes],
        "latency_p10_mape": [p["latency_p10"]["mape"] for p in passes],
        "memory_within_10pct": [p["memory"]["within_10pct"] for p in passes],
        "memory_mape": [p["memory"]["mape"] for p in passes],
        "noise_mape_between_passes": result["noise_between_passes"]["median"]["mape"],
        "noise_within_5pct_between_passes": result["noise_between_passes"]["median"]["within_5pct"],
        "noise_p10_mape_between_passes": result["noise_between_passes"]["p10"]["mape"],
        "median_spread_p10_p90": statistics.median(p["measurement_spread_p10_p90"]["median"] for p in passes),
    }
    print(write(name, result, out_dir))
    print(result["summary"], f"build {result['build_seconds']:.1f} s")
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--samples", type=int, default=30)
    ap.add_argument("--repeats", type=int, default=30, help="timed repeats per whole network")
    ap.add_argument("--out-dir", help="default: $OUT or results/ beside this script")
    ap.add_argument("--name", default=None)
    args = ap.parse_args()
    run(args.device, args.samples, args.repeats, args.out_dir, args.name or f"lut_tiny_{args.device.split(':')[0]}")


if __name__ == "__main__":
    main()
