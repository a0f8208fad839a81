"""A lookup table measured in ONNX Runtime (CPU execution provider, one thread) for the tiny
space, and `lut validate` on it: the table's prediction against whole networks measured in
ONNX Runtime.

    .venv/bin/python experiments/benchmarks/lut_onnxruntime.py [--samples 10] [--repeats 20]

Writes results/lut_onnxruntime_cpu.json.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from _machine import machine, write  # noqa: E402

from lookup_tables import build_table  # noqa: E402
from lookup_tables.validate import validate  # noqa: E402
from nas.config import Experiment  # noqa: E402
from search_spaces.space import SearchSpace  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--samples", type=int, default=10)
    p.add_argument("--repeats", type=int, default=20)
    args = p.parse_args()
    exp = Experiment.load(ROOT / "experiments" / "tiny.yaml")
    cfg = dataclasses.replace(exp.lut, backend="onnxruntime", device="cpu", options={"threads": 1},
                              repeats=args.repeats, warmup=3)
    space = SearchSpace(exp.space)
    result = {"machine": machine(), "protocol": cfg.protocol(), "config": "experiments/tiny.yaml"}
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        table = build_table(space, cfg, Path(tmp) / "ort.parquet", progress=False)
        result["build_seconds"] = time.perf_counter() - t0
        result["rows"] = len(table.frame) if hasattr(table, "frame") else None
        t0 = time.perf_counter()
        report = validate(table, space, cfg, samples=args.samples, seed=0)
        result["validate_seconds"] = time.perf_counter() - t0
    result["latency"], result["memory"] = report["latency"], report["memory"]
    result["measurement_spread_p10_p90"] = report["measurement_spread_p10_p90"]
    result["cases"] = [{"arch": c["arch"], "predicted_ms": c["latency_ms"]["predicted"],
                        "measured_ms": c["latency_ms"]["measured"]} for c in report["cases"]]
    result["failed"] = report["failed"]
    print(write("lut_onnxruntime_cpu", result))


if __name__ == "__main__":
    main()
