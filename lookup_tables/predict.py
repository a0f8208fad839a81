"""Whole-network latency and peak memory from the table (METHOD.md §2).

Latency model: ``latency = backbone + Σ_slots count · op(slot shape)`` — the backbone
measured whole without temporal layers at the same input, each operator measured alone.

Memory model: the backbone's weights and inputs, plus the temporal layers' weights, plus
the activation peak ``max(backbone peak, max_slot(live_slot + extra_slot))``, where
``live_slot`` is what the backbone holds when the slot's block has produced its output
(measured with the backbone) and ``extra_slot`` is the operator's own activation peak plus,
from the second layer of a stack on, the previous layer's output, which is still held.
Both models are checked end to end by ``hwnas lut validate``.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from lookup_tables.errors import DeviceMismatchError, MissingEntryError
from lookup_tables.grid import backbone_digest, backbone_key, grid_entries, parse_backbone_key
from search_spaces.architecture import Architecture
from search_spaces.ops import op_class
from search_spaces.shapes import OpShape
from search_spaces.space import SearchSpace


@dataclass
class Prediction:
    arch: str
    latency_ms: float
    memory_bytes: int
    latency_error_ms: float = 0.0  # expected error of the estimated entries (0: all measured)
    memory_error_bytes: int = 0
    missing: list[str] = field(default_factory=list)  # keys estimated (not measured)
    status: str = "ok"  # "oom"/"error": an entry the device cannot run
    reasons: list[str] = field(default_factory=list)
    backbone_ms: float = 0.0
    slot_ms: dict[str, float] = field(default_factory=dict)
    calibrated: bool = False  # the table's calibration terms were applied to the temporal part
    uncalibrated_latency_ms: float | None = None  # the plain additive prediction

    @property
    def temporal_ms(self) -> float:
        return self.latency_ms - self.backbone_ms

    @property
    def feasible_on_device(self) -> bool:
        return self.status == "ok"

    def as_dict(self) -> dict:
        out = asdict(self)
        for k in ("latency_ms", "latency_error_ms", "backbone_ms", "uncalibrated_latency_ms"):
            if isinstance(out[k], float) and not math.isfinite(out[k]):
                out[k] = None
        return out


def check_dtype(table, space: SearchSpace, allow_other_device: bool = False) -> None:
    if not allow_other_device and table.dtype is not None and table.dtype != space.config.dtype:
        raise DeviceMismatchError(
            f"the table was measured in {table.dtype}, the space runs in {space.config.dtype}; "
            "refusing to price it (pass allow_other_device / --allow-other-device to force)")


class _Entry:
    """One subject's figures: measured, or estimated with an expected error."""

    def __init__(self, latency_ms, activation, param_bytes, status="ok", reason="", lat_err=0.0, mem_err=0.0,
                 estimated=False):
        self.latency_ms, self.activation, self.param_bytes = latency_ms, activation, param_bytes
        self.status, self.reason = status, reason
        self.lat_err, self.mem_err, self.estimated = lat_err, mem_err, estimated


def _op_entry(table, shape: OpShape) -> _Entry | None:
    row = table.row(shape.key)
    if row is not None:
        if row["status"] != "ok":
            return _Entry(math.inf, 0, 0, row["status"], f"{shape.key}: {row['status']} ({row['reason']})")
        return _Entry(row["latency_ms"], row["activation_peak_bytes"], row["param_bytes"])
    lat = table.estimator.estimate(shape, "latency_ms")
    mem = table.estimator.estimate(shape, "activation_peak_bytes")
    if lat is None or mem is None:
        return None
    params = op_class(shape.op).cost(shape).params * shape.dtype_bytes
    return _Entry(lat.value, mem.value, params, lat_err=lat.error, mem_err=mem.error, estimated=True)


def _backbone_entry(table, space: SearchSpace) -> tuple[dict | None, bool]:
    """The backbone row for this space, or an estimate from the same backbone at another
    input (scaled by the number of pixels T·H·W); (row, estimated)."""
    row = table.row(backbone_key(space))
    if row is not None:
        return row, False
    digest, v = backbone_digest(space), space.config.video
    same = []
    for key in table.rows.index[table.rows["kind"] == "backbone"]:
        info = parse_backbone_key(key)
        r = table.row(key)
        if info and info["digest"] == digest and info["dtype"] == space.config.dtype and r["status"] == "ok":
            same.append((abs(math.log(info["frames"] * info["height"] * info["width"] / (v.frames * v.height * v.width))),
                         info, r))
    if not same:
        return None, True
    _, info, r = min(same, key=lambda s: s[0])
    scale = v.frames * v.height * v.width / (info["frames"] * info["height"] * info["width"])
    est = dict(r)
    est["latency_ms"] = r["latency_ms"] * scale
    est["activation_peak_bytes"] = int(r["activation_peak_bytes"] * scale)
    est["input_bytes"] = int(r["input_bytes"] * scale)
    est["slot_live_bytes"] = {k: int(b * scale) for k, b in r["slot_live_bytes"].items()}
    return est, True


