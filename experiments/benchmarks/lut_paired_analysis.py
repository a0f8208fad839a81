"""The figures the README and calibrate.py draw from lut_paired.py's result files, recomputed
from those files (no measurement): per file, the paired standard error as reported against
what two passes of the same networks say it is; the fixed in-layer cost three-slot networks
paid in situ against the calibration's sum; the in-situ error of networks (mean) and of
actions (RMS); and the action misses (±20 %). Writes results/lut_paired_analysis.json.

    .venv/bin/python experiments/benchmarks/lut_paired_analysis.py [RESULT ...]
"""
from __future__ import annotations

import json
import math
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import machine, write  # noqa: E402

from search_spaces.architecture import Architecture  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT = ["lut_paired_tiny_cpu_lead_in", "lut_paired_tiny_cpu_first_use", "lut_paired_tiny_cpu_random_design"]


def analyse(r: dict) -> dict:
    cal = r["calibration"]
    slot_ms = {s: o["in_layers_ms"] for s, o in cal["overheads"].items()}
    first_ms = {op: o["ms"] for op, o in (cal.get("first_use") or {}).items()}
    nets = [c for c in r["report"]["cases"] if c["arch"] != "empty"]
    passes = [c["temporal_ms"]["passes"] for c in nets if len(c["temporal_ms"]["passes"]) == 2]
    three_paid, three_model = [], []
    for c in nets:
        layers, t = Architecture.parse(c["arch"]), c["temporal_ms"]
        model = sum(slot_ms[s] for s in layers.keys()) + sum(first_ms.get(op, 0.0)
                                                             for op in {layer.op for layer in layers.values()})
        if len(layers) == 3:  # what the network paid beyond its scaled layers, in situ
            three_paid.append(t["in_situ"] - (t["predicted_in_layers"] - model))
            three_model.append(model)
    acts = r["report"]["action_cases"]
    misses = [{"action": f"{c['parent']} {c['action']}", "predicted": c["latency_ms"]["predicted"],
               "measured": c["latency_ms"]["measured"]} for c in acts
              if abs(c["latency_ms"]["measured"]) > 2 * c["latency_ms"]["noise_se"]
              and not ((c["latency_ms"]["predicted"] > 0) == (c["latency_ms"]["measured"] > 0)
                       and abs(c["latency_ms"]["predicted"] - c["latency_ms"]["measured"])
                       <= 0.2 * abs(c["latency_ms"]["measured"]))]
    return {
        "temporal_se_reported_median_ms": statistics.median(c["temporal_ms"]["se"] for c in nets),
        "temporal_se_from_two_passes_ms": statistics.pstdev(p[0] - p[1] for p in passes) / math.sqrt(2),
        "three_slot_networks": len(three_paid),
        "three_slot_fixed_in_layers_paid_mean_ms": statistics.mean(three_paid) if three_paid else None,
        "three_slot_fixed_in_layers_model_mean_ms": statistics.mean(three_model) if three_model else None,
        "network_in_situ_error_mean_ms": statistics.mean(c["temporal_ms"]["predicted_in_layers"]
                                                         - c["temporal_ms"]["in_situ"] for c in nets),
        "action_in_situ_error_rms_ms": math.sqrt(statistics.mean(
            (c["latency_ms"]["predicted_in_layers"] - c["latency_ms"]["in_situ"]) ** 2 for c in acts)),
        "action_misses": misses,
        "action_miss_abs_error_ms": [abs(m["predicted"] - m["measured"]) for m in misses],
    }


def main() -> None:
    names = sys.argv[1:] or DEFAULT
    out = {"machine": machine(), "command": " ".join(["lut_paired_analysis.py"] + sys.argv[1:]),
           "files": {n: analyse(json.loads((RESULTS / f"{n}.json").read_text())) for n in names}}
    print(write("lut_paired_analysis", out))
    for n, a in out["files"].items():
        errs = a["action_miss_abs_error_ms"]
        print(f"{n}: SE reported {a['temporal_se_reported_median_ms']:.3f} ms, two passes "
              f"{a['temporal_se_from_two_passes_ms']:.3f}; three-slot fixed in-layer cost paid "
              f"{a['three_slot_fixed_in_layers_paid_mean_ms']:.3f} ms, model "
              f"{a['three_slot_fixed_in_layers_model_mean_ms']:.3f} (n={a['three_slot_networks']}); network in-situ "
              f"error mean {a['network_in_situ_error_mean_ms']:+.3f} ms; action in-situ RMS "
              f"{a['action_in_situ_error_rms_ms']:.3f} ms; {len(errs)} misses"
              + (f" off by {min(errs):.2f}-{max(errs):.2f} ms" if errs else ""))


if __name__ == "__main__":
    main()
