"""Reuse: a table measured on one grid prices a space of other shapes.

Table A holds the tiny backbone's operators on a grid (C 16-128, T 4/16, H, W 4/16, L 4/16);
space B is the tiny space at other frames, resolution and text length (T12, 12x12 latents,
L6), so none of its operator shapes is in A: each is estimated from A's neighbours with an
expected error from leave-one-out on A. B's operators are then measured to compare, and
whole networks of B are measured against the predictions of A (+ B's backbone) and of an
exact table of B. Writes results/lut_reuse.json.

    .venv/bin/python experiments/benchmarks/lut_reuse.py [--samples 20]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import machine, write  # noqa: E402

from core.config import load_yaml  # noqa: E402
from lookup_tables import GridConfig, LutConfig, build_table  # noqa: E402
from lookup_tables.grid import backbone_key  # noqa: E402
from lookup_tables.validate import accuracy, validate  # noqa: E402
from search_spaces.space import SearchSpace  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
# The tiny space's operators, text width (32) and head size (16) on a grid around its shapes.
GRID = GridConfig(ops=("conv1d", "self_attn1d", "cross_attn1d"), channels=(16, 32, 64, 128), frames=(4, 16),
                  height=(4, 16), width=(4, 16), text_tokens=(4, 16), text_dim=32, head_dim=16)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--out-dir")
    args = ap.parse_args()
    torch.set_num_threads(1)
    data = load_yaml(ROOT / "experiments" / "tiny.yaml")["space"]
    space_b = SearchSpace.from_dict(dict(data, video={"frames": 12, "height": 12, "width": 12}, text={"tokens": 6}))
    cfg = LutConfig(repeats=args.repeats, warmup=5, options={"clock": "thread"})  # as experiments/tiny.yaml
    result = {"machine": machine(), "grid": {k: list(v) if isinstance(v, tuple) else v
                                             for k, v in GRID.__dict__.items()},
              "space_b": {"video": [12, 12, 12], "text_tokens": 6}, "protocol": cfg.protocol()}
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        grid_only = LutConfig(repeats=args.repeats, warmup=5, options={"clock": "thread"}, grid=GRID)
        table_a = build_table(None, grid_only, Path(tmp) / "a.parquet", progress=False)
        result["grid_build_seconds"] = time.perf_counter() - t0
        result["grid_rows"] = len(table_a)
        result["loo_on_a"] = table_a.estimator.loo_report()
        result["needs"] = {k: (len(v) if isinstance(v, list) else v) for k, v in table_a.needs(space_b).items()}
        exact_b = build_table(space_b, cfg, Path(tmp) / "b.parquet", progress=False)
        # A reuses B's backbone (it is measured whole at B's input: it cannot come from a grid).
        table_a.add(backbone_key(space_b), exact_b.row_measurement(backbone_key(space_b)))
        per_op = []
        for shape in space_b.op_shapes():
            est = table_a.estimator.estimate(shape, "latency_ms")
            mem = table_a.estimator.estimate(shape, "activation_peak_bytes")
            truth = exact_b.row(shape.key)
            per_op.append({"key": shape.key, "measured_ms": truth["latency_ms"], "estimated_ms": est.value,
                           "stated_error_ms": est.error,
                           "rel_error": (est.value - truth["latency_ms"]) / truth["latency_ms"],
                           "within_stated": abs(est.value - truth["latency_ms"]) <= est.error,
                           "memory_rel_error": (mem.value - truth["activation_peak_bytes"]) / truth["activation_peak_bytes"],
                           "neighbours": list(est.neighbours)})
        result["operators"] = per_op
        result["operator_latency"] = accuracy([(o["estimated_ms"], o["measured_ms"]) for o in per_op])
        result["operator_within_stated_error"] = sum(o["within_stated"] for o in per_op) / len(per_op)
        result["operator_activation_memory_mape"] = sum(abs(o["memory_rel_error"]) for o in per_op) / len(per_op)
        report = validate(table_a, space_b, cfg, samples=args.samples, seed=1, passes=1)
        result["networks_from_a"] = {k: report[k] for k in ("latency", "memory", "measurement_spread_p10_p90")}
        pairs = [(exact_b.predict(space_b, space_b.parse(c["arch"])).latency_ms, c["latency_ms"]["measured"])
                 for c in report["cases"]]
        result["networks_from_exact_b"] = {"latency": accuracy(pairs)}
        result["networks_stated_error_ms_median"] = sorted(
            table_a.predict(space_b, space_b.parse(c["arch"])).latency_error_ms for c in report["cases"])[
            len(report["cases"]) // 2]
    result["seconds"] = time.perf_counter() - t0
    print(write("lut_reuse", result, args.out_dir))
    print("operators:", result["operator_latency"], "within stated error:", result["operator_within_stated_error"])
    print("networks from A:", result["networks_from_a"]["latency"])
    print("networks from exact B:", result["networks_from_exact_b"]["latency"])


if __name__ == "__main__":
    main()
