"""What limits the action ΔLatency target (issue 11), from lut_paired.py's result files alone
(no measurement). Per file:

* **model variants**: the calibration is refitted on the file's own calibration networks
  (its recorded observations and table rows) with extra terms beside those the library fits
  (per slot: in-layer and outside costs; per operator: first use), and each variant is scored
  on the file's validated actions (right sign and within ±20 % of the measured Δ, over those
  above twice their noise) and networks (temporal part within ±10 %). Variants: a first-use
  cost shared by self- and cross-attention (``attention_family``), an outside cost per layer
  (``outside_per_layer``), a cost per pair of occupied slots (``slot_pairs``), the second
  layer of a stack priced apart (``second_layer``). ``as_built`` refits the library's model
  and must reproduce the file's predictions (``as_built_max_dev_ms``).
* **decomposition**: each action's error split into its in-layer part (predicted in-layer Δ
  minus the in-situ Δ the hooks timed) and its outside part (the rest); and the score of an
  oracle that knows each action's in-situ Δ exactly and adds the fitted outside costs.
* **across runs** (files that validated the same actions): the in-situ Δ's spread between two
  runs after one ratio for the whole run (how reproducible the in-layer cost is), the share
  of this run's timed Δ within ±20 % of another run's (scaled by the ratio of the two tables'
  speeds: how far the measurement itself reproduces across runs), and the
  scores against the measured Δ averaged over all runs (a truth with less noise). Files
  without recorded table rows or first-use terms serve only as such other runs.
* **context model** (files whose actions no other file shares are held out in turn): is a
  layer's in-situ cost predictable from its context? A least-squares model of each action's
  in-situ Δ (the added or removed layer, in its smaller network) on the layer's table row per
  operator and slot, an empty slot's first layer, a layer stacked on its own kind, the
  network's layer count and distinct operators (each times the row), and the operator's
  absence elsewhere, fitted on the other files' actions, against the library's in-layer
  prediction on the held-out file's actions (``in_layer_rms_ms``).

Writes results/lut_action_limits.json.

    .venv/bin/python experiments/benchmarks/lut_action_limits.py [RESULT ...]
"""
from __future__ import annotations

import itertools
import json
import math
import statistics
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import machine, write  # noqa: E402

from lookup_tables.validate import _action_report  # noqa: E402
from search_spaces.architecture import Architecture  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT = ["lut_paired_tiny_cpu_random_design", "lut_paired_tiny_cpu_first_use", "lut_paired_tiny_cpu_lead_in",
           "lut_paired_tiny_cpu_scaled", "lut_paired_tiny_cpu_seed1_actions60", "lut_paired_tiny_cpu_seed2_two_pass"]
VARIANTS = {"as_built": (), "attention_family": ("family",), "outside_per_layer": ("outside_layer",),
            "slot_pairs": ("pairs",), "second_layer": ("second",)}
ATTENTION = {"self_attn1d", "cross_attn1d", "self_attn3d", "cross_attn3d"}
PRIOR_SD, OVERHEAD_PRIOR, NOISE_FLOOR = 0.5, 0.5, 0.02  # as lookup_tables.calibrate


def _actions(cases: list[dict], predicted, measured=None) -> dict:
    """``lut validate``'s action report (right sign and within ±20 % over the actions above
    noise, error RMS) for other predictions (or truths) of the same cases: ``predicted(case)``,
    ``measured(case)``."""
    out = []
    for c in cases:
        lat = dict(c["latency_ms"], predicted=predicted(c))
        if measured is not None:
            lat["measured"] = measured(c)
        out.append({**c, "latency_ms": lat})
    return _action_report(out)


