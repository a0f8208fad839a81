"""The search loop: propose → train and score on the pool → record → update, round after round.

Builds every object a campaign needs from its frozen config (the space, the lookup
table, the coarse-search pruning, the strategy, the worker pool) so that ``search run``
and ``search resume`` are the same code.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from nas.campaign import Campaign, CampaignError
from nas.config import Experiment
from nas.strategies import Candidate, Cost, Outcome, SearchState, Strategy, create_strategy
from nas.workers import InlinePool, Job, RayPool, RunResult, WorkerPool
from search_spaces.architecture import Architecture
from search_spaces.budgets import MIB, Budgets
from search_spaces.errors import ConfigError
from search_spaces.space import SearchSpace


class BudgetError(ConfigError):
    """Budgets that no architecture of the space can meet."""


@dataclass(frozen=True)
class RunnerSpec:
    """Picklable recipe for a CandidateRunner, so each Ray actor builds its own."""

    experiment: Experiment
    workdir: str

    def __call__(self):
        from evaluators import CandidateRunner

        e = self.experiment
        return CandidateRunner(e.space, e.data, e.train, e.evaluator, self.workdir, e.seed)


class TableCost:
    """Whole-network latency and memory from the lookup table, memoised per architecture."""

    def __init__(self, table, space: SearchSpace):
        self.table, self.space, self._memo = table, space, {}

    def prediction(self, arch: Architecture):
        key = str(arch)
        if key not in self._memo:
            self._memo[key] = self.table.predict(self.space, arch)
        return self._memo[key]

    def __call__(self, arch: Architecture) -> Cost:
        p = self.prediction(arch)
        return Cost(float(p.latency_ms), float(p.memory_bytes))


def check_budgets(space: SearchSpace, cost: TableCost, budgets: Budgets) -> None:
    """The backbone alone is the cheapest architecture (every operator adds cost): if it
    cannot run, or breaks a budget, no architecture can meet the budgets."""
    p = cost.prediction(space.empty)
    broken = budgets.violations(p.latency_ms, p.memory_bytes) if p.status == "ok" else ["latency", "memory"]
    if not broken:
        return
    key = "budgets.video" if budgets.video is not None and "latency" in broken else \
        "budgets.latency_ms" if "latency" in broken else "budgets.memory_mib"
    limit = (f"{budgets.latency_ms_per_step:.3f} ms per step" if "latency" in broken and budgets.latency_ms_per_step
             else f"{budgets.memory_mib} MiB" if budgets.memory_mib else "the device")
    if p.status != "ok":
        raise BudgetError(f"{key}: no architecture can meet {limit}; the cheapest (the backbone alone, 'empty') "
                          f"cannot run on the device: {'; '.join(p.reasons)}")
    raise BudgetError(f"{key}: no architecture can meet {limit}; the cheapest (the backbone alone, 'empty') "
                      f"costs {p.latency_ms:.3f} ms per step and {p.memory_bytes / MIB:.1f} MiB")


def load_or_build_table(experiment: Experiment, space: SearchSpace, campaign: Campaign, progress: bool):
    from lookup_tables import LookupTable, build_table

    if experiment.lut.path:
        path = Path(experiment.lut.path)
        table = LookupTable.load(path)
    else:
        path = campaign.root / "lut.parquet"
        table = build_table(space, experiment.lut, path, progress=progress)
    campaign.set_lut(path)
    return table


def state_filter(space: SearchSpace, table, budgets: Budgets) -> Callable[[Architecture], bool]:
    """The coarse search (METHOD.md §2) as a filter on architectures: no state the table
    pruned (a layer the device cannot run, or that breaks a budget on its own). Whole-network
    budgets are the strategies' business: a removal may lead through an over-budget child."""
    from lookup_tables.prune import prune

    pruning = prune(space, table, budgets)
    return lambda arch: not any(pruning.state_reason(s, l.op, l.count) for s, l in arch.items())


def make_pool(experiment: Experiment, workdir: str, ray_address: str | None) -> WorkerPool:
    s = experiment.search
    spec = RunnerSpec(experiment, workdir)
    if s.workers == 0:
        return InlinePool(spec)
    return RayPool(spec, workers=s.workers, address=ray_address or s.ray_address, timeout_s=s.timeout_s,
                   retries=s.retries, max_restarts=s.max_restarts)


