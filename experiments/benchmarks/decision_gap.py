"""What measuring the close actions buys the search's decisions (``lut.measure_actions_ms``),
from lut_paired.py's result files alone (no new measurement).

Four runs validated the same 30 actions on this CPU (seed 0), each timing with the lead-in
(``lookup_tables.paired``; earlier runs read a child's Δ biased by its place in the round). Each run in turn plays the
campaign's machine: its table predicts every action's ΔLatency, and its own paired timing is
what the campaign would measure; the truth is the Δ measured by the other runs, averaged (each
stated at this run's table speed, as ``lut_action_limits.py`` does). An evolution step is
``--children`` actions drawn at random, each given a quality gain ΔQ = |Δ_true| (1 + σ z),
z ~ N(0, 1): at small σ the children's true ΔQ/ΔLat lie close together, as they do when the
decision is hard. The real ``snapgen`` rule (``combine: latency``: the largest ΔQ/ΔLat) decides
three ways, against the decision on the truth:

* ``predicted``: on the table's ΔLatency alone;
* ``measured_when_close``: as the engine does with ``lut.measure_actions_ms: E``: the children
  whose decision gap (``SnapgenSearch.decision_gaps_ms``) is under E are taken at their timed Δ;
* ``all_measured``: every child at its timed Δ.

E is the action error RMS that ``lut validate`` states on an independent validation (seed 1's
60 actions), as a user would set it. Reported: each run's table and timing against the truth
(RMS ms), and per σ: the share of steps that choose the truly
best child, the mean regret (1 − the chosen child's true ΔQ/ΔLat over the best one's) and the
share of children timed.

    .venv/bin/python experiments/benchmarks/decision_gap.py [--steps 400] [--children 6]
"""
from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import machine, write  # noqa: E402

from evaluators.runner import CandidateResult  # noqa: E402
from lookup_tables.validate import _action_report  # noqa: E402
from nas.strategies import Candidate, Cost, Outcome, create_strategy  # noqa: E402
from search_spaces.architecture import Architecture  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
RUNS = ["lut_paired_tiny_cpu_random_design", "lut_paired_tiny_cpu_first_use", "lut_paired_tiny_cpu_lead_in",
        "lut_paired_tiny_cpu_lead_in_actions600"]  # the runs whose timing was led in (lookup_tables.paired)
VALIDATION = "lut_paired_tiny_cpu_seed1_actions60"
SIGMAS = (0.05, 0.1, 0.2, 0.5)
POLICIES = ("predicted", "measured_when_close", "all_measured")


def load(name: str) -> dict:
    return json.loads((RESULTS / f"{name}.json").read_text())


def cases_by_run(runs: dict[str, dict]) -> dict[str, dict]:
    """Per run: each action's predicted and timed Δ (this run's) and its truth: the other
    runs' timed Δ averaged, each scaled to this run's table speed (the median ratio of the two
    tables' uncalibrated predictions)."""
    key = lambda c: (c["parent"], c["action"])  # noqa: E731
    lat = {n: {key(c): c["latency_ms"] for c in r["report"]["action_cases"]} for n, r in runs.items()}
    out = {}
    for n, mine in lat.items():
        truth = {}
        for k in mine:
            others = []
            for m, theirs in lat.items():
                if m == n:
                    continue
                g = statistics.median(mine[j]["predicted_uncalibrated"] / theirs[j]["predicted_uncalibrated"]
                                      for j in mine)
                others.append(g * theirs[k]["measured"])
            truth[k] = statistics.mean(others)
        out[n] = [{"key": k, "predicted": v["predicted"], "measured": v["measured"], "truth": truth[k]}
                  for k, v in mine.items()]
    return out


def decide(latencies: list[float], gains: list[float]) -> tuple[str, dict[str, float]]:
    """The snapgen rule (combine: latency) over children of the given ΔLat and ΔQ: the chosen
    child's id, and each child's decision gap (ms)."""
    s = create_strategy("snapgen", {"combine": "latency"}, seed=0, steps=1)
    s.branch, s.phase = "add", "evolve"
    empty = Architecture.parse("empty")
    ref = Candidate("ref", empty, 1, 0, "reference", empty)
    outs = [Outcome(ref, CandidateResult("empty", "ok", None, 0.0), Cost(0.0, 0.0))]
    for i, (dl, dq) in enumerate(zip(latencies, gains)):
        c = Candidate(f"c{i}", empty, 1, 0, "child", empty, None, "+conv1d@mid")
        s.eligible[c.id] = True
        outs.append(Outcome(c, CandidateResult("empty", "ok", None, dq), Cost(dl, 0.0)))
    gaps = s.decision_gaps_ms(outs)
    return s._rank(s._scored(outs, outs[0])[1])[0].candidate.id, gaps