class Model:
    """The calibration's Bayesian linear fit (lookup_tables.calibrate.fit, source ``both``) with
    optional extra terms."""

    def __init__(self, r: dict, extra: tuple[str, ...]):
        self.rows, self.extra = r["table_rows"], extra
        self.key = {(t["slot"], t["op"]): k for k, t in r["calibration"]["terms"].items()}
        obs = r["calibration"]["observations"]
        X, y, var = [], [], []
        for o in obs:
            for paired in (False, True):
                value, se = (o["paired_ms"], o["paired_se_ms"]) if paired else (o["in_situ_ms"], o["in_situ_se_ms"])
                X.append(self.features(Architecture.parse(o["arch"]), paired))
                y.append(value)
                var.append(max(se, 1e-6) ** 2 + (NOISE_FLOOR * abs(value)) ** 2)
        self.names = sorted({k for x in X for k in x})
        M = np.array([[x.get(k, 0.0) for k in self.names] for x in X])
        W = 1.0 / np.array(var)
        one_layer = float(np.median([self.rows[self.key[(s, layer.op)]] for o in obs
                                     for s, layer in Architecture.parse(o["arch"]).items()]))
        scale = np.array([k.startswith("scale:") for k in self.names])
        per_ms = np.array([k.startswith("outside_layer:") for k in self.names])  # a fraction of the layer's ms
        prior_mean = scale.astype(float)
        prior_sd = np.where(scale | per_ms, PRIOR_SD, OVERHEAD_PRIOR * one_layer)
        A = M.T @ (W[:, None] * M) + np.diag(prior_sd ** -2.0)
        self.coef = dict(zip(self.names, np.linalg.solve(A, M.T @ (W * np.array(y)) + prior_mean * prior_sd ** -2.0)))

    def features(self, arch: Architecture, paired: bool) -> dict[str, float]:
        x: dict[str, float] = {}
        for slot, layer in arch.items():
            op, n = layer.op, layer.count
            ms = n * self.rows[self.key[(slot, op)]]
            x[f"scale:{slot}:{op}"] = ms
            x[f"slot:{slot}"] = 1.0
            if paired:
                x[f"outside:{slot}"] = 1.0
                if "outside_layer" in self.extra:
                    x[f"outside_layer:{op}"] = x.get(f"outside_layer:{op}", 0.0) + ms
            if "second" in self.extra and n >= 2:
                x[f"second:{slot}:{op}"] = 1.0
        ops = {layer.op for layer in arch.values()}
        for op in ops:
            x[f"first:{op}"] = 1.0
        if "family" in self.extra and ops & ATTENTION:
            x["first:attention"] = 1.0
        if "pairs" in self.extra:
            for a, b in itertools.combinations(sorted(arch.keys()), 2):
                x[f"pair:{a}+{b}"] = 1.0
        return x

    def predict(self, arch: str, paired: bool = True) -> float:
        return sum(self.coef.get(k, 0.0) * v for k, v in self.features(Architecture.parse(arch), paired).items())

    def delta(self, case: dict, paired: bool = True) -> float:
        """The action's ΔLatency: child − parent (in the layers only with ``paired`` False)."""
        return self.predict(case["child"], paired) - self.predict(case["parent"], paired)


def score(r: dict, m: Model) -> dict:
    acts = _actions(r["report"]["action_cases"], m.delta)
    nets = [c for c in r["report"]["cases"] if c["arch"] != "empty"]
    within = sum(abs(m.predict(c["arch"]) - c["temporal_ms"]["measured"]) <= 0.1 * abs(c["temporal_ms"]["measured"])
                 for c in nets)
    return {"actions_within_20pct": acts["right_sign_within_20pct"], "actions_above_noise": acts["above_noise"],
            "action_error_rms_ms": acts["error_rms_ms"],
            "networks_within_10pct": within / len(nets) if nets else None, "networks": len(nets),
            "terms": len(m.names)}


def decompose(r: dict, m: Model) -> dict:
    cases = r["report"]["action_cases"]

    def oracle(c):  # the in-situ Δ as measured, plus the fitted costs outside the layers
        return c["latency_ms"]["in_situ"] + m.delta(c) - m.delta(c, paired=False)

    in_layer = [m.delta(c, paired=False) - c["latency_ms"]["in_situ"] for c in cases]
    known = _actions(cases, oracle)  # its error is the outside part's
    return {"in_layer_error_rms_ms": math.sqrt(statistics.mean(e * e for e in in_layer)),
            "outside_error_rms_ms": known["error_rms_ms"],
            "median_noise_se_ms": statistics.median(c["latency_ms"]["noise_se"] for c in cases),
            "oracle_in_situ_within_20pct": known["right_sign_within_20pct"]}


