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
what it already trained at those steps is reused, the rest trained.
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


def candidate_id(arch: str, steps: int) -> str:
    """The same for an architecture and the stage's steps in any run, resume or edited stage."""
    return f"{ROLE}{steps}-{hashlib.sha256(arch.encode()).hexdigest()[:12]}"


def candidates(experiment: Experiment, space, choices: list[Choice]) -> list[Candidate]:
    """One per shortlisted architecture; its weights are kept, so ``hwnas train --pick``
    continues from them."""
    r = experiment.rescore
    return [Candidate(candidate_id(c.arch, r.steps), space.parse(c.arch), r.steps, experiment.seed, role=ROLE,
                      keep_weights=True) for c in choices]


def run_stage(campaign, experiment: Experiment, space, pool, predict, budgets,
              emit: Callable[..., None], round_index: int) -> int:
    """Train and score every shortlisted architecture not yet stored; returns how many ran.
    ``predict(arch)`` is the campaign's cost, ``emit(kind, **fields)`` its event sink."""
    from nas.workers import Job

    r = experiment.rescore
    todo = [c for c in candidates(experiment, space, shortlist(campaign, r)) if c.id not in campaign.stored_ids()]
    for c in todo:  # finished before a kill, not yet a trial: from its checkpoint
        result = campaign.load_result(c.id)
        if result is not None:
            campaign.record(space, Outcome(c, result, predict(c.arch)), {}, round_index, budgets)
    todo = [c for c in todo if c.id not in campaign.stored_ids()]
    if not todo:
        return 0
    by_id = {c.id: c for c in todo}
    emit("rescore_started", steps=r.steps, seed=experiment.seed, archs=[str(c.arch) for c in todo])
    jobs = [Job(c.id, c.arch, c.steps, c.seed, timeout_s=r.timeout_s, timeout_key="rescore.timeout_s") for c in todo]
    for job, result in pool.evaluate(jobs):
        c = by_id[job.key]
        campaign.save_result(c, result)
        campaign.record(space, Outcome(c, result, predict(c.arch)), {}, round_index, budgets)
        emit("rescored", id=c.id, arch=str(c.arch), status=result.status, quality=result.quality,
             reason=result.reason, steps=c.steps, seconds=result.seconds, wall_s=job.wall_s)
    return len(todo)
