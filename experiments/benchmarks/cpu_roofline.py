"""The roofline figures of this CPU for lookup_tables/device_specs/cpu.yaml: peak FLOP/s of
a float32 matmul and memory bandwidth of a large copy, with one thread (the table's
protocol), medians of repeats. Writes results/cpu_roofline.json.

    .venv/bin/python experiments/benchmarks/cpu_roofline.py
"""
from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import machine, write  # noqa: E402


def timed(fn, repeats: int) -> list[float]:
    fn()
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def main() -> None:
    torch.set_num_threads(1)
    result = {"machine": machine(), "threads": 1}
    n = 1024
    a, b = torch.randn(n, n), torch.randn(n, n)
    ts = timed(lambda: a @ b, 15)
    flops = [2 * n ** 3 / t for t in ts]
    result["matmul_float32"] = {"n": n, "flops_per_s_median": statistics.median(flops),
                                "flops_per_s_max": max(flops), "flops_per_s_min": min(flops)}
    for dtype in (torch.bfloat16, torch.float16):
        a16, b16 = a.to(dtype), b.to(dtype)
        ts = timed(lambda: a16 @ b16, 5)
        name = str(dtype).split(".")[1]
        result[f"matmul_{name}"] = {"n": n, "flops_per_s_median": statistics.median(2 * n ** 3 / t for t in ts)}
    src = torch.randn(64 * 1024 * 1024 // 4)  # 64 MiB, far beyond the caches
    dst = torch.empty_like(src)
    ts = timed(lambda: dst.copy_(src), 15)
    bw = [2 * src.numel() * 4 / t for t in ts]  # read + write
    result["copy_64mib"] = {"bytes_per_s_median": statistics.median(bw), "bytes_per_s_max": max(bw),
                            "bytes_per_s_min": min(bw)}
    ts = timed(lambda: torch.relu(torch.zeros(1)), 200)
    result["tiny_op_overhead_ms_median"] = statistics.median(ts) * 1e3
    print(write("cpu_roofline", result))
    for k in ("matmul_float32", "matmul_bfloat16", "matmul_float16", "copy_64mib"):
        print(k, result[k])
    print("tiny op overhead ms", result["tiny_op_overhead_ms_median"])


if __name__ == "__main__":
    main()
