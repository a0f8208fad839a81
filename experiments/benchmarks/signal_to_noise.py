"""Signal to noise of the search's quality signal at the search's own budget.

A parent typical of an early search state is trained K steps from the backbone alone;
then, as the search does, for several seeds: the parent trained K more steps (the
"current model trained equally long" baseline) and each applicable add/remove child
trained K steps from the parent's weights. Noise: the spread over seeds of the same
candidate's quality, and of each action's ΔQuality = child − baseline (same seed, as the
search computes it). Signal: |mean ΔQuality| of each action. Reports the ratios.

    .venv/bin/python experiments/benchmarks/signal_to_noise.py [--seeds 3] [--steps K]

Writes results/signal_to_noise.json and results/signal_to_noise.md.
"""
from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT))

from _machine import machine, write  # noqa: E402

from evaluators import CandidateRunner  # noqa: E402
from nas.config import Experiment  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default=str(ROOT / "experiments" / "tiny.yaml"))
    ap.add_argument("--parent", default="mid:conv1d:1")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--steps", type=int, help="K (default: train.steps)")
    ap.add_argument("--evaluator", help="evaluator name (default: the config's)")
    ap.add_argument("--workdir", default=str(ROOT / ".cache" / "hwnas" / "tiny"))
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    torch.set_num_threads(1)
    exp = Experiment.load(args.config)
    evaluator = dataclasses.replace(exp.evaluator, name=args.evaluator or exp.evaluator.name)
    train = dataclasses.replace(exp.train, device=args.device)
    k = args.steps or exp.train.steps
    runner = CandidateRunner(exp.space, exp.data, train, evaluator, args.workdir, exp.seed)
    t0 = time.perf_counter()
    runner.prepare()
    prepare_s = time.perf_counter() - t0

    parent_arch = runner.space.parse(args.parent)
    parent = runner.run(parent_arch, None, k, seed=100)
    assert parent.status == "ok", parent.reason
    seeds = list(range(args.seeds))
    baseline = {s: runner.run(parent_arch, parent.state, k, s) for s in seeds}
    base_q = [baseline[s].quality for s in seeds]
    noise_same = statistics.stdev(base_q)
    rows = []
    for action in runner.space.actions(parent_arch):
        child_arch = parent_arch.apply(action)
        results = [runner.run(child_arch, parent.state, k, s) for s in seeds]
        deltas = [r.quality - baseline[s].quality for r, s in zip(results, seeds)]
        mean, sd = statistics.mean(deltas), statistics.stdev(deltas)
        rows.append({"action": str(action), "child": str(child_arch), "delta_quality": deltas,
                     "mean": mean, "stdev": sd, "ratio_to_delta_noise": abs(mean) / max(sd, 1e-12),
                     "ratio_to_candidate_noise": abs(mean) / max(noise_same, 1e-12),
                     "sign_consistent": len({d > 0 for d in deltas}) == 1,
                     "seconds": statistics.mean(r.seconds for r in results)})
        print(f"{action}: ΔQ {mean:+.5f} ± {sd:.5f}  ratio {abs(mean) / max(sd, 1e-12):.1f}", flush=True)

    ratios = [r["ratio_to_delta_noise"] for r in rows]
    gaps = sorted(abs(a["mean"] - b["mean"]) for i, a in enumerate(rows) for b in rows[i + 1:])
    summary = {"K": k, "evaluator": evaluator.name, "parent": str(parent_arch), "seeds": seeds,
               "candidate_quality_by_seed": base_q, "candidate_stdev": noise_same,
               "median_abs_delta": statistics.median(abs(r["mean"]) for r in rows),
               "median_delta_stdev": statistics.median(r["stdev"] for r in rows),
               "median_ratio_to_delta_noise": statistics.median(ratios),
               "min_ratio_to_delta_noise": min(ratios),
               "median_ratio_to_candidate_noise": statistics.median(r["ratio_to_candidate_noise"] for r in rows),
               "actions_sign_consistent": sum(r["sign_consistent"] for r in rows), "actions": len(rows),
               "best_action_consistent": len({max(rows, key=lambda r: r["delta_quality"][i])["action"]
                                              for i in range(len(seeds))}) == 1,
               "median_gap_between_actions": statistics.median(gaps),
               "seconds_per_candidate": statistics.mean(r["seconds"] for r in rows),
               "prepare_seconds": prepare_s}
    result = {"summary": summary, "actions": rows, "config": args.config,
              "train": dataclasses.asdict(exp.train), "evaluator_config": dataclasses.asdict(evaluator),
              "machine": machine()}
    path = write("signal_to_noise" if args.evaluator is None else f"signal_to_noise_{evaluator.name}", result)
    lines = [f"# Signal to noise ({evaluator.name}, K = {k}, {len(seeds)} seeds, parent {parent_arch})", "",
             f"machine: {result['machine']['cpu']}, 1 thread, {result['machine']['date']}", "",
             f"same candidate over seeds: quality {statistics.mean(base_q):.5f} ± {noise_same:.5f} (stdev)", "",
             "| action | mean ΔQuality | stdev over seeds | ratio | sign same every seed |", "|---|---|---|---|---|"]
    lines += [f"| {r['action']} | {r['mean']:+.5f} | {r['stdev']:.5f} | {r['ratio_to_delta_noise']:.1f} | "
              f"{r['sign_consistent']} |" for r in rows]
    lines += ["", f"median |ΔQuality| / stdev(ΔQuality): {summary['median_ratio_to_delta_noise']:.1f} "
                  f"(min {summary['min_ratio_to_delta_noise']:.1f}); median |ΔQuality| / stdev(quality of one "
                  f"candidate): {summary['median_ratio_to_candidate_noise']:.1f}; sign consistent for "
                  f"{summary['actions_sign_consistent']}/{summary['actions']} actions; the best action is the same "
                  f"for every seed: {summary['best_action_consistent']}; "
                  f"{summary['seconds_per_candidate']:.1f} s per candidate."]
    (Path(path).parent / (Path(path).stem + ".md")).write_text("\n".join(lines) + "\n")
    print("\n".join(lines[-1:]))
    print("wrote", path)


if __name__ == "__main__":
    main()
