"""Kill a tiny campaign with SIGKILL at random moments and resume it each time: it must end
with no finished candidate lost or trained twice, the same trials and front as an
uninterrupted run with the same seed, and no process of it left over.

The campaign is the README's tiny experiment, shortened (fewer clips, pre-training steps
and candidates, a final stage of 3 architectures x 20 steps) and priced with the analytic backend: measured latencies differ between
two table builds, so only a deterministic table lets the two fronts be compared exactly.
Kill moments are drawn uniformly over the uninterrupted run's wall time and sorted; each
attempt (the first run, then every resume) is killed after the gap to the next moment, so
the kills spread over the whole campaign — data synthesis, pre-training (checkpointed), the
table build and mid-round alike. Each kill hits the campaign's own process (as
``kill -9 PID`` would), not its process group.

    python experiments/benchmarks/soak_kill.py [--kills 10] [--seed 0]

Writes results/soak_kill.json.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from _machine import machine, write  # noqa: E402

from nas.campaign import Campaign  # noqa: E402
from nas.reaper import _processes, alive, descendants  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
HWNAS = [sys.executable, "-m", "nas.cli"]


def config(tmp: Path) -> Path:
    cfg = yaml.safe_load((ROOT / "experiments" / "tiny.yaml").read_text())
    cfg["data"].update(videos=96, val_videos=16)
    cfg["train"].update(steps=10)
    cfg["train"]["pretrain"].update(steps=120)
    for part in cfg["evaluator"]["options"]["components"]:  # the weighted quality's parts, on 8 clips
        part["options"].update({"val_clips": 8} if part["name"] == "flow_loss" else {"clips": 8})
    cfg["lut"] = {"backend": "analytic", "device": "cpu"}
    cfg["search"].update(max_train_steps=180)
    cfg["rescore"] = {"steps": 20, "top": 2, "contrast": 1, "min_architectures": 3}  # the final stage too
    path = tmp / "soak.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def run(args, env) -> subprocess.Popen:
    return subprocess.Popen(HWNAS + args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)


def trials(camp: Path) -> list[tuple[str, str, float]]:
    return sorted((t.user_attrs["candidate_id"], t.user_attrs["arch"], t.values[0])
                  for t in Campaign.open(camp).trials() if t.values)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kills", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    result = {"machine": machine(), "kills": []}
    env = dict(os.environ, RAY_AUTH_MODE="disabled", PYTHONPATH=str(ROOT))
    with tempfile.TemporaryDirectory(prefix="hwnas_soak_") as tmp:
        tmp = Path(tmp)
        cfg = config(tmp)
        t0 = time.time()
        whole = subprocess.run(HWNAS + ["search", "run", str(cfg), "--out", str(tmp / "whole")], env=env,
                               capture_output=True, text=True)
        result["uninterrupted_s"] = wall = time.time() - t0
        assert whole.returncode == 0, whole.stderr[-2000:]
        camp = tmp / "killed"
        # the killed campaign gets its own work directory: data, pre-training and table are
        # made (and killed) again from nothing
        moments = sorted(rng.uniform(0.5, wall) for _ in range(args.kills))
        gaps = [b - a for a, b in zip([0.0] + moments, moments)]
        for i, at in enumerate(gaps):
            started = (camp / "campaign.json").exists()
            proc = run(["search", "resume", str(camp)] if started else ["search", "run", str(cfg), "--out", str(camp)],
                       env)
            deadline = time.time() + at
            while time.time() < deadline and proc.poll() is None:
                time.sleep(0.05)
            if proc.poll() is not None:
                result["kills"].append({"at_s": at, "finished_before_kill": True})
                break
            events = Campaign.open(camp).events() if (camp / "campaign.json").exists() else []
            phase = events[-1]["event"] if events else "before the campaign existed"
            cluster = descendants(proc.pid)
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            end = time.time() + 10
            while time.time() < end and any(alive(p) for p in cluster):
                time.sleep(0.2)
            left = sorted(p for p in cluster if alive(p))
            result["kills"].append({"at_s": round(at, 2), "last_event": phase, "processes": len(cluster),
                                    "left_after_10s": left})
            print(f"kill {i}: at {at:.1f} s after '{phase}', {len(cluster)} processes, left {left}", flush=True)
        final = subprocess.run(HWNAS + ["search", "resume", str(camp)], env=env, capture_output=True, text=True)
        assert final.returncode == 0, final.stderr[-2000:]
        a, b = trials(tmp / "whole"), trials(camp)
        trained = [e["id"] for e in Campaign.open(camp).events() if e["event"] in ("candidate", "rescored")]
        front_a = [(p.arch, p.quality) for p in Campaign.open(tmp / "whole").front().points]
        front_b = [(p.arch, p.quality) for p in Campaign.open(camp).front().points]
        leftovers = [pid for pid, (_, cmd) in _processes().items() if str(tmp) in cmd]
        result.update(
            trials_uninterrupted=len(a), trials_killed=len(b),
            lost=len({x[0] for x in a} - {x[0] for x in b}), repeated_trials=len(b) - len({x[0] for x in b}),
            trained_twice=len(trained) - len(set(trained)), same_trials=a == b, same_front=front_a == front_b,
            front=front_b, processes_left=leftovers,
            kills_with_processes_left=sum(bool(k.get("left_after_10s")) for k in result["kills"]))
    print(json.dumps({k: v for k, v in result.items() if k not in ("machine", "front")}, indent=1, default=str))
    print(write("soak_kill", result))


if __name__ == "__main__":
    main()
