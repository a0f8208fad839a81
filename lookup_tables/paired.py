"""Paired measurement: a network timed interleaved with a reference (A, B, A, B ...).

Machines drift by more than a temporal layer costs (the tiny backbone moved ~6 ms within
30 minutes; a layer adds 0.1-2.5 ms). Timing the network and its reference in alternation,
on the same inputs with the same threads, lets drift hit both alike: the median of the paired
differences is the part the search uses (a network's temporal part, an action's ΔLatency).

Drift is not only added time. This 2-core VM switches for seconds to minutes between a fast
and a ~1.5x slower state (the backbone at 16-18 ms, then 25-27 ms), and a slower machine
runs the temporal layers slower too, so a plain difference measured in the slow state is
~1.5x the one the table (built in whichever state) predicts. Given the table's own backbone
time (``ref_ms``), each round's times are scaled by ``ref_ms`` over the backbone's running
median around that round: the result is the difference at the speed the table was measured
at, which is what the search's budgets (stated relative to the backbone) see. The scaling
and the plain difference are both reported.

A subject timed right after another runs slower than it does in steady state: on this CPU a
network timed right after the backbone alone read its temporal layers 0.10-0.16 ms slower than
the same network timed after itself (the temporal kernels' code and buffers were cold), so with
a fixed order the first subject of each round paid it: an action's child (timed first) read a
removal's saving 0.05-0.26 ms too small and an addition's cost too large. Every timed call is
therefore led in by one untimed call of the same subject (``LEAD_IN``): it follows itself, as
one denoising step follows another, which is what the table's rows (each timed in a loop) are.

Backends that do not run the network (analytic, coreml) fall back to two separate
measurements.
"""
from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass

from lookup_tables.profilers.torch_backend import percentile


WINDOW = 5  # rounds each side of a round in the backbone's running median (the machine's state)
LEAD_IN = 1  # untimed calls of a subject right before each of its timed calls


@dataclass
class Paired:
    a_ms: float  # median of A's calls
    b_ms: float
    diff_ms: float  # median of the paired differences A - B (at the table's speed when given ref_ms)
    diff_se_ms: float  # standard error of that median (from its order statistics: ``se_median``)
    a_p10_ms: float
    a_p90_ms: float
    rounds: int
    situ_diff_ms: float | None = None  # A's temporal layers timed inside the network, minus B's
    situ_se_ms: float | None = None
    raw_diff_ms: float | None = None  # the plain median difference, at whatever speed the machine ran
    a_scaled_ms: float | None = None  # A's median at the table's speed
    speed: float | None = None  # the backbone's time over ref_ms, median over rounds (1.5: 1.5x slower)

    def as_dict(self) -> dict:
        return asdict(self)


SE_Z = 1.96  # the order statistics bracketing the median's 95 % interval give its standard error


def se_median(values: list[float]) -> float:
    """Standard error of the median from the order statistics around it: the width of the
    distribution-free ~95 % interval (quantiles 1/2 ± z/(2 sqrt n)) over 2z. The normal-theory
    1.2533 sigma / sqrt n takes sigma from the tails: on this CPU, where one call in ten or
    twenty is several ms slow (a state switch, a preemption), it read the paired difference's
    error as 0.17 ms where two passes of the same 30 networks put it at 0.07 (the spread of
    their differences over sqrt 2; lut_paired_tiny_cpu_lead_in.json)."""
    n = len(values)
    if n < 2:
        return 0.0
    h = min(0.5, SE_Z / (2 * math.sqrt(n)))
    return (percentile(values, 0.5 + h) - percentile(values, 0.5 - h)) / (2 * SE_Z)


def speed_scales(ref: list[float], ref_ms: float, window: int = WINDOW) -> list[float]:
    """Per round, ``ref_ms`` over the reference's running median (``window`` rounds each side):
    multiplying a round's times by it states them at the speed ``ref_ms`` was measured at."""
    return [ref_ms / statistics.median(ref[max(0, i - window):i + window + 1]) for i in range(len(ref))]


def paired_stats(a: list[float], b: list[float], situ_a: list[float] | None = None,
                 situ_b: list[float] | None = None, ref: list[float] | None = None,
                 ref_ms: float | None = None) -> Paired:
    """``ref``: the backbone's time per round (default ``b``); with ``ref_ms`` (the table's
    backbone) every difference is scaled to the table's speed round by round."""
    raw = [x - y for x, y in zip(a, b)]
    scale = speed_scales(ref if ref is not None else b, ref_ms) if ref_ms else [1.0] * len(raw)
    diffs = [d * k for d, k in zip(raw, scale)]
    out = Paired(statistics.median(a), statistics.median(b), statistics.median(diffs), se_median(diffs),
                 percentile(a, 0.1), percentile(a, 0.9), len(diffs), raw_diff_ms=statistics.median(raw))
    if ref_ms:
        out.a_scaled_ms = statistics.median([x * k for x, k in zip(a, scale)])
        out.speed = statistics.median(ref if ref is not None else b) / ref_ms
    if situ_a and situ_b is not None:
        sd = [(x - y) * k for x, y, k in zip(situ_a, situ_b or [0.0] * len(situ_a), scale)]
        out.situ_diff_ms, out.situ_se_ms = statistics.median(sd), se_median(sd)
    return out


class PairedMeter:
    """Times networks of one space against each other; the networks are built once and kept.
    ``ref_ms``: the table's backbone time; given, results are stated at the table's speed, and
    a pair whose reference is not the backbone (an action's child and parent) is interleaved
    with the backbone as well (A, B, backbone, A, B, backbone ...)."""

    def __init__(self, profiler, space, rounds: int, warmup: int, ref_ms: float | None = None):
        self.profiler, self.space, self.rounds, self.warmup, self.ref_ms = profiler, space, rounds, warmup, ref_ms
        self._calls: dict = {}
        self.paired = hasattr(profiler, "interleaved")

    def _call(self, arch):
        if arch not in self._calls:
            self._calls[arch] = self.profiler.network_call(self.space, arch)
        return self._calls[arch]

    def measure(self, a, b, rounds: int | None = None) -> Paired:
        if not self.paired:
            ma, mb = self.profiler.measure_network(self.space, a), self.profiler.measure_network(self.space, b)
            return Paired(ma.latency_ms, mb.latency_ms, ma.latency_ms - mb.latency_ms, 0.0,
                          ma.latency_p10_ms, ma.latency_p90_ms, ma.repeats, raw_diff_ms=ma.latency_ms - mb.latency_ms)
        fa, fb = self._call(a), self._call(b)
        third = self.ref_ms is not None and b != self.space.empty
        fns = [fa, fb, self._call(self.space.empty)] if third else [fa, fb]
        times = self.profiler.interleaved(fns, rounds or self.rounds, self.warmup, lead_in=LEAD_IN)
        return paired_stats(times[0], times[1], getattr(fa, "situ_ms", None), getattr(fb, "situ_ms", None),
                            ref=times[2] if third else None, ref_ms=self.ref_ms)

    def forget(self, keep=()) -> None:
        """Drop built networks (memory) except ``keep``."""
        self._calls = {k: v for k, v in self._calls.items() if k in keep}
