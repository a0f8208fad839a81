"""The search: one entry, ``Search(campaign).run(observer)`` (Ray Tune's ``Tuner.fit()``).

It rebuilds every object a campaign needs from the campaign's frozen config (the space,
the lookup table, the coarse-search pruning, the strategy, the worker pool), so a first
run and a resume are the same code; prepares the data and the pre-trained backbone once;
owns the pool's lifetime; and runs rounds of propose → train and score on the pool →
record → update until the strategy stops. Everything that happens is emitted once, as an
event, to the campaign's ``events.jsonl`` and to the caller's :class:`Observer`.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

from core.budgets import MIB, Budgets
from core.errors import ConfigError, one_line
from nas.campaign import Campaign
from nas.config import Experiment
from nas.strategies import Candidate, Cost, Outcome, SearchState, create_strategy
from nas.workers import InlinePool, Job, RayPool, WorkerPool, check_local_gpus, check_reachable
from search_spaces.architecture import Architecture
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

    def forget(self) -> None:
        """The table changed (an entry was measured): price everything afresh."""
        self._memo.clear()

    def __call__(self, arch: Architecture) -> Cost:
        p = self.prediction(arch)
        return Cost(float(p.latency_ms), float(p.memory_bytes))


def resolve_budgets(space: SearchSpace, cost: TableCost, budgets: Budgets) -> Budgets:
    """Absolute budgets: relative ones (``*_over_backbone_pct``) against the backbone's row of
    this campaign's table, the one source every cost of the campaign comes from."""
    if not budgets.relative:
        return budgets
    from lookup_tables import LutError

    key = "budgets.latency_over_backbone_pct" if budgets.latency_over_backbone_pct is not None \
        else "budgets.memory_over_backbone_pct"
    try:
        p = cost.prediction(space.empty)
    except LutError as exc:
        raise BudgetError(f"{key}: a budget relative to the backbone needs the backbone's row in the lookup "
                          f"table: {one_line(exc)}") from None
    if p.status != "ok" or p.latency_ms is None or p.latency_ms != p.latency_ms:
        raise BudgetError(f"{key}: a budget relative to the backbone needs the backbone's row in the lookup "
                          f"table, which cannot price it ({'; '.join(p.reasons) or p.status}); build the table "
                          "from the experiment (hwnas lut build CONFIG) or state absolute budgets")
    return budgets.resolve(p.latency_ms, p.memory_bytes)


def check_first_round(exp, state: SearchState) -> None:
    """A training budget that cannot pay for the strategy's first round would end the campaign
    before it trains anything, as if it had run: say what the first round needs instead."""
    limit = exp.search.max_train_steps

    def first(steps_left):
        probe = create_strategy(exp.search.strategy, exp.search.options, exp.seed, exp.candidate_steps)
        return probe.propose(replace(state, steps_left=steps_left))

    if limit is None or first(limit):
        return
    batch = first(None)
    need = sum(c.steps for c in batch)
    if batch:
        raise BudgetError(f"search.max_train_steps = {limit} cannot pay for the first round: its {len(batch)} "
                          f"candidate{'s' if len(batch) > 1 else ''} train {need} steps in all; give {need} or more")


def check_budgets(space: SearchSpace, cost: TableCost, budgets: Budgets, stated: Budgets | None = None) -> None:
    """The backbone alone is the cheapest architecture (every operator adds cost): if it
    cannot run, or breaks a budget, no architecture can meet the budgets; the message says
    what would fit. ``budgets`` are resolved; ``stated`` as the config gives them."""
    stated = stated or budgets
    p = cost.prediction(space.empty)
    broken = budgets.violations(p.latency_ms, p.memory_bytes) if p.status == "ok" else ["latency", "memory"]
    if not broken:
        return
    if "latency" in broken:
        key = "budgets.video" if stated.video is not None else "budgets.latency_ms"
        limit = f"{budgets.latency_ms_per_step:.3f} ms per step" if budgets.latency_ms_per_step else "the device"
    else:
        key, limit = "budgets.memory_mib", f"{budgets.memory_mib:.2f} MiB" if budgets.memory_mib else "the device"
    if p.status != "ok":
        raise BudgetError(f"{key}: no architecture can meet {limit}; the cheapest (the backbone alone, 'empty') "
                          f"cannot run on the device: {'; '.join(p.reasons)}")
    fits = (f"latency_ms >= {p.latency_ms:.3f}" if "latency" in broken else f"memory_mib >= {p.memory_bytes / MIB:.2f}")
    relative = "latency_over_backbone_pct" if "latency" in broken else "memory_over_backbone_pct"
    raise BudgetError(f"{key}: no architecture can meet {limit}; the cheapest (the backbone alone, 'empty') "
                      f"costs {p.latency_ms:.3f} ms per step and {p.memory_bytes / MIB:.2f} MiB on this table's "
                      f"device; what would fit: budgets.{fits}, or a budget relative to the backbone "
                      f"(budgets.{relative}: 5 allows 5 % more than the backbone alone)")


