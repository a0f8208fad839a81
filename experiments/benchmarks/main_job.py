"""The README's main job as a newcomer runs it: a fresh clone of this repository, then
``hwnas search run experiments/tiny.yaml``. Records the wall time, the front (with its
normalised hypervolume), the backbone's measured latency and the resolved budgets, with
the machine and its load.

    python experiments/benchmarks/main_job.py                 # this interpreter's packages
    python experiments/benchmarks/main_job.py --fresh-venv    # also a new venv + pip install, as the README

Writes results/main_job_<cpu-slug>.json (one file per processor model, so runs on other
machines sit beside each other); another ``--config`` (e.g. experiments/realistic.yaml, issue
12's CPU campaign) writes results/main_job_<config>_<cpu-slug>.json.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from _machine import machine, write  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fresh-venv", action="store_true", help="create a venv and install as the README says")
    ap.add_argument("--config", default="experiments/tiny.yaml")
    ap.add_argument("--keep", help="copy the finished campaign directory here (e.g. to verify it afterwards)")
    args = ap.parse_args()
    result = {"machine": machine(), "config": args.config}
    with tempfile.TemporaryDirectory(prefix="hwnas_main_job_") as tmp:
        clone = Path(tmp) / "hwnas"
        subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
        result["commit"] = subprocess.run(["git", "rev-parse", "HEAD"], cwd=clone, capture_output=True,
                                          text=True).stdout.strip()
        env = dict(os.environ, RAY_AUTH_MODE="disabled")
        python = sys.executable
        if args.fresh_venv:
            t0 = time.time()
            subprocess.run([sys.executable, "-m", "venv", ".venv"], cwd=clone, check=True)
            python = str(clone / ".venv" / "bin" / "python")
            subprocess.run([python, "-m", "pip", "install", "-q", "-c", "constraints.txt", "-e", ".[dev]"],
                           cwd=clone, check=True)
            result["install_s"] = time.time() - t0
        else:
            env["PYTHONPATH"] = str(clone)
        t0 = time.time()
        proc = subprocess.run([python, "-m", "nas.cli", "search", "run", args.config, "--json"], cwd=clone,
                              env=env, capture_output=True, text=True)
        result["wall_s"] = time.time() - t0
        result["returncode"] = proc.returncode
        if proc.returncode != 0:
            result["error"] = proc.stderr.strip().splitlines()[-1:]
        else:
            out = json.loads(proc.stdout)
            result.update(stop_reason=out["stop_reason"], front=out["front"], hypervolume=out["hypervolume"],
                          hypervolume_normalised=out["hypervolume_normalised"])
            camp = clone / "runs" / yaml.safe_load((clone / args.config).read_text())["name"]  # search run's default --out
            meta = json.loads((camp / "campaign.json").read_text())
            result["budgets_resolved"] = meta.get("budgets")
            status = subprocess.run([python, "-m", "nas.cli", "search", "status", str(camp), "--json"], cwd=clone,
                                    env=env, capture_output=True, text=True)
            result["status"] = json.loads(status.stdout) if status.returncode == 0 else None
            sys.path.insert(0, str(clone))
            from lookup_tables import LookupTable
            from nas.config import Experiment
            from search_spaces.space import SearchSpace

            exp = Experiment.load(clone / args.config)
            space = SearchSpace(exp.space)
            empty = LookupTable.load(camp / "lut.parquet").predict(space, space.empty)
            result["backbone_latency_ms"] = empty.latency_ms
            result["backbone_memory_bytes"] = empty.memory_bytes
            if args.keep:
                shutil.copytree(camp, args.keep, dirs_exist_ok=True)
                result["kept"] = args.keep
    slug = re.sub(r"[^a-z0-9]+", "_", result["machine"]["cpu"].lower()).strip("_")[:40]
    stem = Path(args.config).stem
    print(write(f"main_job_{slug}" if stem == "tiny" else f"main_job_{stem}_{slug}", result))
    print(json.dumps({k: result.get(k) for k in ("wall_s", "returncode", "stop_reason", "backbone_latency_ms",
                                                  "budgets_resolved", "hypervolume_normalised")}, indent=1))


if __name__ == "__main__":
    main()
