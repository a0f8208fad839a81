"""Calibration: a small correction of the additive model, fitted from paired whole networks.

An operator measured alone does not always cost the same inside the network (launch
overhead, layout conversions, caches that are warm or cold). For each operator family at
each slot (one OpShape key) a scale ``s_k`` multiplies the table's figure:
``temporal(n) = Σ_k count_nk · op_k · s_k``. The temporal part of a handful of networks is
measured paired with the backbone (``lookup_tables.paired``) and the scales are the posterior
of a Bayesian linear regression with prior ``s_k ~ N(1, PRIOR_SD²)`` and each network's
noise from its paired standard error (plus ``NOISE_FLOOR`` of its value): a term the
networks say little about stays near 1 with a wide uncertainty. The terms, their standard
deviations and the networks they came from are stored in the table's sidecar
(``meta["calibration"]``); ``predict`` applies them unless asked not to.

Default design: for each slot and operator, that operator at its most layers alone at that
slot (one network per term).
"""
from __future__ import annotations

import numpy as np

from lookup_tables.errors import LutError
from lookup_tables.paired import PairedMeter
from lookup_tables.profilers.base import create_profiler, now_iso
from search_spaces.architecture import Architecture, Layer

PRIOR_SD = 0.5
NOISE_FLOOR = 0.02


def default_design(space) -> list[Architecture]:
    return [Architecture({slot.name: Layer(op, slot.max_layers)}) for slot in space.slots for op in slot.ops]


def _features(table, space, arch) -> dict[str, float]:
    """OpShape key -> the uncalibrated ms it contributes to ``arch``."""
    out: dict[str, float] = {}
    for slot_name, layer in arch.items():
        shape = space.slot(slot_name).shape(layer.op)
        row = table.row(shape.key)
        if row is None or row["status"] != "ok":
            raise LutError(f"calibration needs a measured row for {shape.key} (hwnas lut build first)")
        out[shape.key] = out.get(shape.key, 0.0) + layer.count * row["latency_ms"]
    return out


def fit(table, space, observations: list[dict], prior_sd: float = PRIOR_SD, noise_floor: float = NOISE_FLOOR) -> dict:
    """``observations``: [{"arch", "temporal_ms", "se_ms"}]. Returns the calibration document."""
    feats = [_features(table, space, space.parse(o["arch"])) for o in observations]
    keys = sorted({k for f in feats for k in f})
    if not keys:
        raise LutError("calibration needs networks with temporal layers")
    X = np.array([[f.get(k, 0.0) for k in keys] for f in feats])
    y = np.array([o["temporal_ms"] for o in observations])
    var = np.array([max(o["se_ms"], 1e-6) ** 2 + (noise_floor * abs(o["temporal_ms"])) ** 2 for o in observations])
    W = np.diag(1.0 / var)
    A = X.T @ W @ X + np.eye(len(keys)) / prior_sd ** 2
    b = X.T @ W @ y + np.ones(len(keys)) / prior_sd ** 2
    cov = np.linalg.inv(A)
    mean = cov @ b
    residual = y - X @ mean
    terms = {}
    for i, k in enumerate(keys):
        op, slot = _op_slot(space, k)
        terms[k] = {"op": op, "slot": slot, "scale": float(mean[i]), "scale_sd": float(np.sqrt(cov[i, i])),
                    "networks": int(np.count_nonzero(X[:, i]))}
    return {"terms": terms, "fitted_at": now_iso(), "prior_sd": prior_sd, "noise_floor": noise_floor,
            "observations": observations,
            "residual_rms_ms": float(np.sqrt(np.mean(residual ** 2))) if len(residual) else None}


def _op_slot(space, key: str) -> tuple[str, str]:
    for slot in space.slots:
        for op in slot.ops:
            if slot.shape(op).key == key:
                return op, slot.name
    return key.split("|", 1)[0], "?"


SOURCES = ("paired", "in_situ")


def calibrate(table, space, lut_config, archs: list[Architecture] | None = None, rounds: int | None = None,
              warmup: int | None = None, progress=None, source: str = "paired") -> dict:
    """Measure ``archs`` (default ``default_design``) paired with the backbone, fit the terms,
    store them in ``table.meta["calibration"]`` (save the table to keep them) and return them.
    ``source``: what a network's temporal part is taken to be: ``paired`` (network − backbone,
    the end-to-end difference) or ``in_situ`` (its temporal layers timed inside the network:
    far less noise, blind to what they do to the backbone's own time)."""
    if source not in SOURCES:
        raise LutError(f"calibration source {source!r}; allowed: {', '.join(SOURCES)}")
    from lookup_tables.build import op_options
    from lookup_tables.validate import check_protocol

    profiler = create_profiler(lut_config, space.config.dtype, op_options(space))
    table.check_compatible(profiler.fingerprint(), f"this machine ({lut_config.backend} on {lut_config.device})")
    check_protocol(table, space, profiler.fingerprint())
    archs = archs or default_design(space)
    meter = PairedMeter(profiler, space, rounds or lut_config.repeats, lut_config.warmup if warmup is None else warmup)
    observations = []
    for i, arch in enumerate(archs):
        if progress:
            progress(i, str(arch))
        p = meter.measure(arch, space.empty)
        meter.forget(keep=(space.empty,))
        if source == "in_situ" and p.situ_diff_ms is None:
            raise LutError(f"the {lut_config.backend} backend on {lut_config.device} cannot time layers inside the network")
        t, se = (p.situ_diff_ms, p.situ_se_ms) if source == "in_situ" else (p.diff_ms, p.diff_se_ms)
        observations.append({"arch": str(arch), "temporal_ms": t, "se_ms": se, "backbone_ms": p.b_ms,
                             "paired_ms": p.diff_ms, "paired_se_ms": p.diff_se_ms, "in_situ_ms": p.situ_diff_ms})
    doc = fit(table, space, observations)
    doc["protocol"] = {"rounds": meter.rounds, "warmup": meter.warmup, "paired_with": "backbone", "source": source}
    table.meta["calibration"] = doc
    return doc
