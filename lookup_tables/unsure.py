"""Measured when unsure: an estimated entry whose error could change a decision is measured.

The table estimates shapes it has not measured from measured neighbours, with a stated
error (``lookup_tables.estimate``). During a campaign the engine prices actions with those
estimates; where an estimate's error exceeds the gap between the best two action scores, or
a configured threshold, the cheaper and safer path is to measure that one shape on the
workers' device and decide on the measurement (the hybrid of HiFi-LLP). The measured row
joins the campaign's table with provenance ``measured-during-search``; ``lut show`` lists rows
by provenance.

The engine's call, per decision::

    from lookup_tables.unsure import measure_if_unsure
    records = measure_if_unsure(table, space, prediction, lut_config,
                                threshold_ms=cfg_threshold, gap_ms=gap_in_ms, save_to=campaign_lut_path)
    # -> one record per entry measured (an event each); re-price the actions and decide.

``gap_ms`` is the score gap expressed in milliseconds of the action's ΔLatency (for a score
ΔQ/ΔLat the engine converts: the ΔLat change that would swap the best two), or None.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from lookup_tables.errors import LutError
from lookup_tables.grid import backbone_key
from search_spaces.shapes import OpShape


@dataclass
class UnsureMeasurement:
    key: str
    estimate_ms: float
    error_ms: float
    threshold_ms: float
    measured_ms: float | None
    status: str
    provenance: str = "measured-during-search"
    speed: float | None = None  # the backbone's time now over the table's (the measurement was divided by it)

    def as_event(self) -> dict:
        return {"event": "lut_measured_when_unsure", **asdict(self)}


def decision_threshold(threshold_ms: float | None = None, gap_ms: float | None = None) -> float:
    """The error above which an estimate could change the decision: the smaller of the
    configured threshold and the gap between the best two scores (in ms); inf when neither."""
    values = [v for v in (threshold_ms, gap_ms) if v is not None]
    if any(v < 0 for v in values):
        raise LutError("threshold_ms and gap_ms must be non-negative")
    return min(values) if values else math.inf


def should_measure(error_ms: float, threshold_ms: float | None = None, gap_ms: float | None = None) -> bool:
    """True when an estimate's stated error exceeds the decision threshold."""
    return error_ms > decision_threshold(threshold_ms, gap_ms)


def measure_if_unsure(table, space, prediction, lut_config, threshold_ms: float | None = None,
                      gap_ms: float | None = None, profiler=None, save_to=None) -> list[UnsureMeasurement]:
    """For each entry ``prediction`` estimated (``prediction.missing``) whose stated error
    exceeds the threshold: measure it with ``profiler`` (default: one for ``lut_config`` on
    its device), add it to ``table`` (provenance ``measured-during-search``, this profiler's
    protocol) and save the table to ``save_to`` when given. Returns one record per entry
    measured, for the campaign's events. Entries within the threshold stay estimated."""
    from lookup_tables.build import op_options
    from lookup_tables.profilers.base import create_profiler

    limit = decision_threshold(threshold_ms, gap_ms)
    out, speed = [], None
    for key in prediction.missing:
        est = _estimate(table, space, key)
        if est is None or not est[1] > limit:
            continue
        if profiler is None:
            profiler = create_profiler(lut_config, space.config.dtype, op_options(space))
            table.check_compatible(profiler.fingerprint(), f"the workers' device ({lut_config.backend} on "
                                                           f"{lut_config.device})")
        if key == backbone_key(space):
            m, factor = profiler.measure_backbone(space), None
        else:
            m = profiler.measure_op(OpShape.from_key(key))
            speed = _speed(table, space, profiler) if speed is None else speed  # the backbone once per call
            factor = speed if m.status == "ok" else None
            if factor:
                m.latency_ms, m.latency_p10_ms, m.latency_p90_ms = (v / factor for v in (
                    m.latency_ms, m.latency_p10_ms, m.latency_p90_ms))
        table.add(key, m, provenance="measured-during-search", protocol=profiler.fingerprint())
        out.append(UnsureMeasurement(key, est[0], est[1], limit, m.latency_ms if m.status == "ok" else None, m.status,
                                     speed=factor))
    if out and save_to is not None:
        table.save(save_to)
    return out


def _speed(table, space, profiler) -> float | None:
    """The backbone's time now over the table's backbone row: an operator measured now is
    divided by it to state it at the speed the table was measured at (the machine may run
    slower or faster than at the build; lookup_tables.paired). None where the table measured
    no backbone."""
    row = table.row(backbone_key(space))
    if row is None or row["status"] != "ok":
        return None
    now = profiler.measure_backbone(space)
    return now.latency_ms / row["latency_ms"] if now.status == "ok" and now.latency_ms > 0 else None


def _estimate(table, space, key: str) -> tuple[float, float] | None:
    """(value, error) in ms of the table's estimate of ``key``."""
    if key == backbone_key(space):
        from lookup_tables.predict import _backbone_entry

        bb, estimated = _backbone_entry(table, space)
        return None if bb is None else (bb["latency_ms"], 0.5 * bb["latency_ms"])
    est = table.estimator.estimate(OpShape.from_key(key), "latency_ms")
    return None if est is None else (est.value, est.error)


def by_provenance(table, space=None) -> dict[str, list[str]]:
    """Row keys grouped by provenance; with ``space``, also the entries pricing it would
    estimate (``estimated``: not rows of the table)."""
    out: dict[str, list[str]] = {"built": [], "measured-during-search": [], "imported": []}
    for key in table.keys():
        out.setdefault(table.row(key)["provenance"], []).append(key)
    if space is not None:
        out["estimated"] = [e["key"] for e in table.needs(space)["estimated"]]
    return out
