"""``hwnas lut validate``: N random architectures measured end to end against the prediction.

Each architecture is built whole and measured with the table's protocol; the report gives,
for latency and for memory, the share within ±5 % and ±10 %, the MAPE and the RMSE, and the
worst cases with their operators (nn-Meter's way of stating accuracy).
"""
from __future__ import annotations

import dataclasses
import math
import random

from core.errors import ConfigError
from lookup_tables.config import LutConfig
from lookup_tables.profilers.base import create_profiler
from search_spaces.space import SearchSpace


def accuracy(pairs: list[tuple[float, float]]) -> dict:
    """pairs of (predicted, measured): within_5pct / within_10pct are shares in [0, 1]."""
    errs = [(p - m) / m for p, m in pairs if m > 0]
    if not errs:
        return {"within_5pct": None, "within_10pct": None, "mape": None, "rmse": None, "n": 0}
    return {"within_5pct": sum(abs(e) <= 0.05 for e in errs) / len(errs),
            "within_10pct": sum(abs(e) <= 0.10 for e in errs) / len(errs),
            "mape": sum(abs(e) for e in errs) / len(errs),
            "rmse": math.sqrt(sum((p - m) ** 2 for p, m in pairs if m > 0) / len(errs)),
            "max_abs_rel_error": max(abs(e) for e in errs), "n": len(errs)}


def sample_architectures(space: SearchSpace, n: int, seed: int) -> list:
    """``empty`` first, then distinct random architectures (as many as the space has)."""
    rng = random.Random(seed)
    archs, seen = [space.empty], {space.empty}
    tries = 0
    while len(archs) < n and tries < 50 * n:
        tries += 1
        a = space.sample(rng)
        if a not in seen:
            seen.add(a)
            archs.append(a)
    return archs[:n]


def validate(table, space: SearchSpace, lut_config: LutConfig, samples: int = 20, seed: int = 0,
             worst: int = 5, progress=None, statistic: str = "median") -> dict:
    """``statistic`` (median, p10, p90) of the table's rows and of the measured networks is compared."""
    from lookup_tables.build import op_options

    table = table.with_statistic(statistic)
    field = "latency_ms" if statistic == "median" else f"latency_{statistic}_ms"
    profiler = create_profiler(lut_config, space.config.dtype, op_options(space))
    table.check_compatible(profiler.fingerprint(), f"this machine ({lut_config.backend} on {lut_config.device})")
    cases = []
    for i, arch in enumerate(sample_architectures(space, samples, seed)):
        if progress:
            progress(i, str(arch))
        pred = table.predict(space, arch)
        meas = profiler.measure_network(space, arch)
        if meas.status != "ok" or pred.status != "ok":
            cases.append({"arch": str(arch), "status": meas.status, "predicted_status": pred.status,
                          "reason": meas.reason or "; ".join(pred.reasons)})
            continue
        cases.append({
            "arch": str(arch), "status": "ok", "predicted_status": "ok",
            "latency_ms": {"predicted": pred.latency_ms, "measured": getattr(meas, field),
                           "measured_median": meas.latency_ms,
                           "measured_p10": meas.latency_p10_ms, "measured_p90": meas.latency_p90_ms,
                           "rel_error": (pred.latency_ms - getattr(meas, field)) / getattr(meas, field)},
            "memory_bytes": {"predicted": pred.memory_bytes, "measured": meas.memory_bytes,
                             "rel_error": (pred.memory_bytes - meas.memory_bytes) / meas.memory_bytes},
            "estimated": pred.missing,
        })
    ok = [c for c in cases if c["status"] == "ok"]
    lat = [(c["latency_ms"]["predicted"], c["latency_ms"]["measured"]) for c in ok]
    mem = [(c["memory_bytes"]["predicted"], c["memory_bytes"]["measured"]) for c in ok]
    spread = [(c["latency_ms"]["measured_p90"] - c["latency_ms"]["measured_p10"]) / c["latency_ms"]["measured_median"]
              for c in ok]
    return {
        "samples": len(cases), "measured_ok": len(ok),
        "latency": accuracy(lat), "memory": accuracy(mem),
        "measurement_spread_p10_p90": {"median": _median(spread), "max": max(spread) if spread else None},
        "worst_latency": sorted(ok, key=lambda c: -abs(c["latency_ms"]["rel_error"]))[:worst],
        "worst_memory": sorted(ok, key=lambda c: -abs(c["memory_bytes"]["rel_error"]))[:worst],
        "failed": [c for c in cases if c["status"] != "ok"],
        "cases": ok,
        "protocol": lut_config.protocol(), "statistic": statistic,
    }


def _median(values):
    if not values:
        return None
    s = sorted(values)
    return s[len(s) // 2] if len(s) % 2 else (s[len(s) // 2 - 1] + s[len(s) // 2]) / 2


def table_protocol(table, base: LutConfig, repeats: int | None = None, warmup: int | None = None) -> LutConfig:
    """The protocol ``table`` was measured with (device, threads, clock, repeats, warm-up),
    on top of ``base`` for anything the table does not record: validation measures whole
    networks the same way the table measured their parts."""
    fp, proto = table.fingerprint, table.meta.get("protocol", {})
    changes = {"backend": fp.get("backend", base.backend), "device": fp.get("device", base.device),
               "threads": fp.get("threads", base.threads), "clock": fp.get("clock", base.clock)}
    for key, given in (("repeats", repeats), ("warmup", warmup)):
        value = given if given is not None else proto.get(key)
        if value is not None:
            changes[key] = value
    try:
        return dataclasses.replace(base, **changes)
    except ValueError as exc:
        raise ConfigError(f"lut: {exc}") from None
