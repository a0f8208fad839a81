"""The tabulated benchmark: every architecture of a small space trained and scored once
under one fixed protocol (``experiments/benchmarks/build_tabular.py`` builds it), and a
:class:`TabularPool` that answers candidates from it, so any strategy runs against it in
seconds (NAS-Bench-201 / HW-NAS-Bench style).

The table holds, per (architecture, seed): the quality after K steps and at the lower
fidelities K/4 and K/2 of the same run (scored along the way, the training unchanged), the
loss, the training time, and the lookup table's latency and memory. A job is answered
with the row of seed ``job.seed mod (number of seeds)`` (so repeated evaluations of one
architecture differ by the seed noise the protocol measured) at the fidelity nearest
its steps; ``seconds`` is the measured training+scoring time, prorated by steps, so
candidate-seconds stay comparable. Every start is the same backbone: weights a live
strategy would inherit (``parent_state``) play no part here -- the table is the fixed
protocol by which strategies are compared, not a replay of their own training histories.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

from core.errors import HwnasError
from core.io import read_parquet
from evaluators.runner import CandidateResult, CandidateRunner
from evaluators.training import temporal_state, train_temporal
from nas.pareto import Point, pareto_front
from nas.workers import Job, WorkerPool
from search_spaces.architecture import Architecture


class TabularError(HwnasError):
    """A tabulated benchmark that cannot answer (an architecture it does not hold)."""


def fidelities(steps: int) -> list[int]:
    """K/4, K/2, K (distinct, positive)."""
    return sorted({max(1, steps // 4), max(1, steps // 2), steps})


# Building the table: one run per (architecture, seed), scored at each fidelity ---------------

def train_scored(model, data, steps: int, config, seed: int, device, at: list[int], score) -> dict[int, float]:
    """``evaluators.training.train_temporal`` (the search's own loop: the same draws,
    optimiser, per-operator learning rates and noise), calling ``score(model)`` after each
    step count in ``at``; scoring draws nothing from the run's generator, so the quality at
    ``steps`` equals an ordinary run's. Nothing to train: one score for every count."""
    out: dict[int, float] = {}

    def after_step(n: int) -> None:
        if n in at:
            model.eval()
            out[n] = score(model)
            model.temporal.train()

    train_temporal(model, data, steps, config, seed, device, after_step=after_step)
    model.eval()
    if not out:  # the backbone alone, or no steps
        q = score(model)
        out = {k: q for k in at}
    return out


class FidelityRunner(CandidateRunner):
    """A ``CandidateRunner`` whose result also carries ``quality@k`` for k in K/4, K/2, K."""

    def run(self, arch, parent_state=None, steps=None, seed=None) -> CandidateResult:
        start = time.perf_counter()
        steps = self.train_config.steps if steps is None else steps
        seed = self.seed if seed is None else seed
        try:
            self.prepare()
            arch = self.space.parse(arch) if isinstance(arch, str) else arch
            with self._threads():
                model = self.build(arch, parent_state, seed)
                scores = {}

                def score(m):
                    s = self.evaluator.score(m)
                    scores[len(scores)] = s
                    return s.quality

                qs = train_scored(model, self.dataset, steps, self.train_config, seed, self.device,
                                  fidelities(steps), score)
            final = scores[len(scores) - 1]
            breakdown = dict(final.breakdown) | {f"quality@{k}": float(v) for k, v in qs.items()}
            return CandidateResult(str(arch), "ok", None, float(final.quality), breakdown, temporal_state(model),
                                   None, steps, time.perf_counter() - start)
        except Exception as exc:  # noqa: BLE001 - a row fails, the build goes on
            return CandidateResult(str(arch), "failed", f"{type(exc).__name__}: {exc}"[:200], None, {}, {}, None, 0,
                                   time.perf_counter() - start)


@dataclass(frozen=True)
class FidelitySpec:
    """Picklable recipe for a FidelityRunner (one per Ray actor)."""

    experiment: object
    workdir: str

    def __call__(self):
        e = self.experiment
        return FidelityRunner(e.space, e.data, e.train, e.evaluator, self.workdir, e.seed)