class Engine:
    """Drives one campaign's strategy over a pool until it stops or a limit is reached."""

    def __init__(self, campaign: Campaign, experiment: Experiment, space: SearchSpace, state: SearchState,
                 strategy: Strategy, pool: WorkerPool, on_progress: Callable[[str, dict], None] | None = None):
        self.campaign, self.experiment, self.space = campaign, experiment, space
        self.state, self.strategy, self.pool = state, strategy, pool
        self.on_progress = on_progress or (lambda kind, info: None)
        saved = campaign.load_state()
        self.rounds, self.steps_used = 0, 0
        if saved:
            strategy.load_state_dict(saved["strategy"])
            self.rounds, self.steps_used = saved["rounds"], saved["steps_used"]
        if any(e["event"] == "round_started" for e in campaign.events()):
            campaign.event("resumed", rounds=self.rounds, steps_used=self.steps_used)

    def prepare(self, progress=None) -> None:
        """Data and pre-trained backbone, once, in this process: the workers then find them
        cached. ``progress(step, total, loss)`` follows the backbone's pre-training."""
        self.pool.make_runner().prepare(progress)

    @property
    def steps_left(self) -> int | None:
        limit = self.experiment.search.max_train_steps
        return None if limit is None else limit - self.steps_used

    def _outcome(self, c: Candidate, r: RunResult) -> Outcome:
        cost = self.state.predict(c.arch)
        return Outcome(c, r.status == "ok", r.quality, cost.latency_ms, cost.memory_bytes, r.reason,
                       r.breakdown, r.seconds)

    def run(self) -> str:
        """Rounds until the strategy stops or ``search.max_rounds``; returns why it stopped."""
        while not self.strategy.done:
            if self.rounds >= self.experiment.search.max_rounds:
                return f"round limit reached (search.max_rounds = {self.experiment.search.max_rounds})"
            self.state.steps_left = self.steps_left
            batch = self.strategy.propose(self.state)
            if not batch:
                break
            self.run_round(batch)
        self._save()
        return self.strategy.stop_reason

    def _save(self) -> None:
        self.campaign.save_state({"strategy": self.strategy.state_dict(), "rounds": self.rounds,
                                  "steps_used": self.steps_used})

    def run_round(self, batch: list[Candidate]) -> None:
        camp = self.campaign
        results = {c.id: camp.load_result(c.id) for c in batch}
        todo = [c for c in batch if results[c.id] is None]
        self.on_progress("round", {"round": self.rounds, "candidates": len(batch), "cached": len(batch) - len(todo)})
        camp.event("round_started", round=self.rounds, candidates=[c.to_dict() for c in batch],
                   cached=[c.id for c in batch if results[c.id] is not None])
        parents = {k: camp.weights(k) for k in {c.parent_weights for c in todo} if k is not None}
        by_id = {c.id: c for c in batch}
        jobs = [Job(c.id, c.arch, c.steps, c.seed, parents.get(c.parent_weights)) for c in todo]
        for job, result in self.pool.evaluate(jobs):
            camp.save_result(by_id[job.key], result)
            results[job.key] = result
            camp.event("candidate", id=job.key, arch=str(job.arch), status=result.status, quality=result.quality,
                       reason=result.reason, seconds=result.seconds, wall_s=result.wall_s)
            self.on_progress("candidate", {"id": job.key, "arch": str(job.arch), "status": result.status,
                                           "quality": result.quality, "steps": job.steps})
        outcomes = [self._outcome(c, results[c.id]) for c in batch]
        notes = self.strategy.update(outcomes)
        for o in outcomes:
            camp.record(self.space, o, notes.get(o.candidate.id, {}), self.rounds, self.experiment.budgets)
        self.rounds += 1
        self.steps_used += sum(c.steps for c in batch)
        self._save()
        camp.keep_only(self.strategy.weight_keys())
        camp.event("round_finished", round=self.rounds - 1, steps_used=self.steps_used,
                   done=self.strategy.done, stop_reason=self.strategy.stop_reason,
                   decision=(getattr(self.strategy, "decisions", None) or [None])[-1])


def build_engine(campaign: Campaign, experiment: Experiment, ray_address: str | None = None,
                 progress: bool = True, on_progress=None, pool: WorkerPool | None = None) -> Engine:
    """Everything from the frozen config: space, table, budgets check, pruning, strategy, and
    the worker pool (or ``pool``, e.g. one shared by several campaigns)."""
    space = SearchSpace(experiment.space)
    table = load_or_build_table(experiment, space, campaign, progress)
    predict = TableCost(table, space)
    check_budgets(space, predict, experiment.budgets)
    state = SearchState(space, predict, experiment.budgets, state_filter(space, table, experiment.budgets))
    s = experiment.search
    strategy = create_strategy(s.strategy, s.options, experiment.seed, experiment.candidate_steps)
    if pool is None:
        pool = make_pool(experiment, s.workdir or str(campaign.root / "work"), ray_address)
    return Engine(campaign, experiment, space, state, strategy, pool, on_progress)
