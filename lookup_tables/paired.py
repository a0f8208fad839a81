"""Paired measurement: a network timed interleaved with a reference (A, B, A, B ...).

Machines drift by more than a temporal layer costs (the tiny backbone moved ~6 ms within
30 minutes; a layer adds 0.1-2.5 ms). Timing the network and its reference in alternation,
on the same inputs with the same threads, lets drift hit both alike: the median of the paired
differences is the part the search uses (a network's temporal part, an action's ΔLatency).
Backends that do not run the network (analytic, coreml) fall back to two separate
measurements.
"""
from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass

from lookup_tables.profilers.torch_backend import percentile


@dataclass
class Paired:
    a_ms: float  # median of A's calls
    b_ms: float
    diff_ms: float  # median of the paired differences A - B
    diff_se_ms: float  # standard error of that median (1.2533 sigma / sqrt n)
    a_p10_ms: float
    a_p90_ms: float
    rounds: int
    situ_diff_ms: float | None = None  # A's temporal layers timed inside the network, minus B's
    situ_se_ms: float | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def _se_median(values: list[float]) -> float:
    return 1.2533 * statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else 0.0


def paired_stats(a: list[float], b: list[float], situ_a: list[float] | None = None,
                 situ_b: list[float] | None = None) -> Paired:
    diffs = [x - y for x, y in zip(a, b)]
    out = Paired(statistics.median(a), statistics.median(b), statistics.median(diffs), _se_median(diffs),
                 percentile(a, 0.1), percentile(a, 0.9), len(diffs))
    if situ_a and situ_b is not None:
        sd = [x - y for x, y in zip(situ_a, situ_b or [0.0] * len(situ_a))]
        out.situ_diff_ms, out.situ_se_ms = statistics.median(sd), _se_median(sd)
    return out


class PairedMeter:
    """Times networks of one space against each other; the networks are built once and kept."""

    def __init__(self, profiler, space, rounds: int, warmup: int):
        self.profiler, self.space, self.rounds, self.warmup = profiler, space, rounds, warmup
        self._calls: dict = {}
        self.paired = hasattr(profiler, "interleaved")

    def _call(self, arch):
        if arch not in self._calls:
            self._calls[arch] = self.profiler.network_call(self.space, arch)
        return self._calls[arch]

    def measure(self, a, b) -> Paired:
        if not self.paired:
            ma, mb = self.profiler.measure_network(self.space, a), self.profiler.measure_network(self.space, b)
            return Paired(ma.latency_ms, mb.latency_ms, ma.latency_ms - mb.latency_ms, 0.0,
                          ma.latency_p10_ms, ma.latency_p90_ms, ma.repeats)
        fa, fb = self._call(a), self._call(b)
        ta, tb = self.profiler.interleaved([fa, fb], self.rounds, self.warmup)
        return paired_stats(ta, tb, getattr(fa, "situ_ms", None), getattr(fb, "situ_ms", None))

    def forget(self, keep=()) -> None:
        """Drop built networks (memory) except ``keep``."""
        self._calls = {k: v for k, v in self._calls.items() if k in keep}