def load_or_build_table(experiment: Experiment, space: SearchSpace, campaign: Campaign, progress):
    from lookup_tables import LookupTable, build_table

    recorded = campaign.meta.get("lut")
    own = campaign.root / "lut.parquet"
    if experiment.lut.path and not (recorded and Path(recorded["path"]) == own.resolve()):
        path = Path(experiment.lut.path)
        table = LookupTable.load(path)
    elif experiment.lut.path:  # the campaign's copy, with what it measured during the search
        path = own
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
                   retries=s.retries, max_restarts=s.max_restarts, gpus_per_worker=s.gpus_per_worker)


class Observer:
    """What a caller sees of a search. ``event`` gets every milestone (the same ones that go
    to ``events.jsonl``); ``pretrain`` the backbone's pre-training steps; ``display`` is the
    progress display lent to the lookup-table build (False: none)."""

    def event(self, kind: str, fields: dict) -> None:
        pass

    def pretrain(self, step: int, total: int, loss: float) -> None:
        pass

    def display(self):
        return False


class Search:
    """One campaign's search, from its frozen config to a stop reason."""

    def __init__(self, campaign: Campaign, experiment: Experiment | None = None, ray_address: str | None = None,
                 pool: WorkerPool | None = None):
        self.campaign = campaign
        self.experiment = experiment or campaign.experiment()
        self.ray_address = ray_address or self.experiment.search.ray_address
        self._pool = pool  # e.g. one shared by several campaigns (benchmarks); else built here
        self.observer = Observer()
        self.rounds = self.steps_used = 0
        self.rescored = None  # the key of the final stage (nas.rescore) that stored all it shortlisted
        self._meter = None  # times actions on this process's device (lut.measure_actions_ms)

    # the pieces ----------------------------------------------------------------------
    def _emit(self, kind: str, **fields) -> None:
        self.campaign.event(kind, **fields)
        self.observer.event(kind, fields)

    def _check_inputs(self) -> None:
        """What can fail fast fails before any work: the storage, the Ray address."""
        self.campaign.study()
        if self.ray_address and self.experiment.search.workers and self._pool is None:
            check_reachable(self.ray_address)
        if not self.ray_address and self.experiment.search.workers and self._pool is None:
            check_local_gpus(self.experiment.search.gpus_per_worker)

    def _build(self) -> None:
        exp = self.experiment
        self.space = SearchSpace(exp.space)
        from evaluators.compat import check_inputs

        check_inputs(self.space, exp.data)  # data, weights and UNet fit together, before any work
        table = load_or_build_table(exp, self.space, self.campaign, self.observer.display())
        self.table = table
        self.cost = predict = TableCost(table, self.space)
        self.budgets = resolve_budgets(self.space, predict, exp.budgets)
        check_budgets(self.space, predict, self.budgets, exp.budgets)
        if exp.lut.measure_actions_ms is not None:
            self._action_meter()  # a table this device cannot time against fails before any training
        self.campaign.set_budgets(self.budgets)
        self.state = SearchState(self.space, predict, self.budgets, state_filter(self.space, table, self.budgets))
        s = exp.search
        self.strategy = create_strategy(s.strategy, s.options, exp.seed, exp.candidate_steps)
        saved = self.campaign.load_state()
        if not saved:
            check_first_round(exp, self.state)  # before any worker starts
        self.pool = self._pool or make_pool(exp, str(self.campaign.workdir()), self.ray_address)
        if saved:
            self.strategy.load_state_dict(saved["strategy"])
            self.rounds, self.steps_used = saved["rounds"], saved["steps_used"]
            self.rescored = saved.get("rescored")

    @property
    def steps_left(self) -> int | None:
        limit = self.experiment.search.max_train_steps
        return None if limit is None else limit - self.steps_used

    # the run -------------------------------------------------------------------------
    def run(self, observer: Observer | None = None) -> str:
        """Search until the strategy stops or ``search.max_rounds``; returns why it stopped."""
        self.observer = observer or Observer()
        t0 = time.time()
        self._check_inputs()
        self._build()
        resumed = any(e["event"] == "round_started" for e in self.campaign.events())
        self._emit("resumed" if resumed else "started", rounds=self.rounds, steps_used=self.steps_used,
                   max_train_steps=self.experiment.search.max_train_steps)
        self.pool.make_runner().prepare(self.observer.pretrain)  # once here; the workers find it cached
        if self._pool is None:
            with self.pool:
                reason = self._loop()
                self._rescore()
        else:
            reason = self._loop()
            self._rescore()
        self._emit("stopped", reason=reason, wall_s=time.time() - t0)
        return reason

    def _rescore(self) -> None:
        """The final stage (``rescore`` section, :mod:`nas.rescore`), once the strategy stopped."""
        key = self.experiment.rescore.key()
        if key is None:
            return
        from nas.rescore import pending, run_stage

        if self.rescored == key and not pending(self.campaign, self.experiment, self.space):
            return
        ran = run_stage(self.campaign, self.experiment, self.space, self.pool, self.state.predict, self.budgets,
                        self._emit)
        finished = len(self.campaign.points("rescore"))
        self.rescored = key if finished else None  # none finished: the search's front stays
        self._save()
        if finished:
            left = len(pending(self.campaign, self.experiment, self.space))
            self._emit("rescore_finished", archs=finished, failed=left, ran=ran["ran"], **key)

    def _loop(self) -> str:
        limit = self.experiment.search.max_rounds
        while not self.strategy.done:
            if self.rounds >= limit:
                return f"round limit reached (search.max_rounds = {limit})"
            self.state.steps_left = self.steps_left
            batch = self.strategy.propose(self.state)
            if not batch:
                break
            self.run_round(batch)
        self._save()
        return self.strategy.stop_reason

    def _measure_unsure(self, outcomes: list[Outcome]) -> bool:
        """Measured when unsure (HiFi-LLP's hybrid): an estimated entry pricing a candidate of
        this round whose stated error exceeds ``lut.measure_unsure_ms``, or (with
        ``lut.measure_unsure_gap``) the change of predicted latency that would change the
        strategy's decision (``Strategy.decision_gaps_ms``), is measured on this process's device
        before the strategy decides; the measurement joins the campaign's own copy of the table
        (provenance ``measured-during-search``) and the decision uses it. True if any was."""
        lut = self.experiment.lut
        gaps = self.strategy.decision_gaps_ms(outcomes) if lut.measure_unsure_gap else {}
        gap = min(gaps.values()) if gaps else None
        if lut.measure_unsure_ms is None and gap is None:
            return False
        from lookup_tables.unsure import measure_if_unsure

        own, measured = self.campaign.root / "lut.parquet", False
        for o in outcomes:
            records = measure_if_unsure(self.table, self.space, self.cost.prediction(o.candidate.arch), lut,
                                        threshold_ms=lut.measure_unsure_ms, gap_ms=gap, save_to=own)
            for r in records:
                self._emit("lut_measured_when_unsure", candidate=o.candidate.id, gap_ms=gap,
                           **{k: v for k, v in r.as_event().items() if k != "event"})
            if records:
                measured = True
                self.cost.forget()
                self.campaign.set_lut(own, replace=True)
        return measured

    def _measure_actions(self, outcomes: list[Outcome]) -> list[Outcome]:
        """Actions measured where the prediction cannot decide: a child whose predicted latency
        would change the strategy's decision by changing less than ``lut.measure_actions_ms``
        (the table's ΔLatency error per action, as ``hwnas lut validate`` states it) is timed on
        this process's device against its parent (interleaved with the backbone, stated at the
        table's speed: ``lookup_tables.paired``), and the strategy decides on the parent's
        predicted latency plus the measured ΔLatency. Each is an ``action_measured`` event."""
        error = self.experiment.lut.measure_actions_ms
        gaps = self.strategy.decision_gaps_ms(outcomes) if error is not None else {}
        close = {cid for cid, gap in gaps.items() if gap < error}
        if not close:
            return outcomes
        meter, out = self._action_meter(), []
        for o in outcomes:
            c = o.candidate
            if c.id not in close or c.parent is None:
                out.append(o)
                continue
            parent_ms = self.state.predict(c.parent).latency_ms
            p = meter.measure(c.arch, c.parent)
            self._emit("action_measured", candidate=c.id, action=c.action, gap_ms=gaps[c.id], error_ms=error,
                       predicted_ms=o.latency_ms - parent_ms, measured_ms=p.diff_ms, se_ms=p.diff_se_ms,
                       speed=p.speed, rounds=p.rounds)
            out.append(Outcome(c, o.result, Cost(parent_ms + p.diff_ms, o.memory_bytes)))
        meter.forget(keep=(self.space.empty,))
        return out

    def _action_meter(self):
        if self._meter is None:
            from lookup_tables.validate import table_meter

            lut = self.experiment.lut
            self._meter = table_meter(self.table, self.space, lut, rounds=lut.measure_actions_rounds,
                                      where=f"the campaign's device ({lut.backend} on {lut.device})")
        return self._meter

    def _save(self) -> None:
        self.campaign.save_state({"strategy": self.strategy.state_dict(), "rounds": self.rounds,
                                  "steps_used": self.steps_used, "rescored": self.rescored})

    def run_round(self, batch: list[Candidate]) -> None:
        camp = self.campaign
        results = {c.id: camp.load_result(c.id) for c in batch}
        todo = [c for c in batch if results[c.id] is None]
        self._emit("round_started", round=self.rounds, candidates=[c.to_dict() for c in batch],
                   cached=[c.id for c in batch if results[c.id] is not None],
                   cached_steps=sum(c.steps for c in batch if results[c.id] is not None))
        parents = {k: camp.weights(k) for k in {c.parent_weights for c in todo} if k is not None}
        by_id = {c.id: c for c in batch}
        jobs = [Job(c.id, c.arch, c.steps, c.seed, parents.get(c.parent_weights), task=c.task, options=c.task_options)
                for c in todo]
        for job, result in self.pool.evaluate(jobs):
            camp.save_result(by_id[job.key], result)
            results[job.key] = result
            self._emit("candidate", id=job.key, arch=str(job.arch), status=result.status, quality=result.quality,
                       reason=result.reason, steps=job.steps, seconds=result.seconds, wall_s=job.wall_s)
        outcomes = [Outcome(c, results[c.id], self.state.predict(c.arch)) for c in batch]
        if self._measure_unsure(outcomes):  # priced again from the measurements
            outcomes = [Outcome(c, results[c.id], self.state.predict(c.arch)) for c in batch]
        outcomes = self._measure_actions(outcomes)
        notes = self.strategy.update(outcomes)
        for o in outcomes:
            camp.record(self.space, o, notes.get(o.candidate.id, {}), self.rounds, self.budgets)
        self.rounds += 1
        self.steps_used += sum(c.steps for c in batch)
        self._save()
        camp.keep_only(self.strategy.weight_keys())
        self._emit("round_finished", round=self.rounds - 1, steps_used=self.steps_used,
                   round_steps=sum(c.steps for c in todo), round_candidate_seconds=sum(
                       (results[c.id].seconds or 0.0) for c in todo), done=self.strategy.done,
                   stop_reason=self.strategy.stop_reason, decision=self.strategy.last_decision())
