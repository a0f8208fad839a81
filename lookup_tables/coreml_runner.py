"""Runner of an hwnas Core ML bundle, for a Mac (copied into each bundle as run_coreml.py).

    python run_coreml.py [--compute-unit CPU_AND_NE] [--warmup 10] [--repeats 50]

Needs only ``pip install coremltools numpy``. Times each converted model of manifest.json
with Core ML and writes results_<UNIT>.json beside it, for ``hwnas lut import-results``.
A model that fails to load or predict becomes a row with status "error" and the reason.
"""
import argparse
import json
import platform
import statistics
import subprocess
import time
from datetime import datetime, timezone
from pathlib import Path


def percentile(values, q):
    s = sorted(values)
    pos = (len(s) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def mac_model():
    try:
        return subprocess.run(["sysctl", "-n", "hw.model"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return platform.machine()


def main():
    import coremltools as ct
    import numpy as np

    ap = argparse.ArgumentParser()
    ap.add_argument("--compute-unit", default="CPU_AND_NE", choices=["ALL", "CPU_ONLY", "CPU_AND_GPU", "CPU_AND_NE"])
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=50)
    args = ap.parse_args()
    here = Path(__file__).resolve().parent
    manifest = json.loads((here / "manifest.json").read_text())
    rows = []
    for e in manifest["entries"]:
        if e["status"] != "ok":
            rows.append({"key": e["key"], "status": e["status"], "reason": e["reason"]})
            continue
        try:
            model = ct.models.MLModel(str(here / e["file"]), compute_units=getattr(ct.ComputeUnit, args.compute_unit))
            rng = np.random.default_rng(0)
            feed = {inp.name: rng.standard_normal(tuple(inp.type.multiArrayType.shape)).astype(np.float32)
                    for inp in model.get_spec().description.input}
            for _ in range(args.warmup):
                model.predict(feed)
            times = []
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                model.predict(feed)
                times.append((time.perf_counter() - t0) * 1e3)
            rows.append({"key": e["key"], "status": "ok", "latency_ms": statistics.median(times),
                         "latency_p10_ms": percentile(times, 0.1), "latency_p90_ms": percentile(times, 0.9),
                         "repeats": len(times)})
        except Exception as exc:  # one model that fails is one row's error
            text = str(exc).splitlines()[0] if str(exc) else ""
            status = "oom" if "memory" in text.lower() else "error"
            rows.append({"key": e["key"], "status": status, "reason": f"{type(exc).__name__}: {text}"[:300]})
        print(rows[-1]["key"], rows[-1]["status"], rows[-1].get("latency_ms"))
    results = {"format": 1, "manifest": manifest,
               "created": datetime.now(timezone.utc).replace(microsecond=0).isoformat(),
               "device": {"compute_unit": args.compute_unit, "device_name": mac_model(),
                          "machine": platform.machine(), "macos": platform.mac_ver()[0], "backend": "coreml",
                          "coremltools": ct.__version__},
               "protocol": {"warmup": args.warmup, "repeats": args.repeats, "statistic": "median (p10, p90)"},
               "rows": rows}
    out = here / f"results_{args.compute_unit}.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(out)


if __name__ == "__main__":
    main()
