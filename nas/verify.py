"""Is the search's quality the real one? (``hwnas pareto verify``, issue 10 item 4)

The search ranks architectures by a cheap quality (a few dozen training steps from the
current model's weights). This module long-trains a chosen few under the ground-truth
protocol of the experiment's ``verify`` section (:class:`nas.config.VerifyConfig`): one run
per architecture from the frozen backbone with identity temporal layers, then the strong
evaluator (``prompt_suite`` by default: sampled videos, motion accuracy as the verified
quality). It then measures how well the search's order agrees with the verified one:
Spearman and Kendall, and the pairs the search ordered wrongly.

One training run is itself a noisy ground truth: with ``seeds`` = n (``verify.seeds``,
``--seeds``) each architecture trains under seeds s, s+1, ..., s+n-1; its verified quality is
the mean, and the standard error that decides which wrong pairs the ground truth can
order at all is the pooled spread between seeds (over every verified architecture) over
sqrt(n). With one seed it is the binomial error of the sampled share.

The architectures (:func:`choose`): the front's best ``top`` by search quality, and dominated
ones spread over the quality range for contrast. Each is one job on the campaign's own
worker pool (``nas.engine.make_pool``: in-process or Ray, as the search ran), every one with
the same seeds, so the verified numbers are a function of the config and the seeds.

Storage, crash safety: each finished (architecture, seed) is written at once to the
record of that seed's protocol, ``DIR/verify/<evaluator>-<protocol sha256[:12]>.json`` (temp
file + ``os.replace``; the seed is part of the hash), and once every seed of an architecture
is in, in one transaction, to every finished trial of that architecture as user attributes
``verified.<evaluator>.quality`` (the verified quality, mean over seeds), ``.quality_key``
(which breakdown entry that is), ``.score`` (the evaluator's own quality), ``.breakdown``
(means over seeds), ``.protocol`` (the first seed's protocol sha256), ``.steps``, ``.seed``
(the first), ``.seeds``, ``.qualities`` (one per seed), ``.train_loss``, ``.seconds``. A rerun
under the same protocol (same hash of every setting that changes the numbers) skips what the
records hold, so adding a seed trains only that seed; one killed mid-run loses only the runs
still training.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from core.config import to_dict
from core.errors import ConfigError
from core.io import atomic_json
from nas.campaign import Campaign
from nas.config import Experiment
from nas.pareto import VERIFIED, Front

# The breakdown entry that is "the" verified quality, per evaluator; others: its quality.
# prompt_suite's quality averages colour, object, motion and flicker, which a frozen image
# backbone already gets mostly right; motion is what temporal layers are for.
DEFAULT_QUALITY_KEYS = {"prompt_suite": "motion"}
OWN_QUALITY = "quality"  # quality_key meaning the evaluator's own quality


@dataclass(frozen=True)
class Protocol:
    """The ground-truth protocol resolved against one campaign's experiment: ``experiment``
    is the campaign's with the ``train``, ``evaluator`` and per-job timeout of the protocol,
    so the campaign's pool builds runners for it unchanged."""

    experiment: Experiment
    steps: int
    seed: int
    quality_key: str

    @property
    def evaluator(self) -> str:
        return self.experiment.evaluator.name

    def settings(self) -> dict:
        """Everything that changes the verified numbers (not threads, timeouts or the choice)."""
        e = self.experiment
        train = {k: v for k, v in to_dict(e.train).items() if k != "threads"}
        return {"space": to_dict(e.space), "data": to_dict(e.data), "train": train,
                "evaluator": to_dict(e.evaluator), "backbone_seed": e.seed, "steps": self.steps,
                "seed": self.seed, "quality_key": self.quality_key}

    @property
    def sha256(self) -> str:
        return hashlib.sha256(json.dumps(self.settings(), sort_keys=True, default=str).encode()).hexdigest()

    def summary(self) -> dict:
        """The protocol's own knobs, for reports."""
        t, ev = self.experiment.train, self.experiment.evaluator
        return {"sha256": self.sha256, "steps": self.steps, "batch": t.batch, "lr": t.lr, "logit_mean": t.logit_mean,
                "logit_std": t.logit_std, "evaluator": ev.name, "quality_key": self.quality_key,
                "options": to_dict(ev.options), "seed": self.seed, "device": t.device}


