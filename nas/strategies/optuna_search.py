"""``optuna``: any Optuna sampler (NSGA-II, TPE, GP, ...) over an encoding of the architecture,
with the budgets as constraints, at the same training budget as the other strategies.

Encoding: the campaign's trial codec (``nas.trials``: one categorical per slot over its
states), so every proposal is a valid architecture of the space. Objectives: quality ↑, latency ↓,
memory ↓; constraints ``[latency − budget, memory − budget]`` (feasible when ≤ 0).
To keep ``propose`` a pure function of the state, the sampler's study is rebuilt
in memory from the strategy's history at each proposal, with a sampler seeded from
(seed, number of evaluations); the campaign's own storage holds the real trials.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Mapping

import optuna
from optuna.study._constrained_optimization import _CONSTRAINTS_KEY
from optuna.trial import TrialState, create_trial

from core.errors import ConfigError
from nas.strategies.base import Candidate, Outcome, SearchState, Strategy, register_strategy
from nas.trials import DIRECTIONS, decode, distributions

SAMPLERS = {"nsga2": optuna.samplers.NSGAIISampler, "tpe": optuna.samplers.TPESampler,
            "random": optuna.samplers.RandomSampler, "qmc": optuna.samplers.QMCSampler,
            "gp": optuna.samplers.GPSampler}
# Defaults sized for campaigns of tens of candidates (Optuna's own are for hundreds).
# GPSampler (multi-objective LogEHVI; the budgets' constraints from each trial) is what Optuna
# recommends for 10-100 trials: a few random trials to fit the first GP on.
STUCK_AFTER = {"gp": 10}  # max_repeats by sampler
SAMPLER_DEFAULTS = {"nsga2": {"population_size": 8}, "tpe": {"n_startup_trials": 5, "multivariate": True},
                    "gp": {"n_startup_trials": 5}}


@dataclass(frozen=True)
class OptunaOptions:
    sampler: Literal["nsga2", "tpe", "random", "qmc", "gp"] = "nsga2"
    sampler_options: dict[str, Any] = field(default_factory=dict)  # keyword arguments of the sampler
    batch: int = 2  # candidates per proposal
    # proposals outside the budgets (or pruned away) are told to the sampler as failures
    # without training, so the training budget goes to feasible candidates
    skip_infeasible: bool = True
    max_asks: int = 200
    # a sampler that asks for the same rejected architecture this many times in a row is stuck
    # and the search stops there; None: the sampler's default in STUCK_AFTER, else max_asks.
    # GPSampler's acquisition is deterministic given its fit, which a rejected ask leaves as it
    # was, so it asks again for the same point, refitting each time; TPE's draws are random and
    # find a new architecture after runs of repeats, so they get the whole max_asks
    max_repeats: int | None = None

    def __post_init__(self):
        if self.batch < 1 or self.max_asks < 1 or (self.max_repeats is not None and self.max_repeats < 1):
            raise ValueError("batch, max_asks and max_repeats must be at least 1")


@register_strategy("optuna")
class OptunaSearch(Strategy):
    Options = OptunaOptions

    def __init__(self, options, seed, steps):
        super().__init__(options, seed, steps)
        kwargs = {**SAMPLER_DEFAULTS.get(self.options.sampler, {}), **self.options.sampler_options}
        try:
            SAMPLERS[self.options.sampler](seed=0, **kwargs)
        except TypeError as exc:
            raise ConfigError(f"search.options.sampler_options: {exc}") from None
        self.sampler_kwargs = kwargs
        self.history: list[dict] = []  # {"arch", "params", "values", "constraints", "system_attrs"}
        self.pending: dict[str, dict] = {}

    def _study(self, dists) -> optuna.Study:
        sampler = SAMPLERS[self.options.sampler](seed=self.seed * 7919 + len(self.history), **self.sampler_kwargs)
        study = optuna.create_study(directions=DIRECTIONS, sampler=sampler)
        for h in self.history:
            study.add_trial(create_trial(
                params=h["params"], distributions=dists,
                values=h["values"], state=TrialState.COMPLETE if h["values"] else TrialState.FAIL,
                system_attrs={**h["system_attrs"], **{f"{_CONSTRAINTS_KEY}:{k}": v
                                                      for k, v in zip(("latency", "memory"), h["constraints"])}}))
        return study

    def propose(self, state: SearchState) -> list[Candidate]:
        if self.done:
            return []
        n = state.affordable(self.options.batch, self.steps)
        if n == 0:
            self._finish("training budget spent")
            return []
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        dists = distributions(state.space)
        study = self._study(dists)
        seen = {h["arch"] for h in self.history}
        out, self.pending = [], {}
        last, repeats = None, 0
        stuck = self.options.max_repeats or STUCK_AFTER.get(self.options.sampler, self.options.max_asks)
        for _ in range(self.options.max_asks):
            if len(out) == n or repeats >= stuck:
                break
            trial = study.ask(dists)
            arch = decode(trial.params)
            cost = state.predict(arch)
            b = state.budgets
            cons = [cost.latency_ms - b.latency_ms_per_step if b.latency_ms_per_step is not None else 0.0,
                    cost.memory_bytes - b.memory_bytes if b.memory_bytes is not None else 0.0]
            if str(arch) in seen or (self.options.skip_infeasible and not state.fits(arch)):
                study.tell(trial, state=TrialState.FAIL)
                repeats = repeats + 1 if str(arch) == last else 1
                last = str(arch)
                continue
            last, repeats = None, 0
            seen.add(str(arch))
            cid = f"t{len(self.history) + len(out)}"
            sysattrs = {k: v for k, v in study._storage.get_trial_system_attrs(trial._trial_id).items()
                        if not k.startswith(_CONSTRAINTS_KEY)}
            self.pending[cid] = {"arch": str(arch), "params": dict(trial.params), "constraints": cons,
                                 "system_attrs": sysattrs}
            out.append(Candidate(cid, arch, self.steps, self.seed * 100003 + len(self.history) + len(out)))
        if not out and repeats >= stuck:
            why = "already evaluated" if last in seen else "outside the budgets"
            self._finish(f"the sampler is stuck: it asked for {last} ({why}) {repeats} times in a row")
        elif not out:
            self._finish(f"the sampler proposed no new architecture within the budgets in {self.options.max_asks} asks")
        return out

    def update(self, outcomes: list[Outcome]) -> dict[str, dict]:
        for o in outcomes:
            record = self.pending.pop(o.candidate.id)
            record["values"] = [o.quality, o.latency_ms, o.memory_bytes] if o.ok else None
            self.history.append(record)
        return {}

    def state_dict(self) -> dict:
        return {"history": list(self.history), "pending": dict(self.pending), "done": self.done,
                "stop_reason": self.stop_reason}

    def load_state_dict(self, state: Mapping) -> None:
        self.history, self.pending = list(state["history"]), dict(state["pending"])
        self.done, self.stop_reason = state["done"], state["stop_reason"]