# Reading it ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Row:
    arch: str
    seed: int
    quality: dict[int, float]  # steps -> quality
    seconds: float
    steps: int
    latency_ms: float
    memory_bytes: float


class TabularBenchmark:
    """The table: ``quality(arch, seed, steps)``, latency and memory per architecture, and
    the true Pareto set (of the seed-mean quality at K) for a campaign's budgets."""

    def __init__(self, rows: list[Row], name: str = "table"):
        if not rows:
            raise TabularError(f"tabulated benchmark {name}: no rows")
        self.name = name
        self.by_arch: dict[str, list[Row]] = {}
        for r in sorted(rows, key=lambda r: (r.arch, r.seed)):
            self.by_arch.setdefault(r.arch, []).append(r)
        self.steps = rows[0].steps

    @classmethod
    def load(cls, path: str | Path) -> TabularBenchmark:
        path = Path(path)
        df = read_parquet(path).to_pandas()
        rows = []
        for rec in df.to_dict("records"):
            if rec["status"] != "ok":
                continue
            q = {int(k.split("@")[1]): float(v) for k, v in rec.items() if k.startswith("quality@") and not math.isnan(v)}
            q[int(rec["steps"])] = float(rec["quality"])
            rows.append(Row(rec["arch"], int(rec["seed"]), q, float(rec["seconds"]), int(rec["steps"]),
                            float(rec["latency_ms"]), float(rec["memory_bytes"])))
        return cls(rows, path.name)

    def __contains__(self, arch) -> bool:
        return str(arch) in self.by_arch

    def __len__(self) -> int:
        return len(self.by_arch)

    def rows(self, arch) -> list[Row]:
        try:
            return self.by_arch[str(arch)]
        except KeyError:
            raise TabularError(f"tabulated benchmark {self.name} holds no architecture {str(arch) or 'empty'!r} "
                               f"({len(self)} architectures tabulated)") from None

    def row(self, arch, seed: int) -> Row:
        rows = self.rows(arch)
        return rows[seed % len(rows)]

    def quality(self, arch, seed: int | None = None, steps: int | None = None) -> float:
        """One seed's quality (``seed`` mod seeds) at the tabulated fidelity nearest ``steps``
        (default K); ``seed=None``: the mean over seeds."""
        rows = self.rows(arch) if seed is None else [self.row(arch, seed)]
        steps = self.steps if steps is None else steps
        vals = []
        for r in rows:
            k = min(r.quality, key=lambda f: (abs(f - steps), -f))
            vals.append(r.quality[k])
        return sum(vals) / len(vals)

    def cost(self, arch) -> tuple[float, float]:
        r = self.rows(arch)[0]
        return r.latency_ms, r.memory_bytes

    def points(self) -> list[Point]:
        return [Point(a, self.quality(a), *self.cost(a)) for a in self.by_arch]

    def true_front(self, budgets) -> list[Point]:
        """The Pareto set (seed-mean quality at K) of the architectures within the budgets."""
        return pareto_front([p for p in self.points() if not budgets.violations(p.latency_ms, p.memory_bytes)])

    def predict(self, arch):
        from nas.strategies import Cost

        return Cost(*self.cost(arch))


class _NoRunner:
    def prepare(self, progress=None):
        return {}