def protocol(experiment: Experiment, steps: int | None = None, evaluator: str | None = None) -> Protocol:
    """The experiment's ``verify`` protocol, with ``steps`` / ``evaluator`` overridden."""
    from evaluators.pretrain import t_mean, t_std
    from evaluators.scores import EVALUATORS

    v = experiment.verify
    steps = v.steps if steps is None else steps
    if steps < 1:
        raise ConfigError(f"--steps {steps}: must be at least 1")
    name = v.evaluator if evaluator is None else evaluator
    if name not in EVALUATORS:
        raise ConfigError(f"--evaluator {name!r}: unknown evaluator; allowed: {', '.join(EVALUATORS.names())}")
    # the search's pre-trained backbone (its cache key), whatever t the protocol trains at
    pre = experiment.train.pretrain
    pre = dataclasses.replace(pre, logit_mean=t_mean(pre, experiment.train), logit_std=t_std(pre, experiment.train))
    train = dataclasses.replace(experiment.train, steps=steps, batch=v.batch, lr=v.lr, logit_mean=v.logit_mean,
                                logit_std=v.logit_std, pretrain=pre)
    try:
        ev = experiment.evaluator.switch(name, **(dict(v.options) if name == v.evaluator else {}))
    except ValueError as exc:
        raise ConfigError(f"verify.evaluator {name}: {exc}") from None
    key = v.quality_key if (v.quality_key and name == v.evaluator) else DEFAULT_QUALITY_KEYS.get(name, OWN_QUALITY)
    search = dataclasses.replace(experiment.search, timeout_s=v.timeout_s)
    exp = dataclasses.replace(experiment, train=train, evaluator=ev, search=search)
    return Protocol(exp, steps, experiment.seed if v.seed is None else v.seed, key)


def seeded(proto: Protocol, seeds: int) -> list[Protocol]:
    """``proto`` under ``seeds`` training seeds: its own seed, then the next ones."""
    if seeds < 1:
        raise ConfigError(f"--seeds {seeds}: must be at least 1")
    return [dataclasses.replace(proto, seed=proto.seed + i) for i in range(seeds)]


# Which architectures ---------------------------------------------------------------------
@dataclass(frozen=True)
class Choice:
    arch: str
    search_quality: float  # its best over the campaign's trials (as the front counts it)
    on_front: bool
    latency_ms: float
    memory_bytes: float


def spread(items: list, k: int) -> list:
    """``k`` of ``items`` (sorted) at evenly spaced ranks, both ends included (k = 1: the first)."""
    if k >= len(items):
        return list(items)
    if k <= 0:
        return []
    if k == 1:
        return [items[0]]
    step = (len(items) - 1) / (k - 1)
    return [items[round(i * step)] for i in range(k)]


def choose(front: Front, top: int, contrast: int, minimum: int = 0) -> list[Choice]:
    """The front's ``top`` best by search quality, then dominated architectures spread over
    their quality range (worst and best included): ``contrast`` of them, more when needed
    for ``minimum`` in all, as many as the campaign has. Best search quality first."""
    if top < 1:
        raise ConfigError(f"--top {top}: must be at least 1")
    if contrast < 0:
        raise ConfigError(f"--contrast {contrast}: must be non-negative")
    best: dict = {}
    for p in front.evaluated:
        if p.arch not in best or p.quality > best[p.arch].quality:
            best[p.arch] = p
    on_front = sorted(front.points, key=lambda p: -p.quality)[:top]
    front_archs = {p.arch for p in front.points}
    dominated = sorted((p for a, p in best.items() if a not in front_archs), key=lambda p: p.quality)
    picked = on_front + spread(dominated, max(contrast, minimum - len(on_front)))
    return sorted((Choice(p.arch, p.quality, p.arch in front_archs, p.latency_ms, p.memory_bytes) for p in picked),
                  key=lambda c: -c.search_quality)


