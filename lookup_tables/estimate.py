"""Estimating a shape the table has not measured, from measured neighbours of the same op.

Method: take the ``k`` measured shapes of the same operator and dtype nearest in log
(C, T, H·W, L, heads, D, B); fit ``log value = a + b·log work`` over them (``b`` clamped to [0.3, 1.2],
1 with a single neighbour), and scale the nearest neighbour's value by ``(work/work_nb)^b``.
``work`` is an analytic proxy of the operator's cost: for memory its activation bytes; for
latency the one of FLOPs, activation bytes, or FLOPs/10 + activation bytes that has the
lowest leave-one-out error for that operator on this table (small operators on a CPU run at
the speed of memory, large ones on a GPU at the speed of arithmetic).
The expected error of an estimate is the RMS relative error of the same estimator in
leave-one-out over the table's measured rows of that operator (of all operators when the
operator has too few rows).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from search_spaces.ops import op_class
from search_spaces.shapes import OpShape

TARGETS = ("latency_ms", "activation_peak_bytes")
K_NEIGHBOURS = 4
NO_EVIDENCE = 0.5  # relative error assumed when leave-one-out has nothing to test


PROXIES = {
    "flops": lambda c: c.flops,
    "activation_bytes": lambda c: c.activation_bytes,
    "flops_and_bytes": lambda c: c.flops / 10 + c.activation_bytes,
}


def work(shape: OpShape, proxy: str) -> float:
    return float(max(1, PROXIES[proxy](op_class(shape.op).cost(shape))))


def _position(shape: OpShape) -> np.ndarray:
    return np.log([shape.channels, shape.frames, shape.height * shape.width, shape.text_tokens, shape.heads,
                   shape.text_dim, shape.batch])


@dataclass(frozen=True)
class Estimate:
    value: float
    error: float  # expected absolute error, same unit as value
    neighbours: tuple[str, ...]


class Estimator:
    """Estimates per (op, dtype) from the table's measured (status ok) operator rows."""

    def __init__(self, rows):
        self._points: dict[tuple[str, str], list[tuple[str, OpShape, dict]]] = {}
        for key, r in rows.iterrows():
            shape = OpShape.from_key(key)
            self._points.setdefault((shape.op, shape.dtype), []).append(
                (key, shape, {t: float(r[t]) for t in TARGETS}))
        self._loo: dict[tuple[str, str, str], float] = {}
        self._proxy: dict[tuple[str, str, str], str] = {}

    def _proxies(self, target: str) -> tuple[str, ...]:
        return tuple(PROXIES) if target == "latency_ms" else ("activation_bytes",)

    def proxy(self, op: str, dtype: str, target: str) -> str:
        """The work proxy with the lowest leave-one-out error for this operator."""
        key = (op, dtype, target)
        if key not in self._proxy:
            scores = {p: _rms(self._loo_errors(op, dtype, target, p)) for p in self._proxies(target)}
            scored = {p: v for p, v in scores.items() if v is not None}
            self._proxy[key] = min(scored, key=scored.get) if scored else self._proxies(target)[-1]
        return self._proxy[key]

    def _raw(self, shape: OpShape, target: str, exclude: str | None = None,
             proxy: str | None = None) -> tuple[float, tuple[str, ...]] | None:
        proxy = proxy or self.proxy(shape.op, shape.dtype, target)
        points = [p for p in self._points.get((shape.op, shape.dtype), []) if p[0] != exclude]
        if not points:
            return None
        here = _position(shape)
        points.sort(key=lambda p: float(np.sum((_position(p[1]) - here) ** 2)))
        near = points[:K_NEIGHBOURS]
        w_t = work(shape, proxy)
        ws = np.log([work(p[1], proxy) for p in near])
        vs = np.log([max(p[2][target], 1e-12) for p in near])
        b = 1.0
        if len(near) >= 2 and np.ptp(ws) > 1e-9:
            b = float(np.clip(np.polyfit(ws, vs, 1)[0], 0.3, 1.2))
        nb = near[0]
        value = nb[2][target] * math.exp(b * (math.log(w_t) - ws[0]))
        return value, tuple(p[0] for p in near)

    def relative_error(self, op: str, dtype: str, target: str) -> float:
        """RMS relative leave-one-out error of this estimator for ``op`` (all ops as fallback)."""
        cache_key = (op, dtype, target)
        if cache_key not in self._loo:
            errs = self._loo_errors(op, dtype, target, self.proxy(op, dtype, target))
            if len(errs) < 2:
                errs = [e for (o, d) in self._points if d == dtype
                        for e in self._loo_errors(o, d, target, self.proxy(o, d, target))]
            self._loo[cache_key] = float(np.sqrt(np.mean(np.square(errs)))) if errs else NO_EVIDENCE
        return self._loo[cache_key]

    def _loo_errors(self, op: str, dtype: str, target: str, proxy: str) -> list[float]:
        out = []
        for key, shape, values in self._points.get((op, dtype), []):
            got = self._raw(shape, target, exclude=key, proxy=proxy)
            if got is not None and values[target] > 0:
                out.append(abs(got[0] - values[target]) / values[target])
        return out

    def estimate(self, shape: OpShape, target: str) -> Estimate | None:
        got = self._raw(shape, target)
        if got is None:
            return None
        value, neighbours = got
        return Estimate(value, value * self.relative_error(shape.op, shape.dtype, target), neighbours)

    def loo_report(self) -> dict:
        """Leave-one-out RMS relative error per operator and target (what ``lut show`` prints)."""
        out = {}
        for op, dtype in sorted(self._points):
            out[f"{op}|{dtype}"] = {}
            for t in TARGETS:
                proxy = self.proxy(op, dtype, t)
                errs = self._loo_errors(op, dtype, t, proxy)
                out[f"{op}|{dtype}"][t] = {"rms_relative_error": _rms(errs), "tested": len(errs), "proxy": proxy}
        return out


def _rms(errs: list[float]) -> float | None:
    return float(np.sqrt(np.mean(np.square(errs)))) if errs else None