def simulate(cases: list[dict], error_ms: float, sigma: float, steps: int, children: int, seed: int) -> dict:
    rng = random.Random(seed)
    chose = {p: [] for p in POLICIES}
    regret = {p: [] for p in POLICIES}
    timed = []
    for _ in range(steps):
        pick = rng.sample(cases, children)
        true = [abs(c["truth"]) for c in pick]
        gains = [t * (1 + sigma * rng.gauss(0.0, 1.0)) for t in true]
        ratios = [g / t for g, t in zip(gains, true)]
        best = max(range(children), key=lambda i: ratios[i])
        predicted = [abs(c["predicted"]) for c in pick]
        measured = [abs(c["measured"]) for c in pick]
        by_pred, gaps = decide(predicted, gains)
        close = {int(cid[1:]) for cid, g in gaps.items() if g < error_ms}
        timed.append(len(close) / children)
        mixed = [measured[i] if i in close else predicted[i] for i in range(children)]
        picks = {"predicted": by_pred, "measured_when_close": decide(mixed, gains)[0],
                 "all_measured": decide(measured, gains)[0]}
        for p, cid in picks.items():
            i = int(cid[1:])
            chose[p].append(i == best)
            regret[p].append(1 - ratios[i] / ratios[best] if ratios[best] > 0 else 0.0)
    return {"timed_share": statistics.mean(timed),
            **{p: {"chose_best": statistics.mean(chose[p]), "mean_regret": statistics.mean(regret[p])}
               for p in POLICIES}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=400, help="evolution steps per run and σ")
    ap.add_argument("--children", type=int, default=6, help="children per evolution step")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    validation = _action_report(load(VALIDATION)["report"]["action_cases"])
    error_ms = validation["error_rms_ms"]
    per_run = cases_by_run({n: load(n) for n in RUNS})
    rms = lambda xs: statistics.mean(x * x for x in xs) ** 0.5  # noqa: E731
    against_truth = {n: {"predicted_rms_ms": rms([c["predicted"] - c["truth"] for c in cs]),
                         "timed_rms_ms": rms([c["measured"] - c["truth"] for c in cs])} for n, cs in per_run.items()}
    out = {"machine": machine(), "command": " ".join(["decision_gap.py"] + sys.argv[1:]),
           "runs": RUNS, "validation": VALIDATION, "error_ms": error_ms, "children": args.children,
           "steps_per_run": args.steps, "combine": "latency", "against_truth": against_truth, "sigmas": {}}
    for sigma in SIGMAS:
        rows = [simulate(cases, error_ms, sigma, args.steps, args.children, args.seed + 17 * i)
                for i, cases in enumerate(per_run.values())]
        out["sigmas"][str(sigma)] = {
            "timed_share": statistics.mean(r["timed_share"] for r in rows),
            **{p: {m: statistics.mean(r[p][m] for r in rows) for m in ("chose_best", "mean_regret")}
               for p in POLICIES}, "per_run": rows}
    print(write("decision_gap", out))
    print(f"E = {error_ms:.3f} ms (action error RMS of {VALIDATION}); {args.children} children, "
          f"{args.steps} steps x {len(RUNS)} runs per sigma")
    for n, a in against_truth.items():
        print(f"{n}: ΔLatency error against the other runs' mean, RMS: table {a['predicted_rms_ms']:.3f} ms, "
              f"this run's timing {a['timed_rms_ms']:.3f} ms")
    for sigma, r in out["sigmas"].items():
        print(f"sigma {sigma:>4}: " + "; ".join(
            f"{p} best {r[p]['chose_best']:.0%} regret {r[p]['mean_regret']:.2%}" for p in POLICIES)
            + f"; timed {r['timed_share']:.0%} of children")


if __name__ == "__main__":
    main()
