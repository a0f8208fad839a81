"""Real campaigns: the real runner, the real lookup table, real Ray and Optuna storage."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import optuna
import pytest
import torch

from nas.campaign import Campaign
from nas.config import Experiment
from nas.engine import RunnerSpec
from nas.workers import Job, RayPool
from search_spaces.architecture import Architecture
from tests.nas.conftest import HWNAS, actor_pids, hwnas, small_config

# From empty: round 0 trains the reference and the 4 additions, round 1 the reference and the
# 2 additions at the other slot, then no unvisited addition is left (converged).
SNAPGEN_TRIALS = 8


def trials(camp_dir):
    return Campaign.open(camp_dir).trials()


def candidate_events(camp_dir):
    return [e for e in Campaign.open(camp_dir).events() if e["event"] == "candidate"]


def test_campaign_on_a_ray_cluster(tmp_path, tiny_config_path, work, ray_cluster):
    cfg = small_config(tmp_path / "c.yaml", tiny_config_path, work)  # builds its own lookup table
    camp = tmp_path / "camp"
    run = hwnas("search", "run", cfg, "--out", camp, "--ray-address", ray_cluster, "--json")
    assert run.returncode == 0, run.stderr[-2000:]
    out = json.loads(run.stdout)
    ts = trials(camp)
    assert len(ts) == SNAPGEN_TRIALS and all(t.state == optuna.trial.TrialState.COMPLETE for t in ts)
    assert len({t.user_attrs["candidate_id"] for t in ts}) == len(ts)
    # ΔQ is measured against the current model trained equally long, in the same round
    by_round = {}
    for t in ts:
        by_round.setdefault(t.user_attrs["round"], []).append(t)
    chosen = []
    for r, group in by_round.items():
        ref = next(t for t in group if t.user_attrs["role"] == "reference")
        for t in group:
            if t.user_attrs["role"] == "child":
                assert t.user_attrs["parent"] == ref.user_attrs["arch"]
                assert t.user_attrs["delta_quality"] == pytest.approx(t.values[0] - ref.values[0])
                assert t.user_attrs["delta_latency_ms"] == pytest.approx(t.values[1] - ref.values[1])
                chosen += [t] if t.user_attrs["chosen"] else []
    assert len(chosen) == 2 and chosen[1].user_attrs["parent"] == chosen[0].user_attrs["arch"]
    meta = Campaign.open(camp).meta
    assert meta["lut"]["sha256"] and os.path.exists(meta["lut"]["path"])
    assert out["stop_reason"].startswith("converged")
    # one checkpoint left: the current model's weights
    (ckpt,) = (camp / "checkpoints").glob("*.pt")
    assert torch.load(ckpt, weights_only=True)["state"]

    show = hwnas("pareto", "show", camp, "--json")
    front = json.loads(show.stdout)
    assert front["front"] == out["front"] and front["hypervolume"] == out["hypervolume"] > 0
    assert set(front["reference_point"]) == {"quality", "latency_ms", "memory_bytes"}
    for p in front["front"]:
        assert set(p) >= {"arch", "quality", "latency_ms", "memory_bytes", "feasible"}
    status = json.loads(hwnas("search", "status", camp, "--json").stdout)
    assert status["trials"] == SNAPGEN_TRIALS and status["done"] and status["rounds"] == 2
    for ext in ("png", "html"):
        plot = hwnas("pareto", "plot", camp, "--out", tmp_path / f"front.{ext}")
        assert plot.returncode == 0 and (tmp_path / f"front.{ext}").stat().st_size > 10_000
    # Front points are numbered by quality and keyed once to their architecture; the legend names
    # only what is drawn (no budgets here: nothing is over one).
    html = (tmp_path / "front.html").read_text()
    ranked = sorted(front["front"], key=lambda p: -p["quality"])
    assert all(f"{i}  {p['arch']}  (quality" in html for i, p in enumerate(ranked, start=1))
    assert "over a budget" not in html


def test_a_worker_killed_mid_candidate_is_retried(tmp_path, tiny_config_path, work, small_lut, ray_cluster):
    # three longer candidates (random search), so that one is surely running when its worker is killed
    cfg = small_config(tmp_path / "c.yaml", tiny_config_path, work, lut=small_lut,
                       search={"strategy": "random", "steps": 20, "max_train_steps": 60})
    camp = tmp_path / "camp"
    proc = subprocess.Popen(HWNAS + ["search", "run", str(cfg), "--out", str(camp), "--ray-address", ray_cluster],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    victim, deadline = None, time.time() + 180
    while victim is None and time.time() < deadline and proc.poll() is None:
        running = actor_pids(ray_cluster, running_only=True)
        if running:
            victim = running[0]
            os.kill(victim, signal.SIGKILL)
        time.sleep(0.2)
    assert victim is not None, "no worker was ever seen running a candidate"
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-2000:]
    ts = trials(camp)
    assert len(ts) == 3 and all(t.state == optuna.trial.TrialState.COMPLETE for t in ts)
    assert not os.path.exists(f"/proc/{victim}")


def test_campaign_killed_and_resumed_loses_and_repeats_nothing(tmp_path, tiny_config_path, work, small_lut,
                                                               ray_cluster):
    cfg = small_config(tmp_path / "c.yaml", tiny_config_path, work, lut=small_lut, search={"steps": 10})
    camp = tmp_path / "camp"
    proc = subprocess.Popen(HWNAS + ["search", "run", str(cfg), "--out", str(camp), "--ray-address", ray_cluster],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 180
    while time.time() < deadline and proc.poll() is None:
        if (camp / "events.jsonl").exists() and len(candidate_events(camp)) >= 2:
            break
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)  # kill -9, in the middle of round 0
    proc.wait()
    finished_before = {e["id"] for e in candidate_events(camp)}
    assert 2 <= len(finished_before) < SNAPGEN_TRIALS

    resume = hwnas("search", "resume", camp, "--ray-address", ray_cluster)
    assert resume.returncode == 0, resume.stderr[-2000:]
    trained = [e["id"] for e in candidate_events(camp)]
    assert len(trained) == len(set(trained)), "a finished candidate was trained again"
    ts = trials(camp)
    ids = [t.user_attrs["candidate_id"] for t in ts]
    assert len(ids) == len(set(ids)) == SNAPGEN_TRIALS and finished_before <= set(ids)
    events = Campaign.open(camp).events()
    resumed_round = next(e for e in events[[e["event"] for e in events].index("resumed"):]
                         if e["event"] == "round_started")
    assert finished_before & {c["id"] for c in resumed_round["candidates"]} <= set(resumed_round["cached"])


def test_ray_pool_timeout_replaces_the_worker_and_records_the_reason(tmp_path, tiny_config_path, work, small_lut):
    import ray

    exp = Experiment.load(small_config(tmp_path / "c.yaml", tiny_config_path, work, lut=small_lut))
    pool = RayPool(RunnerSpec(exp, str(work)), workers=1, timeout_s=300)
    with pool:  # a local cluster, started and stopped by the pool
        quick = Job("a", Architecture(), 2, 0)
        (job, first), = list(pool.evaluate([quick]))
        assert first.status == "ok" and job.wall_s >= first.seconds > 0
        pool.timeout_s = 2.0
        (_, slow), = list(pool.evaluate([Job("b", Architecture.parse("mid:self_attn1d:1"), 100_000, 0)]))
        assert slow.status == "failed" and "timed out after 2 s (search.timeout_s)" in slow.reason
        pool.timeout_s = 300  # a job's own limit (the final stage's) wins over the pool's
        own = Job("b2", Architecture.parse("mid:self_attn1d:1"), 100_000, 0, timeout_s=2.0,
                  timeout_key="rescore.timeout_s")
        (_, slow), = list(pool.evaluate([own]))
        assert slow.status == "failed" and "timed out after 2 s (rescore.timeout_s)" in slow.reason
        parent = first.state
        (_, again), = list(pool.evaluate([Job("c", Architecture.parse("mid:conv1d:1"), 2, 0, parent)]))
        assert again.status == "ok" and again.state
    assert not ray.is_initialized()


def test_inline_pool_runs_the_same_interface_in_process(tmp_path, tiny_config_path, work, small_lut):
    from nas.workers import InlinePool

    exp = Experiment.load(small_config(tmp_path / "c.yaml", tiny_config_path, work, lut=small_lut))
    with InlinePool(RunnerSpec(exp, str(work))) as pool:
        jobs = [Job("a", Architecture(), 2, 0), Job("b", Architecture.parse("down0:conv1d:1"), 2, 0)]
        results = list(pool.evaluate(jobs))
        assert [j.key for j, _ in results] == ["a", "b"]
        assert all(r.status == "ok" and j.wall_s >= r.seconds > 0 for j, r in results)
        (_, bad), = list(pool.evaluate([Job("c", Architecture.parse("up0:conv1d:1"), 2, 0)]))
        assert bad.status == "failed" and "up0" in bad.reason  # a slot the space lacks: failed, not raised


def test_kill_9_of_a_campaign_leaves_no_ray_process_behind(tmp_path, tiny_config_path, work, small_lut):
    """Only the campaign's own process is killed (as a user's kill -9 would), not its group."""
    from nas.reaper import alive, descendants

    cfg = small_config(tmp_path / "c.yaml", tiny_config_path, work, lut=small_lut, search={"steps": 10})
    camp = tmp_path / "camp"
    proc = subprocess.Popen(HWNAS + ["search", "run", str(cfg), "--out", str(camp)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if (camp / "events.jsonl").exists() and candidate_events(camp):
            break
        time.sleep(0.1)
    cluster = descendants(proc.pid)
    assert len(cluster) >= 3  # gcs, raylet, workers ...
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.time() + 10
    while time.time() < deadline and any(alive(p) for p in cluster):
        time.sleep(0.2)
    left = [p for p in cluster if alive(p)]
    assert not left, f"Ray processes outlived the campaign: {left}"
    resume = hwnas("search", "resume", camp)  # and the campaign goes on
    assert resume.returncode == 0, resume.stderr[-2000:]
    assert len(trials(camp)) == SNAPGEN_TRIALS


def test_sigint_stops_the_campaign_with_nothing_of_rays_on_stdout(tmp_path, tiny_config_path, work, small_lut):
    """SIGINT to the campaign (kill -INT; Ctrl-C sends it to the whole group) while workers are
    inside candidates: exit 130, no process left, and stdout carries nothing from Ray (killing
    the actors one by one had its driver print there that their tasks 'will be retried')."""
    from nas.reaper import alive, descendants

    cfg = small_config(tmp_path / "c.yaml", tiny_config_path, work, lut=small_lut, search={"steps": 40})
    camp = tmp_path / "camp"
    proc = subprocess.Popen(HWNAS + ["search", "run", str(cfg), "--out", str(camp)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if (camp / "events.jsonl").exists() and len(candidate_events(camp)) >= 2:
            break
        time.sleep(0.1)
    cluster = descendants(proc.pid)
    assert len(candidate_events(camp)) < SNAPGEN_TRIALS  # the round goes on: workers are busy
    os.kill(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err[-2000:]
    assert "raylet" not in out and "retried" not in out, out[-2000:]
    deadline = time.time() + 10
    while time.time() < deadline and any(alive(p) for p in cluster):
        time.sleep(0.2)
    assert not [p for p in cluster if alive(p)]


def test_status_mid_round_says_how_far_the_round_is(tmp_path, tiny_config_path, work, hwnas):
    """Trials are stored when a round is decided: mid-round, status says how many of the
    round's candidates have finished, beside rounds and trials still at 0."""
    exp = Experiment.load(small_config(tmp_path / "c.yaml", tiny_config_path, work))
    camp = Campaign.create(tmp_path / "camp", exp.to_dict())
    camp.event("started", rounds=0, steps_used=0)
    camp.event("round_started", round=0, candidates=[{"id": "r0.ref"}, {"id": "r0.a0"}, {"id": "r0.a1"}])
    camp.event("candidate", id="r0.a0", steps=3)
    status = camp.status()
    assert status["round_in_progress"] == {"round": 0, "candidates": 3, "finished": 1}
    assert status["trials"] == 0 and status["budget"]["training_steps"] == 3
    text = hwnas("search", "status", camp.root).stdout
    assert "round_in_progress: round 0: 1 of 3 candidates finished" in text and "budget.training_steps: 3" in text
    camp.event("round_finished", round=0, steps_used=9)
    assert camp.status()["round_in_progress"] is None
