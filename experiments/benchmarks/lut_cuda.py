"""Lookup tables on a CUDA GPU: the tiny space (build time, prediction accuracy, noise) and
the snapgen_v space (SD-1.5-sized backbone, 15x64x64 FP16 latents: every operator at every
slot, the backbone, a few whole networks, the analytic H100 roofline beside the measures,
and the coarse search under the iPhone budgets). Writes lut_tiny_cuda.json,
lut_snapgen_v_cuda.json and the two tables under $OUT (or results/ beside this script).

    experiments/benchmarks/gpu.sh lut_cuda.py [--snapgen-samples 6]      (about 5 minutes on an H100)
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import machine, write  # noqa: E402
from lut_tiny_cpu import run as run_tiny  # noqa: E402

from core.budgets import Budgets  # noqa: E402
from core.config import load_yaml, parse  # noqa: E402
from lookup_tables import LutConfig, build_table  # noqa: E402
from lookup_tables.prune import prune  # noqa: E402
from lookup_tables.validate import validate  # noqa: E402
from search_spaces.space import SearchSpace  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def snapgen(device: str, samples: int, out_dir: Path) -> dict:
    data = load_yaml(ROOT / "experiments" / "snapgen_v.yaml")
    space = SearchSpace.from_dict(data["space"])
    budgets = parse(Budgets, data.get("budgets"), "budgets")
    cfg = LutConfig(device=device, warmup=3, repeats=10)
    result = {"machine": machine(), "device": device, "gpu": torch.cuda.get_device_name(device),
              "space": "experiments/snapgen_v.yaml", "protocol": cfg.protocol()}
    path = out_dir / "snapgen_v_cuda.parquet"
    t0 = time.perf_counter()
    table = build_table(space, cfg, path, progress=False)
    result["build_seconds"] = time.perf_counter() - t0
    result["rows"] = table.summary()["by_status"]
    result["entries"] = [{k: r[k] for k in ("key", "status", "latency_ms", "latency_p10_ms", "latency_p90_ms",
                                            "memory_bytes", "reason")} for r in table.records()]
    analytic = build_table(space, LutConfig(backend="analytic", device="h100"), out_dir / "snapgen_v_h100_analytic.parquet",
                           progress=False)
    ratios = {}
    for key in table.keys():
        m, a = table.row(key), analytic.row(key)
        if m["status"] == "ok" and a["status"] == "ok":
            ratios[key] = a["latency_ms"] / m["latency_ms"]
    result["analytic_over_measured_latency"] = {"median": statistics.median(ratios.values()),
                                                "min": min(ratios.values()), "max": max(ratios.values()),
                                                "per_entry": ratios}
    os.remove(out_dir / "snapgen_v_h100_analytic.parquet")
    os.remove(out_dir / "snapgen_v_h100_analytic.parquet.json")
    p = prune(space, table, budgets)
    result["prune_under_snapgen_budgets"] = p.as_dict()
    if samples:
        report = validate(table, space, LutConfig(device=device, warmup=2, repeats=5), samples=samples, seed=0, passes=1)
        result["validation"] = {k: report[k] for k in ("samples", "measured_ok", "latency", "memory",
                                                        "measurement_spread_p10_p90", "failed")}
        result["validation"]["cases"] = report["cases"]
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--tiny-samples", type=int, default=30)
    ap.add_argument("--snapgen-samples", type=int, default=6)
    ap.add_argument("--skip-tiny", action="store_true")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        sys.exit("lut_cuda.py: CUDA is not available here")
    out_dir = Path(os.environ.get("OUT") or ROOT / "experiments" / "benchmarks" / "results")
    out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    if not args.skip_tiny:
        run_tiny(args.device, args.tiny_samples, 30, str(out_dir), "lut_tiny_cuda", keep_table=out_dir / "tiny_cuda.parquet")
        print(f"tiny done at {time.perf_counter() - t0:.0f} s", flush=True)
    result = snapgen(args.device, args.snapgen_samples, out_dir)
    print(write("lut_snapgen_v_cuda", result, str(out_dir)))
    print({k: result[k] for k in ("build_seconds", "rows")}, result.get("validation", {}).get("latency"),
          result.get("validation", {}).get("memory"), f"total {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