class TabularPool(WorkerPool):
    """A WorkerPool answering from the table; no training, no weights (``state`` empty).

    A training job reads the row of seed ``options["run_seed"]`` (a run continued over
    several jobs, as successive halving does) or ``job.seed``, at the fidelity
    ``options["total_steps"]`` (its cumulative training) or ``job.steps``. A MobileVD
    supernet segment (``task="supernet"``) reads the importances a live supernet run
    recorded (``supernet``: {"n", "segment_steps", "runs": [[{block: importance}, ... per
    segment] per seed]}), its snapshot's quality from the table."""

    def __init__(self, table: TabularBenchmark, supernet: dict | None = None):
        super().__init__(_NoRunner)
        self.table, self.supernet = table, supernet
        self.jobs = 0

    def _importances(self, job: Job) -> dict:
        opts = job.options or {}
        sn = self.supernet
        seg = int(opts.get("segment", 0))
        if sn is None or sn["n"] != opts.get("n") or sn["segment_steps"] != job.steps:
            have = "none" if sn is None else f"n = {sn['n']}, {sn['segment_steps']} steps a segment"
            raise TabularError(f"tabulated benchmark {self.table.name} holds no supernet run for n = {opts.get('n')}, "
                               f"{job.steps} steps a segment (tabulated: {have})")
        run = sn["runs"][int(opts.get("run_seed", job.seed)) % len(sn["runs"])]
        if seg >= len(run):
            raise TabularError(f"tabulated benchmark {self.table.name}: the supernet run holds {len(run)} segments, "
                               f"not segment {seg}")
        return {f"importance/{k}": float(v) for k, v in run[seg].items()}

    def evaluate(self, jobs: list[Job]):
        for job in jobs:
            opts = job.options or {}
            seed = int(opts.get("run_seed", job.seed)) if job.task == "train" else job.seed
            row = self.table.row(job.arch, seed)  # raises TabularError naming the architecture
            q = self.table.quality(job.arch, seed, int(opts.get("total_steps", job.steps)))
            breakdown = {"tabular_steps": float(row.steps)}
            if job.task == "supernet":
                breakdown.update(self._importances(job))
            elif job.task != "train":
                raise TabularError(f"tabulated benchmark {self.table.name} cannot answer task {job.task!r}")
            seconds = row.seconds * job.steps / max(1, row.steps)
            job.wall_s = 0.0
            self.jobs += 1
            yield job, CandidateResult(str(job.arch), "ok", None, q, breakdown, {}, None, job.steps, seconds)


def drive(strategy, state, pool: WorkerPool, max_train_steps: int | None, max_rounds: int = 50):
    """The engine's loop without storage (propose, evaluate on the pool, update), for
    benchmarks over many seeds: returns the outcomes and the budget spent."""
    from nas.strategies import Outcome

    outcomes, used, rounds = [], 0, 0
    t0 = time.perf_counter()
    while not strategy.done and rounds < max_rounds:
        state.steps_left = None if max_train_steps is None else max_train_steps - used
        batch = strategy.propose(state)
        if not batch:
            break
        jobs = [Job(c.id, c.arch, c.steps, c.seed, None, task=c.task, options=c.task_options) for c in batch]
        results = {job.key: res for job, res in pool.evaluate(jobs)}
        outs = [Outcome(c, results[c.id], state.predict(c.arch)) for c in batch]
        strategy.update(outs)
        outcomes += outs
        used += sum(c.steps for c in batch)
        rounds += 1
    return outcomes, {"steps": used, "rounds": rounds, "candidates": len(outcomes),
                      "candidate_seconds": sum(o.seconds for o in outcomes), "wall_s": time.perf_counter() - t0,
                      "stop_reason": strategy.stop_reason}


def snapgen_step(table: TabularBenchmark, space, budgets, arch, seed: int, steps: int, halving: dict | None):
    """One evolution step of ``snapgen`` from ``arch`` on the table, with successive halving
    (these options) or without (None): the action chosen (None: converged), the training
    steps spent, the number of eligible actions, the rung it decided at (None without halving)."""
    from nas.strategies import SearchState, create_strategy

    s = create_strategy("snapgen", {"start": str(arch), "halving": halving is not None, **(halving or {})}, seed,
                        steps)
    state = SearchState(space, table.predict, budgets)
    spent = 0
    while not s.decisions and not s.done:  # round by round: a rung is a round
        _, budget = drive(s, state, TabularPool(table), None, max_rounds=1)
        if not budget["rounds"]:
            break
        spent += budget["steps"]
    d = s.decisions[0] if s.decisions else {}
    return d.get("action"), spent, sum(1 for v in s.eligible.values() if v), d.get("rung")


def architectures(table: TabularBenchmark) -> list[Architecture]:
    return [Architecture.parse(a) for a in table.by_arch]