def across_runs(files: dict[str, dict], base: str, m: Model) -> dict | None:
    """Runs that validated ``base``'s actions: in-situ reproducibility, and ``base``'s model
    (``m``) against the measured Δ averaged over those runs (each run's Δ at ``base``'s table speed)."""
    key = lambda c: (c["parent"], c["action"])  # noqa: E731
    ref = {key(c): c["latency_ms"] for c in files[base]["report"]["action_cases"]}
    same = {n: {key(c): c["latency_ms"] for c in r["report"]["action_cases"]} for n, r in files.items()}
    same = {n: cs for n, cs in same.items() if set(ref) <= set(cs)}
    if len(same) < 2:
        return None
    ratio = {n: statistics.median(ref[k]["predicted_uncalibrated"] / cs[k]["predicted_uncalibrated"] for k in ref)
             for n, cs in same.items()}
    spread = {}
    for n, cs in same.items():
        if n == base:
            continue
        g = statistics.median(ref[k]["in_situ"] / cs[k]["in_situ"] for k in ref)
        spread[n] = statistics.pstdev(ref[k]["in_situ"] - g * cs[k]["in_situ"] for k in ref) / math.sqrt(2)
    # one run's timed Δ against another's (scaled by the ratio of the two tables' speeds): how
    # far the measurement itself reproduces across runs, beside the in-run noise ceiling
    between = {n: {"timed_right_sign_within_20pct": statistics.mean(
        ref[k]["measured"] * ratio[n] * cs[k]["measured"] > 0 and
        abs(ref[k]["measured"] - ratio[n] * cs[k]["measured"]) <= 0.2 * abs(ratio[n] * cs[k]["measured"])
        for k in ref), "table_speed_ratio": ratio[n]} for n, cs in same.items() if n != base}
    truth = {k: statistics.mean(cs[k]["measured"] * ratio[n] for n, cs in same.items()) for k in ref}
    averaged = _actions(files[base]["report"]["action_cases"], m.delta, lambda c: truth[key(c)])
    return {"runs": sorted(same), "in_situ_per_run_sd_ms": spread, "timing_between_runs": between,
            "averaged_truth_within_20pct": averaged["right_sign_within_20pct"],
            "averaged_truth_error_rms_ms": averaged["error_rms_ms"], "actions": len(ref)}


def _context(case: dict, rows: dict) -> tuple[dict, float, float]:
    """Features of the action's layer in its smaller network, its in-situ cost (ms, > 0 for a
    layer that costs) and the library's prediction of it."""
    parent, child = Architecture.parse(case["parent"]), Architecture.parse(case["child"])
    sign = 1.0 if case["action"].startswith("+") else -1.0
    small = parent if sign > 0 else child
    op, slot = case["action"][1:].split("@")
    below = small[slot].count if slot in small else 0
    ops = {layer.op for layer in small.values()}
    row = rows[(slot, op)]
    x = {f"row:{slot}:{op}": row, f"slot_first:{slot}": float(below == 0), f"stacked:{op}": row * (below > 0),
         "layers": row * sum(layer.count for layer in small.values()), "distinct_ops": row * len(ops),
         f"op_absent:{op}": float(op not in ops)}
    lat = case["latency_ms"]
    return x, sign * lat["in_situ"], sign * lat["predicted_in_layers"]


