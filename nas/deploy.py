"""From a campaign's front to a trained model: choosing the architecture and the weights it
starts from.

``pick(campaign, "best" | "knee" | ARCH)``: ``best`` is the highest-quality point of the
front that meets the budgets (of every front point when none does); ``knee`` the front
point nearest the ideal corner once each objective is scaled to [0, 1] over the front
(quality 1, latency 0, memory 0), i.e. the best trade-off; an ARCH must have been evaluated
by the campaign. ``stored_weights`` finds the campaign's checkpoint of that architecture:
a campaign keeps the current model's weights (and a candidate's whose round is still open)
and those of every architecture its final stage (``rescore``) trained.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from core.errors import HwnasError
from nas.campaign import Campaign
from nas.pareto import Point

PICKS = ("best", "knee")


class PickError(HwnasError):
    """--pick of an architecture the campaign cannot give."""


@dataclass(frozen=True)
class Picked:
    arch: str
    point: Point
    rule: str  # best | knee | given


def knee(points: list[Point]) -> Point:
    def span(values):
        lo, hi = min(values), max(values)
        return lo, (hi - lo) or 1.0

    q0, qs = span([p.quality for p in points])
    l0, ls = span([p.latency_ms for p in points])
    m0, ms = span([p.memory_bytes for p in points])
    return min(points, key=lambda p: (math.dist((1.0, 0.0, 0.0), ((p.quality - q0) / qs, (p.latency_ms - l0) / ls,
                                                                    (p.memory_bytes - m0) / ms)), p.latency_ms))


def pick(campaign: Campaign, spec: str) -> Picked:
    front = campaign.front()
    if not front.evaluated:
        raise PickError(f"{campaign.root}: no candidate has finished yet, nothing to pick")
    budgets = campaign.experiment().budgets
    if spec == "best":
        feasible = [p for p in front.points if not budgets.violations(p.latency_ms, p.memory_bytes)]
        return Picked(max(feasible or front.points, key=lambda p: p.quality).arch,
                      max(feasible or front.points, key=lambda p: p.quality), "best")
    if spec == "knee":
        p = knee(list(front.points))
        return Picked(p.arch, p, "knee")
    space_arch = _canonical(campaign, spec)
    # the final front's evaluation, else (an architecture the final stage did not re-score) the search's
    seen = [p for p in front.evaluated if p.arch == space_arch] or \
        [p for p in campaign.points("search") if p.arch == space_arch]
    if not seen:
        front_archs = ", ".join(p.arch for p in front.points[:5])
        raise PickError(f"--pick {spec}: the campaign never evaluated this architecture; pick one of its "
                        f"{len(front.evaluated)} evaluated ones, 'best' or 'knee' (front: {front_archs})")
    return Picked(space_arch, max(seen, key=lambda p: p.quality), "given")


def _canonical(campaign: Campaign, spec: str) -> str:
    from search_spaces.space import SearchSpace

    return str(SearchSpace(campaign.experiment().space).parse(spec))


def stored_weights(campaign: Campaign, arch: str) -> tuple[dict, dict] | None:
    """(temporal weights, where they come from) of ``arch`` among the campaign's checkpoints,
    the best-quality one when several; None when the campaign kept none for it."""
    found = []
    for path in sorted(campaign.ckpt_dir.glob("*.pt")):
        result = campaign.load_result(path.stem)
        if result is None or not result.state or result.arch != arch:
            continue
        found.append((result.quality if result.quality is not None else -math.inf, path.stem, result))
    if not found:
        return None
    quality, cid, result = max(found, key=lambda f: f[0])
    return result.state, {"source": "campaign", "campaign": str(Path(campaign.root).resolve()), "candidate": cid,
                          "quality": result.quality, "steps": result.steps}


def workdir_of(campaign: Campaign) -> Path:
    """Where the campaign's runners keep the data and the pre-trained backbone."""
    exp = campaign.experiment()
    return Path(exp.search.workdir) if exp.search.workdir else campaign.root / "work"


def campaign_plan(campaign: Campaign, spec: str) -> dict:
    """Everything ``hwnas train CAMPAIGN --pick SPEC`` needs, before any training."""
    picked = pick(campaign, spec)
    stored = stored_weights(campaign, picked.arch)
    state, info = stored if stored else (None, {"source": "identity",
                                                "note": "the campaign kept no weights for this architecture "
                                                        "(it keeps the current model's and the final stage's): "
                                                        "temporal layers start as the identity"})
    info = {**info, "rule": picked.rule, "search_quality": picked.point.quality,
            "latency_ms": picked.point.latency_ms, "memory_bytes": picked.point.memory_bytes}
    return {"experiment": campaign.experiment().to_dict(), "arch": picked.arch, "init_state": state,
            "init_info": info, "workdir": workdir_of(campaign)}