def predict(table, space: SearchSpace, arch: Architecture, allow_other_device: bool = False,
            calibrated: bool = True) -> Prediction:
    """``calibrated``: apply the table's calibration terms (``lookup_tables.calibrate``) where
    it has them; the plain additive figure stays in ``uncalibrated_latency_ms``."""
    space.validate(arch)
    check_dtype(table, space, allow_other_device)
    bb, bb_estimated = _backbone_entry(table, space)
    if bb is None:
        raise MissingEntryError(
            f"the table has no measurement of this backbone ({backbone_key(space)}); "
            "measure it: hwnas lut build CONFIG --out LUT (it adds only what is missing)")
    pred = Prediction(str(arch), 0.0, 0)
    if bb_estimated:
        pred.missing.append(backbone_key(space))
    if bb["status"] != "ok":
        pred.status = bb["status"]
        pred.reasons.append(f"backbone: {bb['status']} ({bb['reason']})")
        pred.latency_ms, pred.memory_bytes = math.inf, 0
        return pred
    # A backbone scaled from another input has no leave-one-out evidence: its error is taken
    # as half its value (`hwnas lut build` measures it in seconds).
    lat_var, mem_var = (0.5 * bb["latency_ms"]) ** 2 if bb_estimated else 0.0, 0.0
    latency = pred.backbone_ms = bb["latency_ms"]
    temporal_params = 0
    activation = bb["activation_peak_bytes"]
    calibration = (table.meta.get("calibration") or {}) if calibrated else {}
    terms, overheads = calibration.get("terms", {}), calibration.get("overheads", {})
    first_use, seen_ops = calibration.get("first_use", {}), set()
    none = {"ms": 0.0, "sd_ms": 0.0}
    plain = latency
    for slot_name, layer in arch.items():
        shape = space.slot(slot_name).shape(layer.op)
        e = _op_entry(table, shape)
        if e is None:
            raise MissingEntryError(
                f"slot {slot_name}: no measurement of {layer.op} in the table to estimate {shape.key} from")
        if e.estimated:
            pred.missing.append(shape.key)
        if e.status != "ok":
            pred.status = e.status
            pred.reasons.append(f"slot {slot_name}: {e.reason}")
        plain += layer.count * e.latency_ms
        term = terms.get(shape.key)
        scale, scale_sd = (term["scale"], term["scale_sd"]) if term else (1.0, 0.0)
        if term:
            pred.calibrated = True
        fixed = overheads.get(slot_name, none)  # the occupied slot's own cost
        # The first layer of an operator in the network (backbone order) pays its cold start.
        first = none if layer.op in seen_ops else first_use.get(layer.op, none)
        seen_ops.add(layer.op)
        pred.slot_ms[slot_name] = layer.count * e.latency_ms * scale + fixed["ms"] + first["ms"]
        latency += pred.slot_ms[slot_name]
        lat_var += ((layer.count * e.lat_err * scale) ** 2 + (layer.count * e.latency_ms * scale_sd) ** 2
                    + fixed["sd_ms"] ** 2 + first["sd_ms"] ** 2)
        temporal_params += layer.count * e.param_bytes
        held = shape.batch * shape.tokens * shape.channels * shape.dtype_bytes if layer.count >= 2 else 0
        live = bb["slot_live_bytes"].get(slot_name, 0)
        activation = max(activation, live + e.activation + held)
        mem_var += e.mem_err ** 2
    pred.latency_ms = latency
    pred.uncalibrated_latency_ms = plain
    pred.latency_error_ms = math.sqrt(lat_var)
    pred.memory_bytes = int(bb["param_bytes"] + bb["input_bytes"] + temporal_params + activation)
    pred.memory_error_bytes = int(math.sqrt(mem_var))
    return pred


def needs(table, space: SearchSpace, grid=None) -> dict:
    """What pricing ``space`` from ``table`` would use: exact hits, estimates (with their
    expected relative error) and what it would need to measure to be exact."""
    check_dtype(table, space)
    hits, estimated, unavailable = [], [], []
    for entry in grid_entries(space, grid):
        row = table.row(entry.key)
        if row is not None:
            hits.append(entry.key)
            continue
        if entry.shape is None:
            bb, _ = _backbone_entry(table, space)
            (estimated if bb is not None else unavailable).append(
                {"key": entry.key, "latency_rel_error": 0.5} if bb is not None else entry.key)
            continue
        est = table.estimator.estimate(entry.shape, "latency_ms")
        if est is None:
            unavailable.append(entry.key)
        else:
            estimated.append({"key": entry.key, "latency_rel_error": est.error / est.value if est.value else None,
                              "neighbours": list(est.neighbours)})
    return {"hits": hits, "estimated": estimated, "unavailable": unavailable,
            "to_measure": [e["key"] for e in estimated] + unavailable}
