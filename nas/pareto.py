"""Pareto fronts over every evaluated candidate: quality ↑, latency ↓, memory ↓.

The hypervolume is the volume dominated by the front inside the box bounded by a
reference point (the worst quality, largest latency and largest memory that still
count). It is computed exactly here: points are swept in order of latency and, for each
slab of latency, the 2-D area (quality gain × memory saving) of the points seen so far.
O(n² log n), ample for the few hundred candidates of a campaign.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Sequence

from core.budgets import Budgets

VERIFIED = "verified."  # trial attributes verified.<evaluator>.<field>, written by nas.verify


def verified_scores(attrs: dict) -> dict[str, dict]:
    """A trial's verified scores, ``{evaluator: {field: value}}``, from its user attributes."""
    out: dict[str, dict] = {}
    for key, value in attrs.items():
        if key.startswith(VERIFIED) and key.count(".") >= 2:
            evaluator, field_name = key[len(VERIFIED):].split(".", 1)
            out.setdefault(evaluator, {})[field_name] = value
    return out


@dataclass(frozen=True)
class Point:
    arch: str
    quality: float
    latency_ms: float
    memory_bytes: float
    breakdown: dict | None = None
    verified: dict | None = None  # {evaluator: {"quality", "quality_key", ...}} after `pareto verify`

    def losses(self) -> tuple[float, float, float]:
        """All three objectives as losses (minimised)."""
        return (-self.quality, self.latency_ms, self.memory_bytes)


def dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    return all(x <= y for x, y in zip(a, b)) and any(x < y for x, y in zip(a, b))


def pareto_front(points: Iterable[Point]) -> list[Point]:
    """Non-dominated points, one per architecture (one seen several times — a candidate, then
    the reference retrained from it — counts with its best quality), by latency."""
    best: dict[str, Point] = {}
    for p in points:
        if p.arch not in best or p.quality > best[p.arch].quality:
            best[p.arch] = p
    pts = list(best.values())
    front = [p for p in pts if not any(dominates(q.losses(), p.losses()) for q in pts if q is not p)]
    return sorted(front, key=lambda p: (p.latency_ms, p.memory_bytes, -p.quality))


def _area_2d(points: list[tuple[float, float]], ref: tuple[float, float]) -> float:
    """Area dominated by minimisation points (x, y) within ref."""
    area, best_y = 0.0, ref[1]
    for x, y in sorted(points):
        if y < best_y:
            area += (ref[0] - x) * (best_y - y)
            best_y = y
    return area


def hypervolume(losses: Sequence[Sequence[float]], reference: Sequence[float]) -> float:
    """Exact 3-D hypervolume of minimisation points against ``reference``; points not
    strictly better than the reference in every objective add nothing."""
    pts = sorted((tuple(p) for p in losses if all(v < r for v, r in zip(p, reference))), key=lambda p: p[2])
    volume = 0.0
    for i, p in enumerate(pts):
        upper = pts[i + 1][2] if i + 1 < len(pts) else reference[2]
        if upper > p[2]:
            volume += _area_2d([(q[0], q[1]) for q in pts[:i + 1]], (reference[0], reference[1])) * (upper - p[2])
    return volume


@dataclass(frozen=True)
class Front:
    """The non-dominated ``points`` of the ``evaluated`` ones, and their hypervolume."""

    points: list[Point]
    reference: tuple[float, float, float]  # quality, latency_ms, memory_bytes
    hypervolume: float
    evaluated: tuple[Point, ...] = ()
    budgets: Budgets = field(default_factory=Budgets)

    @property
    def ideal(self) -> tuple[float, float, float]:
        """The best of each objective over the evaluated points (not one architecture)."""
        pts = self.evaluated or tuple(self.points)
        if not pts:
            return self.reference
        return (max(p.quality for p in pts), min(p.latency_ms for p in pts), min(p.memory_bytes for p in pts))

    @property
    def hypervolume_normalised(self) -> float:
        """The hypervolume as a share (0–1) of the box between the ideal and the reference
        point: 1 would be one architecture best in all three objectives at once."""
        box = 1.0
        for i, (ideal, ref) in enumerate(zip(self.ideal, self.reference)):
            box *= (ideal - ref) if i == 0 else (ref - ideal)
        return self.hypervolume / box if box > 0 else 0.0

    def evaluations(self, arch: str) -> int:
        """How many evaluated points an architecture has (the front keeps its best)."""
        return sum(p.arch == arch for p in self.evaluated)

    def to_dict(self, budgets: Budgets | None = None) -> dict:
        budgets = budgets or self.budgets
        ideal = self.ideal
        return {
            "front": [{"arch": p.arch, "quality": p.quality, "latency_ms": p.latency_ms,
                       "memory_bytes": p.memory_bytes, "feasible": not budgets.violations(p.latency_ms, p.memory_bytes),
                       "evaluations": self.evaluations(p.arch), "breakdown": p.breakdown or {},
                       "verified": p.verified or {}} for p in self.points],
            "hypervolume": self.hypervolume,
            "hypervolume_normalised": self.hypervolume_normalised,
            "reference_point": {"quality": self.reference[0], "latency_ms": self.reference[1],
                                "memory_bytes": self.reference[2]},
            "ideal_point": {"quality": ideal[0], "latency_ms": ideal[1], "memory_bytes": ideal[2]},
        }


def reference_point(points: Sequence[Point], budgets: Budgets, quality: float | None = None,
                    latency_ms: float | None = None, memory_bytes: float | None = None) -> tuple[float, float, float]:
    """The stated reference, with unset coordinates from the budgets, else from the points:
    the worst quality, and 10 % above the largest latency and memory evaluated."""
    if quality is None:
        quality = min((p.quality for p in points), default=0.0)
    if latency_ms is None:
        latency_ms = budgets.latency_ms_per_step or 1.1 * max((p.latency_ms for p in points), default=1.0)
    if memory_bytes is None:
        memory_bytes = budgets.memory_bytes or 1.1 * max((p.memory_bytes for p in points), default=1.0)
    return (float(quality), float(latency_ms), float(memory_bytes))


def compute_front(points: Sequence[Point], reference: tuple[float, float, float],
                  budgets: Budgets | None = None) -> Front:
    front = pareto_front(points)
    ref_losses = (-reference[0], reference[1], reference[2])
    return Front(front, reference, hypervolume([p.losses() for p in front], ref_losses), tuple(points),
                 budgets or Budgets())