def context_model(files: dict[str, dict]) -> dict:
    cases = {}
    for n, r in files.items():
        if "table_rows" not in r or not r["calibration"].get("first_use"):
            continue
        rows = {(t["slot"], t["op"]): r["table_rows"][k] for k, t in r["calibration"]["terms"].items()}
        cases[n] = [((c["parent"], c["action"]), *_context(c, rows)) for c in r["report"]["action_cases"]]
    out = {}
    for n in cases:
        held = {k for k, *_ in cases[n]}
        train = [(x, y) for m in cases if m != n for k, x, y, _ in cases[m] if k not in held]
        if not train:
            continue
        names = sorted({k for x, _ in train for k in x} | {k for _, x, _, _ in cases[n] for k in x})
        X = np.array([[x.get(k, 0.0) for k in names] for x, _ in train])
        w = np.linalg.lstsq(X, np.array([y for _, y in train]), rcond=None)[0]
        rms = lambda e: math.sqrt(statistics.mean(v * v for v in e))  # noqa: E731
        out[n] = {"actions": len(cases[n]), "trained_on": len(train),
                  "in_layer_rms_ms": rms([np.dot([x.get(k, 0.0) for k in names], w) - y for _, x, y, _ in cases[n]]),
                  "library_in_layer_rms_ms": rms([p - y for _, _, y, p in cases[n]])}
    return out


def main() -> None:
    names = [n for n in (sys.argv[1:] or DEFAULT) if (RESULTS / f"{n}.json").exists()]
    files = {n: json.loads((RESULTS / f"{n}.json").read_text()) for n in names}
    out = {"machine": machine(), "command": " ".join(["lut_action_limits.py"] + sys.argv[1:]), "files": {}}
    for n, r in files.items():
        if "table_rows" not in r or not r["calibration"].get("first_use"):
            continue  # recorded before the benchmark kept the table's rows, or before first-use terms
        built = Model(r, ())
        dev = max(abs(built.delta(c) - c["latency_ms"]["predicted"]) for c in r["report"]["action_cases"])
        out["files"][n] = {"as_built_max_dev_ms": dev,
                           "variants": {v: score(r, Model(r, extra)) for v, extra in VARIANTS.items()},
                           "decomposition": decompose(r, built), "across_runs": across_runs(files, n, built)}
    out["context_model"] = context_model(files)
    print(write("lut_action_limits", out))
    for n, a in out["files"].items():
        print(f"{n} (as built reproduces the file's predictions within {a['as_built_max_dev_ms']:.1e} ms)")
        for v, s in a["variants"].items():
            print(f"  {v:18s} actions {s['actions_within_20pct']:.0%} of {s['actions_above_noise']}, RMS "
                  f"{s['action_error_rms_ms']:.3f} ms; networks {s['networks_within_10pct']:.0%} of {s['networks']}")
        d = a["decomposition"]
        print(f"  error parts: in-layer RMS {d['in_layer_error_rms_ms']:.3f} ms, outside RMS "
              f"{d['outside_error_rms_ms']:.3f} (noise SE {d['median_noise_se_ms']:.3f}); oracle with each action's "
              f"own in-situ Δ: {d['oracle_in_situ_within_20pct']:.0%}")
        x = a["across_runs"]
        if x:
            sd = ", ".join(f"{v:.3f}" for v in x["in_situ_per_run_sd_ms"].values())
            print(f"  across {len(x['runs'])} runs: in-situ Δ per-run sd {sd} ms; against the averaged Δ "
                  f"{x['averaged_truth_within_20pct']:.0%} of {x['actions']}, "
                  f"RMS {x['averaged_truth_error_rms_ms']:.3f}")
            print("  timed Δ within ±20 % of another run's: " + ", ".join(
                f"{o} {b['timed_right_sign_within_20pct']:.0%} (table speed ratio {b['table_speed_ratio']:.2f})"
                for o, b in x["timing_between_runs"].items()))
    for n, c in out["context_model"].items():
        print(f"context model fitted on {c['trained_on']} other actions, held out {n}: in-layer RMS "
              f"{c['in_layer_rms_ms']:.3f} ms, library {c['library_in_layer_rms_ms']:.3f} ({c['actions']} actions)")


if __name__ == "__main__":
    main()