# How well the orders agree ---------------------------------------------------------------
def rank_agreement(archs: list[str], search: list[float], verified: list[float],
                   verified_se: list[float] | None = None) -> dict:
    """Spearman and Kendall (tau-b) between two qualities of the same architectures, and the
    pairs ordered wrongly: ``[A, B]`` when the search put A strictly above B and the verified
    quality puts B strictly above A (ties in either are not counted wrong), in the search's
    order. A coefficient is None below 3 architectures or when either quality is constant.
    With ``verified_se`` (each verified quality's standard error), ``misordered_beyond_noise``
    keeps the wrong pairs whose verified difference exceeds twice its standard error: the
    others the ground truth itself cannot order."""
    from scipy.stats import kendalltau, spearmanr

    n = len(archs)
    if not n == len(search) == len(verified):
        raise ValueError("one search and one verified quality per architecture")
    order = sorted(range(n), key=lambda i: -search[i])
    misordered = [[archs[i], archs[j]] for a, i in enumerate(order) for j in order[a + 1:]
                  if search[i] > search[j] and verified[i] < verified[j]]
    spearman = kendall = None
    if n >= 3 and len(set(search)) > 1 and len(set(verified)) > 1:
        spearman = float(spearmanr(search, verified).statistic)
        kendall = float(kendalltau(search, verified).statistic)
    out = {"n": n, "spearman": _finite(spearman), "kendall": _finite(kendall), "misordered": misordered,
           "pairs": n * (n - 1) // 2}
    if verified_se is not None:
        se = dict(zip(archs, verified_se))
        v = dict(zip(archs, verified))
        out["misordered_beyond_noise"] = [[a, b] for a, b in misordered
                                          if v[b] - v[a] > 2 * math.hypot(se[a], se[b])]
    return out


def noise_note(agreement: dict, pair: list[str]) -> str:
    """What a wrong pair of ``rank_agreement`` says about the verified noise ("" when the
    verified qualities came without standard errors)."""
    beyond = agreement.get("misordered_beyond_noise")
    if beyond is None:
        return ""
    return " (beyond the verified noise)" if pair in beyond else " (within twice the verified standard error)"


def proportion_se(proto: Protocol, quality: float) -> float | None:
    """Standard error of a verified quality that is a share of sampled prompts (prompt_suite's
    colour, object and motion accuracies over its held-out captions); None for other qualities."""
    ev = proto.experiment.evaluator
    if ev.name != "prompt_suite" or proto.quality_key not in ("colour", "object", "motion"):
        return None
    n = min(ev.options.prompts, proto.experiment.data.val_videos)
    return math.sqrt(max(quality * (1 - quality), 0.0) / n)


def pooled_seed_se(per_seed: list[list[float]]) -> list[float] | None:
    """Standard error of each architecture's mean over its seeds, from the spread between
    seeds pooled over all architectures (every list one architecture's per-seed qualities);
    None without two seeds of some architecture."""
    dof = sum(len(q) - 1 for q in per_seed)
    if dof < 1:
        return None
    ss = sum(sum((x - sum(q) / len(q)) ** 2 for x in q) for q in per_seed)
    sd = math.sqrt(ss / dof)
    return [sd / math.sqrt(len(q)) for q in per_seed]


def _mean(values: list):
    return sum(values) / len(values) if values and all(isinstance(v, (int, float)) for v in values) else values[0]


def merged(entries: list[dict]) -> dict:
    """One architecture's finished runs (one per seed) as one result: means of the numbers."""
    keys = [k for k in entries[0]["breakdown"] if all(k in e["breakdown"] for e in entries)]
    return {"arch": entries[0]["arch"], "status": "ok",
            "verified_quality": _mean([e["verified_quality"] for e in entries]),
            "qualities": [e["verified_quality"] for e in entries],
            "score": _mean([e["score"] for e in entries]),
            "breakdown": {k: _mean([e["breakdown"][k] for e in entries]) for k in keys},
            "train_loss": _mean([e["train_loss"] for e in entries]), "steps": entries[0]["steps"],
            "seconds": sum(e["seconds"] for e in entries)}


def _finite(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None


# The run ---------------------------------------------------------------------------------
class Record:
    """``DIR/verify/<evaluator>-<sha12>.json``: the protocol and each architecture's result,
    rewritten atomically after each one."""

    def __init__(self, campaign: Campaign, proto: Protocol):
        self.path = campaign.root / "verify" / f"{proto.evaluator}-{proto.sha256[:12]}.json"
        self.proto = proto
        self.results: dict[str, dict] = {}
        if self.path.is_file():
            try:
                data = json.loads(self.path.read_text())
            except json.JSONDecodeError:  # cannot be torn (os.replace); a foreign file: start afresh
                data = {}
            if data.get("protocol", {}).get("sha256") == proto.sha256:
                self.results = data.get("results", {})

    def done(self, arch: str) -> bool:
        return self.results.get(arch, {}).get("status") == "ok"

    def save(self, entry: dict) -> None:
        self.results[entry["arch"]] = entry
        atomic_json(self.path, {"protocol": self.proto.summary(), "settings": self.proto.settings(),
                                "results": self.results})


def trial_attrs(protos: list[Protocol], entries: list[dict]) -> dict:
    """The trial attributes of one architecture verified under every protocol of ``protos``
    (one entry per seed, in order)."""
    proto, m = protos[0], merged(entries)
    prefix = f"{VERIFIED}{proto.evaluator}."
    fields = {"quality": m["verified_quality"], "quality_key": proto.quality_key, "score": m["score"],
              "breakdown": m["breakdown"], "protocol": proto.sha256, "steps": m["steps"],
              "seed": proto.seed, "seeds": [p.seed for p in protos], "qualities": m["qualities"],
              "train_loss": m["train_loss"], "seconds": m["seconds"]}
    return {prefix + k: v for k, v in fields.items()}


def _entry(proto: Protocol, arch: str, result, wall_s: float) -> dict:
    if result.status == "ok":
        key = proto.quality_key
        value = result.quality if key == OWN_QUALITY else result.breakdown.get(key)
        if value is not None:
            return {"arch": arch, "seed": proto.seed, "status": "ok", "verified_quality": float(value),
                    "score": result.quality, "breakdown": dict(result.breakdown), "train_loss": result.train_loss,
                    "steps": result.steps, "seconds": result.seconds, "wall_s": wall_s}
        reason = (f"verify.quality_key {key!r} is not in the {proto.evaluator} breakdown (it has "
                  f"{', '.join(sorted(result.breakdown)) or 'none'}, or {OWN_QUALITY!r})")
    else:
        reason = result.reason
    return {"arch": arch, "seed": proto.seed, "status": "failed", "reason": reason, "wall_s": wall_s}


def verify(campaign: Campaign, proto: Protocol, choices: list[Choice], ray_address: str | None = None,
           pool=None, on_result: Callable[[dict], None] | None = None, pretrain_progress=None,
           seeds: int = 1) -> dict:
    """Long-train and score every choice not yet verified under ``proto`` and each of its
    ``seeds`` (one job each on ``pool``, else the campaign's own pool, started and closed
    here), store the results, and return the report (:func:`report`). ``on_result(entry)``
    sees each finished run."""
    from nas.engine import make_pool
    from nas.workers import Job
    from search_spaces.space import SearchSpace

    protos = seeded(proto, seeds)
    records = [Record(campaign, p) for p in protos]

    def complete(arch: str) -> bool:
        return all(r.done(arch) for r in records)

    def annotate(arch: str) -> None:
        campaign.annotate(arch, trial_attrs(protos, [r.results[arch] for r in records]))

    cached = {c.arch for c in choices if complete(c.arch)}
    for arch in cached:  # a kill between the records and the trials: the trials catch up
        annotate(arch)
    todo = [(c, i) for i, r in enumerate(records) for c in choices if not r.done(c.arch)]
    if todo:
        space = SearchSpace(proto.experiment.space)
        runs = {f"{c.arch}|{protos[i].seed}": (c.arch, i) for c, i in todo}
        jobs = [Job(key, space.parse(arch), proto.steps, protos[i].seed) for key, (arch, i) in runs.items()]
        own = pool is None
        pool = pool or make_pool(proto.experiment, str(campaign.workdir()), ray_address)
        pool.make_runner().prepare(pretrain_progress)  # data, backbone, evaluator once; fails fast
        campaign.event("verify_started", protocol=proto.sha256, evaluator=proto.evaluator,
                       archs=sorted({c.arch for c, _ in todo}), seeds=[p.seed for p in protos], steps=proto.steps)
        if own:
            pool.start()
        try:
            for job, result in pool.evaluate(jobs):
                arch, i = runs[job.key]
                entry = _entry(protos[i], arch, result, job.wall_s)
                records[i].save(entry)
                if entry["status"] == "ok" and complete(arch):
                    annotate(arch)
                campaign.event("verified", protocol=protos[i].sha256, **{k: v for k, v in entry.items()
                                                                         if k != "breakdown"})
                if on_result is not None:
                    on_result(entry)
        finally:
            if own:
                pool.close()
    return report(campaign, protos, choices, records, cached=cached)


def report(campaign: Campaign, protos: list[Protocol], choices: list[Choice], records: list[Record],
           cached: set[str] = frozenset()) -> dict:
    """The ``pareto verify`` document: one point per choice (best search quality first; its
    verified numbers the means over the seeds), the rank agreement over the verified ones,
    and the failed ones."""
    proto = protos[0]
    points = []
    for c in choices:
        runs = [r.results.get(c.arch, {"status": "missing"}) for r in records]
        bad = next((r for r in runs if r["status"] != "ok"), None)
        m = merged(runs) if bad is None else {}
        points.append({"arch": c.arch, "search_quality": c.search_quality,
                       "verified_quality": m.get("verified_quality"), "verified_seeds": m.get("qualities"),
                       "on_front": c.on_front, "latency_ms": c.latency_ms, "memory_bytes": c.memory_bytes,
                       "status": "ok" if bad is None else bad["status"],
                       "reason": None if bad is None else bad.get("reason"), "score": m.get("score"),
                       "breakdown": m.get("breakdown", {}), "train_loss": m.get("train_loss"),
                       "seconds": m.get("seconds"), "cached": c.arch in cached})
    ok = [p for p in points if p["status"] == "ok"]
    if len(protos) > 1:
        ses, se_kind = pooled_seed_se([p["verified_seeds"] for p in ok]), "seeds"
    else:
        ses, se_kind = [proportion_se(proto, p["verified_quality"]) for p in ok], "binomial"
    if not ok or ses is None or any(x is None for x in ses):
        ses, se_kind = None, None
    agreement = rank_agreement([p["arch"] for p in ok], [p["search_quality"] for p in ok],
                               [p["verified_quality"] for p in ok], ses)
    for p, se in zip(ok, ses or [None] * len(ok)):
        p["verified_se"] = se
    return {"campaign": str(campaign.root), "evaluator": proto.evaluator, "quality_key": proto.quality_key,
            "protocol": {**proto.summary(), "seeds": [p.seed for p in protos]}, "verified_se": se_kind,
            "record": str(records[0].path), "records": [str(r.path) for r in records], "points": points,
            **agreement, "failed": [{"arch": p["arch"], "reason": p["reason"]} for p in points if p["status"] != "ok"]}


def run_verify(directory: str | Path, steps: int | None = None, evaluator: str | None = None, top: int | None = None,
               contrast: int | None = None, ray_address: str | None = None, pool=None,
               on_result: Callable[[dict], None] | None = None, pretrain_progress=None,
               seeds: int | None = None) -> dict:
    """``hwnas pareto verify`` as a library call: the campaign in ``directory``, its ``verify``
    section with the given overrides. The search's quality is the campaign's final front's:
    the re-scored one (``nas.rescore``) once that stage is complete, else the brief trials'
    (``search_stage`` says which, and after how many training steps; ``brief_trials`` is then
    the agreement the same architectures' brief-training qualities have)."""
    campaign = Campaign.open(directory)
    front = campaign.front()
    if not front.evaluated:
        raise ConfigError(f"{directory}: no candidate has finished yet; nothing to verify")
    exp = campaign.experiment()
    proto = protocol(exp, steps, evaluator)
    v = exp.verify
    choices = choose(front, v.top if top is None else top, v.contrast if contrast is None else contrast,
                     v.min_architectures)
    out = verify(campaign, proto, choices, ray_address or exp.search.ray_address, pool, on_result, pretrain_progress,
                 v.seeds if seeds is None else seeds)
    # whose quality the search's is: the final stage's (rescore) once complete, else the brief trials'
    rescored = campaign.rescored()
    out["search_stage"] = {"stage": "rescore" if rescored else "search",
                           "steps": exp.rescore.steps if rescored else exp.candidate_steps}
    if rescored:  # what the final stage changed: the same architectures by their best brief trial
        brief: dict[str, float] = {}
        for p in campaign.points("search"):
            brief[p.arch] = max(p.quality, brief.get(p.arch, p.quality))
        ok = [p for p in out["points"] if p["status"] == "ok" and p["arch"] in brief]
        agree = rank_agreement([p["arch"] for p in ok], [brief[p["arch"]] for p in ok],
                               [p["verified_quality"] for p in ok])
        out["brief_trials"] = {"steps": exp.candidate_steps, "qualities": {p["arch"]: brief[p["arch"]] for p in ok},
                               **{k: agree[k] for k in ("n", "spearman", "kendall", "misordered", "pairs")}}
    return out
