"""At which training horizon does the search's quality rank architectures as the ground truth
does? (issue 10, item 4)

``pareto_verify`` compares each trial's recorded quality with its verified one. Those
recorded qualities mix two errors: the trials of later evolution steps start from a current
model trained for more rounds (their qualities are not on one scale), and K = 160 steps may be
too short to show what 1,500 steps show. This benchmark separates the two: every
architecture a verify run holds is trained from the backbone alone under the search's own
training (``train``: the same draws, optimiser and per-operator learning rates) and scored by
the search's evaluator after each horizon in ``--horizons`` (one run per architecture and
seed, scored along the way; scoring draws nothing from the run's generator, so the score at
K equals a K-step run's). Then Spearman and Kendall of each horizon's quality (and of each of
its numeric breakdown keys) with the verified quality. At the verify protocol's own steps
the training is the verify protocol's, so what is left is the evaluator's error alone.

    PYTHONPATH=. .venv/bin/python experiments/benchmarks/proxy_horizon.py \\
        --verify results/pareto_verify_tiny_main2_2seeds.json --horizons 160 480 1500 --tag tiny_main2

Architectures run in parallel processes (``--workers``, one thread each). Writes
results/proxy_horizon_TAG.json and .md.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT))

from _machine import machine, write  # noqa: E402

from nas.campaign import Campaign  # noqa: E402
from nas.verify import rank_agreement  # noqa: E402


def train_along(campaign: str, arch: str, horizons: list[int], seed: int) -> dict:
    """One run of ``arch`` from the backbone to max(horizons), scored at each horizon."""
    import torch

    from evaluators import CandidateRunner
    from nas.tabular import train_scored

    torch.set_num_threads(1)
    camp = Campaign.open(campaign)
    exp = camp.experiment()
    runner = CandidateRunner(exp.space, exp.data, exp.train, exp.evaluator, camp.workdir(), exp.seed)
    runner.prepare()
    start = time.perf_counter()
    with runner._threads():
        model = runner.build(runner.space.parse(arch), None, seed)
        scores = {}

        def score(m):
            s = runner.evaluator.score(m)
            scores[sorted(horizons)[len(scores)]] = {"quality": float(s.quality), **{
                k: float(v) for k, v in s.breakdown.items() if isinstance(v, (int, float))}}
            return s.quality

        train_scored(model, runner.dataset, max(horizons), exp.train, seed, runner.device, sorted(horizons), score)
    return {"arch": arch, "seed": seed, "scores": scores, "seconds": time.perf_counter() - start}


def rank_fidelity(points: list[dict], horizons: list[int]) -> dict:
    """Per horizon and numeric breakdown key: Spearman and Kendall with the verified quality
    (``nas.verify.rank_agreement``; losses negated, lower is better); constant keys left out."""
    archs, verified = [p["arch"] for p in points], [p["verified"] for p in points]
    out = {}
    for k in horizons:
        out[k] = {}
        for key in points[0]["scores"][k]:
            sign = -1.0 if "loss" in key else 1.0
            agree = rank_agreement(archs, [sign * p["scores"][k][key] for p in points], verified)
            if agree["spearman"] is not None:
                out[k][key] = {"spearman": agree["spearman"], "kendall": agree["kendall"]}
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--verify", required=True, help="a pareto_verify result JSON (its campaign and verified points)")
    ap.add_argument("--horizons", type=int, nargs="+", default=[160, 480, 1500])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--tag", required=True)
    args = ap.parse_args()
    path = Path(args.verify)
    if not path.is_absolute() and not path.exists():
        path = Path(__file__).resolve().parent / path
    verify = json.loads(path.read_text())["verify"]
    points = [{"arch": p["arch"], "verified": p["verified_quality"], "search_quality": p["search_quality"]}
              for p in verify["points"] if p["status"] == "ok"]
    t0 = time.perf_counter()
    with ProcessPoolExecutor(args.workers) as pool:
        runs = list(pool.map(train_along, [verify["campaign"]] * len(points), [p["arch"] for p in points],
                             [args.horizons] * len(points), [args.seed] * len(points)))
    for p, r in zip(points, runs):
        p["scores"], p["seconds"] = r["scores"], r["seconds"]
    horizons = sorted(args.horizons)
    fidelity = rank_fidelity(points, horizons)
    agree = rank_agreement([p["arch"] for p in points], [p["search_quality"] for p in points],
                           [p["verified"] for p in points])
    recorded = {"spearman": agree["spearman"], "kendall": agree["kendall"]}
    result = {"tag": args.tag, "argv": sys.argv[1:], "machine": machine(), "verify_file": str(path),
              "campaign": verify["campaign"], "quality_key": verify["quality_key"], "protocol": verify["protocol"],
              "horizons": horizons, "seed": args.seed, "points": points, "rank_fidelity": fidelity,
              "recorded_quality": recorded, "wall_s": time.perf_counter() - t0}
    out = write(f"proxy_horizon_{args.tag}", result)

    main_keys = ["quality", "flow_loss/quality", "caption_discrimination/quality"]
    lines = [f"# The search's quality against the verified one, by training horizon (`{args.tag}`)", "",
             "```", "PYTHONPATH=. .venv/bin/python experiments/benchmarks/proxy_horizon.py " + " ".join(sys.argv[1:]),
             "```", "",
             f"machine: {result['machine']['cpu']}, {result['machine']['cores']} cores, {result['machine']['date']}; "
             f"wall {result['wall_s']:.0f} s", "",
             f"{len(points)} architectures of `{verify['campaign']}`, verified quality = `{verify['quality_key']}` "
             f"(mean over seeds {verify['protocol'].get('seeds')}, {verify['protocol']['steps']} steps). Each trained "
             f"from the backbone alone under the search's training, seed {args.seed}, scored by the search's evaluator "
             f"after each horizon.", "",
             f"The trials' recorded qualities (each from its own evolution step): Spearman {recorded['spearman']:.3f}, "
             f"Kendall {recorded['kendall']:.3f}.", "",
             "| horizon (steps) | " + " | ".join(f"Spearman / Kendall: `{k}`" for k in main_keys) + " |",
             "|---|" + "---|" * len(main_keys)]
    for k in horizons:
        cells = [fidelity[k].get(key) for key in main_keys]
        lines.append(f"| {k} | " + " | ".join(f"{c['spearman']:.3f} / {c['kendall']:.3f}" if c else "–"
                                               for c in cells) + " |")
    lines += ["", "| architecture | verified | " + " | ".join(f"quality@{k}" for k in horizons) + " | seconds |",
              "|---|---|" + "---|" * (len(horizons) + 1)]
    for p in sorted(points, key=lambda p: -p["verified"]):
        lines.append(f"| {p['arch']} | {p['verified']:.4f} | " +
                     " | ".join(f"{p['scores'][k]['quality']:.5f}" for k in horizons) + f" | {p['seconds']:.0f} |")
    lines += ["", "Every numeric breakdown key as the quality (Spearman with the verified quality; losses negated):",
              "",
              "| key | " + " | ".join(str(k) for k in horizons) + " |", "|---|" + "---|" * len(horizons)]
    for key in fidelity[horizons[-1]]:
        lines.append(f"| {key} | " + " | ".join(f"{fidelity[k][key]['spearman']:.3f}" if key in fidelity[k] else "–"
                                                 for k in horizons) + " |")
    (out.parent / (out.stem + ".md")).write_text("\n".join(lines) + "\n")
    print("\n".join(lines[:20]))
    print("wrote", out)


if __name__ == "__main__":
    main()
