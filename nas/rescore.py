"""The search's final stage: the shortlist re-scored after longer training (``rescore`` section).

K brief steps from the current model rank what K steps show. On the tiny experiment that is
not what the ground truth ranks: the search's recorded qualities agree with the verified
motion at Spearman 0.595, the same qualities after 960 steps from the backbone at 0.952
(``experiments/benchmarks/results/proxy_horizon_tiny_main2.md``). Training every candidate
that long is what the budget cannot pay; training the few the search has shortlisted is
(successive halving's last rung). So when the strategy stops, :func:`run_stage` trains the
search front's best and a spread of dominated architectures (:func:`nas.verify.choose`, as
``pareto verify`` picks) ``rescore.steps`` steps each from the frozen backbone, all under the
experiment's seed, on the campaign's own pool, and scores them with the search's evaluator.

Storage: each finished architecture is a checkpoint with its weights
(``checkpoints/rescore<steps>-<hash of the architecture>.pt``; ``hwnas train --pick`` starts
from them), then at once one Optuna trial (role ``rescore``, values [quality, latency_ms,
memory_bytes]; a failure is a FAIL trial with its reason), so a kill loses only the runs
still training and a resume trains only the rest. The shortlist is decided from the
brief-training trials alone, so it is the same after a resume. When all are in,
``strategy.json`` records the stage's key (``RescoreConfig.key``), and from then on the
campaign's front (``Campaign.front()``, ``pareto show``, ``pareto verify``) is the front of the
architectures re-scored at ``rescore.steps``; ``Campaign.front("search")`` is still the
brief-training one. An edited ``rescore`` section runs the stage again on ``search run``:
what it already trained at those steps is reused, the rest trained; the final front holds the
current shortlist's architectures only. A run that failed (its reason in the FAIL trial and
the ``rescored`` event) is tried again by the next ``search run`` or ``resume``.
"""
from __future__ import annotations

import hashlib
from collections.abc import Callable

from nas.campaign import RESCORE as ROLE
from nas.config import Experiment, RescoreConfig
from nas.strategies import Candidate, Outcome
from nas.verify import Choice, choose


def shortlist(campaign, config: RescoreConfig) -> list[Choice]:
    """The architectures the stage trains, from the brief-training trials alone."""
    front = campaign.front("search")
    if not front.evaluated:
        return []
    return choose(front, config.top, config.contrast, config.min_architectures)


def candidate_id(arch: str, steps: int, attempt: int = 0) -> str:
    """The same for an architecture, the stage's steps and the attempt in any run or resume
    (a failed run is tried again under the next attempt)."""
    base = f"{ROLE}{steps}-{hashlib.sha256(arch.encode()).hexdigest()[:12]}"
    return base if attempt == 0 else f"{base}~{attempt}"


def pending(campaign, experiment: Experiment, space) -> list[Candidate]:
    """The shortlisted architectures without a finished run at ``rescore.steps``, each as the
    candidate of its next attempt; its weights are kept, so ``hwnas train --pick`` continues
    from them."""
    import optuna

    r = experiment.rescore
    tried: dict[str, list] = {}
    for t in campaign.trials():
        a = t.user_attrs
        if a.get("role") == ROLE and a.get("steps") == r.steps:
            tried.setdefault(a["arch"], []).append(t.state)
    out = []
    for c in shortlist(campaign, r):
        states = tried.get(c.arch, [])
        if optuna.trial.TrialState.COMPLETE not in states:
            out.append(Candidate(candidate_id(c.arch, r.steps, len(states)), space.parse(c.arch), r.steps,
                                 experiment.seed, role=ROLE, keep_weights=True))
    return out


def run_stage(campaign, experiment: Experiment, space, pool, predict, budgets,
              emit: Callable[..., None]) -> dict:
    """Train and score every shortlisted architecture without a finished run (a failed one
    again); returns how many ran, finished and failed. ``predict(arch)`` is the campaign's
    cost, ``emit(kind, **fields)`` its event sink."""
    from nas.workers import Job

    r = experiment.rescore
    for c in pending(campaign, experiment, space):  # finished before a kill, not yet a trial
        result = campaign.load_result(c.id)
        if result is not None:
            campaign.record(space, Outcome(c, result, predict(c.arch)), {}, None, budgets)
    todo = pending(campaign, experiment, space)
    out = {"ran": len(todo), "ok": 0, "failed": 0}
    if not todo:
        return out
    by_id = {c.id: c for c in todo}
    emit("rescore_started", steps=r.steps, seed=experiment.seed, archs=[str(c.arch) for c in todo])
    jobs = [Job(c.id, c.arch, c.steps, c.seed, timeout_s=r.timeout_s, timeout_key="rescore.timeout_s") for c in todo]
    for job, result in pool.evaluate(jobs):
        c = by_id[job.key]
        campaign.save_result(c, result)
        campaign.record(space, Outcome(c, result, predict(c.arch)), {}, None, budgets)
        out["ok" if result.status == "ok" else "failed"] += 1
        emit("rescored", id=c.id, arch=str(c.arch), status=result.status, quality=result.quality,
             reason=result.reason, steps=c.steps, seconds=result.seconds, wall_s=job.wall_s)
    return out
