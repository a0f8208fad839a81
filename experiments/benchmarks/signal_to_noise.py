"""Signal to noise of the search's quality signal at the search's own budget.

A parent typical of an early search state is trained K steps from the backbone alone;
then, as the search does, for several seeds: the parent trained K more steps (the
"current model trained equally long" baseline) and each applicable add/remove child
trained K steps from the parent's weights. Noise: the spread over seeds of the same
candidate's quality, and of each action's ΔQuality = child − baseline (same seed, as the
search computes it). Signal: |mean ΔQuality| of each action. Reports the ratios.

    .venv/bin/python experiments/benchmarks/signal_to_noise.py [--seeds 3] [--steps K]
        [--parent ARCH --parent-steps N] [--evaluator E] [--val-clips N] [--t-values ...]
        [--lr LR] [--frame-embedding] [--actions TEXT ...] [--vary init|draws] [--tag TAG]

The parent (default mid:conv1d:1, as in results/signal_to_noise.md; one layer of every
family gives every family a remove action, but then every add is a second layer at an
occupied slot) is trained ``--parent-steps`` from the backbone alone, like a current model
a few rounds into a search. Reports the ratio per action and per family (conv,
self-attention, cross-attention): the family's worst action.

Writes results/signal_to_noise[_TAG].json and .md.
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

from core.config import to_dict  # noqa: E402
from evaluators import CandidateRunner  # noqa: E402
from evaluators.scores.weighted import Component  # noqa: E402
from nas.config import Experiment  # noqa: E402


FAMILIES = ("conv", "self-attention", "cross-attention")


def family_of(action: str) -> str:
    op = action.split("@")[0][1:]
    return "conv" if op.startswith("conv") else "self-attention" if op.startswith("self") else "cross-attention"


def key_ratios(baseline: dict, rows: list[dict], children: list[tuple[str, list]]) -> dict:
    """Signal to noise of every numeric breakdown key, as if it alone were the quality: per
    action |mean Δ| / stdev(Δ) over seeds (Δ = child − the equally trained parent, same seed)."""
    seeds = sorted(baseline)
    keys = [k for k, v in baseline[seeds[0]].breakdown.items() if isinstance(v, (int, float))]
    out = {}
    for key in keys:
        ratios, signs = {}, {}
        all_ratios = []
        for action, results in children:
            if any(r.status != "ok" or key not in r.breakdown for r in results):
                continue
            deltas = [r.breakdown[key] - baseline[s].breakdown[key] for r, s in zip(results, seeds)]
            ratio = abs(statistics.mean(deltas)) / max(statistics.stdev(deltas), 1e-12)
            fam = family_of(action)
            ratios.setdefault(fam, []).append(ratio)
            all_ratios.append(ratio)
            if action.startswith("+"):
                signs.setdefault(fam, []).append("+" if statistics.mean(deltas) > 0 else "-")
        if all_ratios:
            out[key] = {"family_min_ratio": {f: min(v) for f, v in ratios.items()},
                        "median_ratio": statistics.median(all_ratios),
                        "family_sign": {f: "".join(v) for f, v in signs.items()}}
    return out


def vary_only(runner, what: str) -> None:
    """From now on ``runner.run(..., seed)`` uses ``seed`` only for ``what`` ("init": the new
    layers' initial weights; "draws": batches, t and noise) and seed 0 for the other."""
    run, build, given = runner.run, runner.build, {}

    def run_one(arch, parent_state=None, steps=None, seed=0):
        given["seed"] = seed
        return run(arch, parent_state, steps, seed if what == "draws" else 0)

    runner.run = run_one
    runner.build = lambda arch, parent_state, seed: build(arch, parent_state, given["seed"] if what == "init" else 0)


def evaluator_config(configured, args):
    """``--evaluator`` (default: the config's) with ``--val-clips``/``--t-values`` and, for
    caption_discrimination, ``--disc-quality``; ``weighted`` not configured: flow_loss and
    caption_discrimination, 1:1, each with those options."""
    def overrides(name: str) -> dict:
        given = {"val_clips" if name == "flow_loss" else "clips": args.val_clips,
                 "t_values": tuple(args.t_values) if args.t_values else None,
                 "quality": args.disc_quality if name == "caption_discrimination" else None}
        return {k: v for k, v in given.items() if v is not None and name in ("flow_loss", "caption_discrimination")}

    name = args.evaluator or configured.name
    if name != "weighted":
        return configured.switch(name, **overrides(name))
    parts = (configured.options.components if configured.name == "weighted"
             else [Component("flow_loss"), Component("caption_discrimination")])
    return configured.switch("weighted", components=[
        {"name": c.name, "weight": c.weight, "options": {**to_dict(c.options), **overrides(c.name)}} for c in parts])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default=str(ROOT / "experiments" / "tiny.yaml"))
    ap.add_argument("--parent", default="mid:conv1d:1")  # reproduces signal_to_noise.md
    ap.add_argument("--parent-steps", type=int, help="the parent's training (default: K)")
    ap.add_argument("--val-clips", type=int)
    ap.add_argument("--t-values", type=float, nargs="+")
    ap.add_argument("--disc-quality", choices=["accuracy", "margin"], default="margin")
    ap.add_argument("--lr", type=float)
    ap.add_argument("--frame-embedding", action="store_true", default=None,
                    help="space.op_options.frame_embedding on (default: the config's)")
    ap.add_argument("--attn-lr-scale", type=float, help="train.lr_scale of the attention ops (default: the config's)")
    ap.add_argument("--tag", help="results file suffix")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--vary", choices=["both", "init", "draws"], default="both",
                    help="what the seed changes for the candidates after the parent: both (as the search), only the "
                         "new layers' initial weights (draws of seed 0), or only the training draws (init of seed 0)")
    ap.add_argument("--actions", nargs="+",
                    help="only the actions whose text contains one of these (e.g. cross_attn1d)")
    ap.add_argument("--steps", type=int, help="K (default: train.steps)")
    ap.add_argument("--evaluator", help="evaluator name (default: the config's)")
    ap.add_argument("--workdir", default=str(ROOT / ".cache" / "hwnas" / "tiny"))
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    torch.set_num_threads(1)
    exp = Experiment.load(args.config)
    evaluator = evaluator_config(exp.evaluator, args)
    lr_scale = exp.train.lr_scale if args.attn_lr_scale is None else {
        op: args.attn_lr_scale for op in ("cross_attn1d", "self_attn1d") if args.attn_lr_scale != 1.0}
    train = dataclasses.replace(exp.train, device=args.device, lr=args.lr or exp.train.lr, lr_scale=lr_scale)
    space = exp.space if args.frame_embedding is None else dataclasses.replace(
        exp.space, op_options=dataclasses.replace(exp.space.op_options, frame_embedding=True))
    k = args.steps or exp.train.steps
    runner = CandidateRunner(space, exp.data, train, evaluator, args.workdir, exp.seed)
    t0 = time.perf_counter()
    runner.prepare()
    prepare_s = time.perf_counter() - t0

    parent_arch = runner.space.parse(args.parent)
    parent = runner.run(parent_arch, None, args.parent_steps or k, seed=100)
    assert parent.status == "ok", parent.reason
    seeds = list(range(args.seeds))
    if args.vary != "both":
        vary_only(runner, args.vary)
    baseline = {s: runner.run(parent_arch, parent.state, k, s) for s in seeds}
    base_q = [baseline[s].quality for s in seeds]
    noise_same = statistics.stdev(base_q)
    rows, children = [], []
    for action in runner.space.actions(parent_arch):
        if args.actions and not any(a in str(action) for a in args.actions):
            continue
        child_arch = parent_arch.apply(action)
        results = [runner.run(child_arch, parent.state, k, s) for s in seeds]
        children.append((str(action), results))
        deltas = [r.quality - baseline[s].quality for r, s in zip(results, seeds)]
        mean, sd = statistics.mean(deltas), statistics.stdev(deltas)
        rows.append({"action": str(action), "child": str(child_arch), "delta_quality": deltas,
                     "mean": mean, "stdev": sd, "ratio_to_delta_noise": abs(mean) / max(sd, 1e-12),
                     "ratio_to_candidate_noise": abs(mean) / max(noise_same, 1e-12),
                     "sign_consistent": len({d > 0 for d in deltas}) == 1,
                     "seconds": statistics.mean(r.seconds for r in results)})
        print(f"{action}: ΔQ {mean:+.5f} ± {sd:.5f}  ratio {abs(mean) / max(sd, 1e-12):.1f}", flush=True)

    families = {}
    for r in rows:
        families.setdefault(family_of(r["action"]), []).append(r["ratio_to_delta_noise"])
    family_min = {f: min(v) for f, v in families.items()}
    per_key = key_ratios(baseline, rows, [(child, results) for child, results in children])
    ratios = [r["ratio_to_delta_noise"] for r in rows]
    gaps = sorted(abs(a["mean"] - b["mean"]) for i, a in enumerate(rows) for b in rows[i + 1:])
    summary = {"K": k, "evaluator": evaluator.name, "parent": str(parent_arch), "seeds": seeds,
               "parent_steps": args.parent_steps or k, "family_min_ratio": family_min,
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
    result = {"summary": summary, "actions": rows, "per_key": per_key, "config": args.config,
              "train": dataclasses.asdict(exp.train), "evaluator_config": dataclasses.asdict(evaluator),
              "machine": machine()}
    name = "signal_to_noise" + (f"_{args.tag}" if args.tag else f"_{evaluator.name}" if args.evaluator else "")
    result["args"] = vars(args)
    path = write(name, result)
    lines = [f"# Signal to noise ({evaluator.name}, K = {k}, {len(seeds)} seeds, parent {parent_arch} trained "
             f"{args.parent_steps or k} steps)", "",
             "```", "PYTHONPATH=. .venv/bin/python experiments/benchmarks/signal_to_noise.py " + " ".join(sys.argv[1:]),
             "```", "",
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
                  f"{summary['seconds_per_candidate']:.1f} s per candidate.", "",
              "worst ratio per family: " + ", ".join(f"{f} {v:.1f}" for f, v in family_min.items()), "",
              "Every breakdown key as a quality of its own (same trained candidates): worst ratio per family, "
              "median ratio over actions, and the sign of each family's mean Δ (losses: lower is better)", "",
              "| key | conv | self-attention | cross-attention | median | Δ sign conv / self / cross |",
              "|---|---|---|---|---|---|"]
    for key, info in per_key.items():
        fam = info["family_min_ratio"]
        signs = " / ".join(info["family_sign"].get(f, "?") for f in FAMILIES)
        lines.append(f"| {key} | " + " | ".join(f"{fam.get(f, float('nan')):.1f}" for f in FAMILIES) +
                     f" | {info['median_ratio']:.1f} | {signs} |")
    (Path(path).parent / (Path(path).stem + ".md")).write_text("\n".join(lines) + "\n")
    print("\n".join(lines[-3:]))
    print("wrote", path)


if __name__ == "__main__":
    main()
