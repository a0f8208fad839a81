"""``hwnas lut validate``: random architectures measured whole against the prediction.

Latency is measured paired (``lookup_tables.paired``): each network interleaved with the
backbone alone, A, B, A, B on the same inputs and threads, so the machine's drift cancels in
the difference (each timed call led in by an untimed call of the same subject), and each
round is scaled to the speed the table's backbone row was measured at (the machine's slower
states scale the temporal layers too). The report compares, over the sample:

* ``latency``: whole networks, predicted vs measured (share within ±5 %/±10 %, MAPE, RMSE on
  the network's own median as measured; Spearman and Kendall on the drift-corrected latency,
  the network's median at the table's speed, which is what orders a front);
* ``temporal``: the temporal part (network − backbone), predicted vs measured;
* ``ceiling``: the same statistics between two independent passes of the same protocol, what
  a perfect predictor could reach against this noise;
* ``actions``: random (parent, action) pairs, ΔLatency measured paired (child vs parent, with
  the backbone in each round for the speed) and ΔMemory, against the prediction's differences;
* ``memory``: the prediction vs the device allocator's peak — on CPU the blocks PyTorch's
  allocator hands out as ``torch.profiler`` records them, on GPU ``max_memory_allocated`` —
  never the live-tensor tracker the prediction is built from (``rss``: the resident-set
  high-water mark of a fresh process, the operating system's view, ±20 % at a 1.6 MB peak).
Worst cases are listed with their operators (nn-Meter's way of stating accuracy).
"""
from __future__ import annotations

import dataclasses
import math
import random

from core.config import to_dict
from core.errors import ConfigError
from lookup_tables.config import LutConfig
from lookup_tables.errors import DeviceMismatchError, LutError
from lookup_tables.grid import backbone_key
from lookup_tables.paired import LEAD_IN, PairedMeter
from lookup_tables.profilers.base import create_profiler, identity
from search_spaces.space import SearchSpace

PROTOCOL_KEYS = ("backend", "device", "dtype", "threads", "clock")


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


def check_protocol(table, space: SearchSpace, fingerprint: dict) -> None:
    """The backbone row must have been measured under this protocol: its latency is the
    base every prediction adds to, and a row taken with other threads or another clock is a
    different quantity (a merge with --allow-other-device can bring one in)."""
    row = table.row(backbone_key(space))
    if row is None:
        return
    theirs, mine = row["protocol"], identity(fingerprint)
    for k in PROTOCOL_KEYS:
        if k in theirs and theirs[k] != mine[k]:
            raise DeviceMismatchError(
                f"the table's backbone row was measured with {k}={theirs[k]!r}, this validation measures with "
                f"{k}={mine[k]!r}; re-measure the backbone under this protocol (hwnas lut build) before validating")


def table_meter(table, space: SearchSpace, lut_config: LutConfig, rounds: int | None = None,
                warmup: int | None = None, scale_to_table: bool = True, where: str | None = None) -> PairedMeter:
    """A paired meter on ``lut_config``'s device for networks ``table`` prices: refuses a table
    of another device (``where`` names this one) or a backbone row of another protocol, and
    states its results at the speed of the table's backbone row (``scale_to_table``)."""
    from lookup_tables.build import op_options

    profiler = create_profiler(lut_config, space.config.dtype, op_options(space))
    where = where or f"this machine ({lut_config.backend} on {lut_config.device})"
    table.check_compatible(profiler.fingerprint(), where)
    check_protocol(table, space, profiler.fingerprint())
    ref_ms = table.predict(space, space.empty, calibrated=False).backbone_ms if scale_to_table else None
    return PairedMeter(profiler, space, rounds or lut_config.repeats,
                       lut_config.warmup if warmup is None else warmup, ref_ms=ref_ms)


def rank(values: list[float]) -> list[float]:
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def spearman(x: list[float], y: list[float]) -> float | None:
    if len(x) < 3:
        return None
    rx, ry = rank(x), rank(y)
    mx, my = sum(rx) / len(rx), sum(ry) / len(ry)
    sxy = sum((a - mx) * (b - my) for a, b in zip(rx, ry))
    sxx, syy = sum((a - mx) ** 2 for a in rx), sum((b - my) ** 2 for b in ry)
    return None if sxx == 0 or syy == 0 else sxy / math.sqrt(sxx * syy)


def kendall(x: list[float], y: list[float]) -> float | None:
    """Kendall's tau-b (ties in either list counted as in scipy)."""
    n = len(x)
    if n < 3:
        return None
    conc = disc = tx = ty = 0
    for i in range(n):
        for j in range(i + 1, n):
            dx, dy = x[i] - x[j], y[i] - y[j]
            if dx == 0 and dy == 0:
                continue
            if dx == 0:
                tx += 1
            elif dy == 0:
                ty += 1
            elif (dx > 0) == (dy > 0):
                conc += 1
            else:
                disc += 1
    denom = math.sqrt((conc + disc + tx) * (conc + disc + ty))
    return None if denom == 0 else (conc - disc) / denom


def _sample_actions(space: SearchSpace, n: int, seed: int) -> list:
    rng = random.Random(seed + 7919)
    out, seen, tries = [], set(), 0
    while len(out) < n and tries < 50 * n:
        tries += 1
        parent = space.sample(rng)
        action = rng.choice(space.actions(parent))
        if (parent, action) not in seen:
            seen.add((parent, action))
            out.append((parent, action, parent.apply(action)))
    return out


MEMORY_METERS = ("real", "rss", "tracker")


def _real_memory(profiler, space: SearchSpace, archs: list, lut_config: LutConfig, memory: str) -> dict:
    """``real``: the device allocator's peak (CUDA, or the CPU allocator's recorded blocks);
    ``rss``: the resident-set high-water mark of a fresh process (CPU, Linux); ``tracker``:
    the live-tensor tracker the table is built with (proves nothing; for comparison)."""
    from lookup_tables.build import op_options

    if memory == "tracker":
        return {str(a): {**profiler.measure_network(space, a).as_dict(), "meter": "live-tensor tracker"}
                for a in archs}
    if lut_config.backend != "torch" or profiler.device.type not in ("cpu", "cuda"):
        return {}
    if memory == "rss":
        if profiler.device.type != "cpu":
            raise LutError("--memory rss measures CPU processes; on cuda use real")
        from lookup_tables.rss import rss_peaks

        return rss_peaks(space, archs, lut_config, op_options(space))
    out = {}
    for a in archs:
        m = profiler.peak_memory(space, a)
        m["memory_bytes"] = m["param_bytes"] + m["input_bytes"] + m["activation_peak_bytes"]
        out[str(a)] = m
    return out


def temporal_accuracy(pairs: list[tuple[float, float]], ceilings: list[float] | None = None) -> dict:
    """pairs of (predicted, measured) temporal parts; networks with a measured part under
    1e-9 ms are left out of the relative figures."""
    rel = [(p - m) / m for p, m in pairs if abs(m) > 1e-9]
    out = {"n": len(rel), "mape": sum(abs(e) for e in rel) / len(rel) if rel else None,
           "within_10pct": sum(abs(e) <= 0.10 for e in rel) / len(rel) if rel else None,
           "spearman": spearman([p for p, _ in pairs], [m for _, m in pairs]),
           "kendall": kendall([p for p, _ in pairs], [m for _, m in pairs]),
           "mae_ms": sum(abs(p - m) for p, m in pairs) / len(pairs) if pairs else None}
    if ceilings is not None:
        ok = [abs(p - m) <= max(0.10 * abs(m), c) for (p, m), c in zip(pairs, ceilings) if abs(m) > 1e-9]
        out["within_10pct_or_ceiling"] = sum(ok) / len(ok) if ok else None
    return out


def validate(table, space: SearchSpace, lut_config: LutConfig, samples: int = 20, seed: int = 0,
             worst: int = 5, progress=None, statistic: str = "median", passes: int = 2, actions: int = 0,
             memory: str = "real", exclude=(), scale_to_table: bool = True,
             action_rounds: int | None = None, action_passes: int = 1) -> dict:
    """``statistic`` (median, p10, p90) of the table's rows and of the measured networks is
    compared (whole networks; temporal parts are medians of paired differences). ``passes``:
    independent passes over the sample (2 gives the noise ceiling). ``actions``: random
    (parent, action) pairs to check. ``memory``: ``real`` (the device allocator's peak),
    ``rss`` (resident set, CPU) or ``tracker`` (the live-tensor tracker, as the build).
    ``exclude``: architectures not to sample (e.g. those a calibration was fitted on).
    ``scale_to_table``: state the paired measurements at the speed the table's backbone row
    was measured at (False: as measured). ``action_rounds``: rounds per action (default: the
    protocol's repeats, as for networks). ``action_passes``: independent passes over the
    actions (2 gives their two-pass ceiling: pass 2 scored against pass 1 as the table is)."""
    if memory not in MEMORY_METERS:
        raise LutError(f"memory {memory!r}; allowed: {', '.join(MEMORY_METERS)}")
    table = table.with_statistic(statistic)
    # Measurements are stated at the table's speed: each round scaled by the table's backbone
    # over the backbone's running median (lookup_tables.paired); the plain ones are kept too.
    meter = table_meter(table, space, lut_config, scale_to_table=scale_to_table)
    profiler, ref_ms = meter.profiler, meter.ref_ms
    excluded = {str(a) for a in exclude}
    archs = [a for a in sample_architectures(space, samples + len(excluded), seed) if str(a) not in excluded][:samples]
    if space.empty not in archs:
        archs = [space.empty] + archs[:samples - 1]
    calibrated = bool(table.meta.get("calibration"))
    step, total = 0, passes * len(archs) + actions * max(1, action_passes)
    runs: list[dict] = []
    for _ in range(max(1, passes)):
        run = {}
        for arch in archs:
            if progress:
                progress(step, str(arch), total)
            step += 1
            try:
                run[str(arch)] = meter.measure(arch, space.empty)
            except Exception as exc:  # one network failing must not end the validation
                run[str(arch)] = exc
            meter.forget(keep=(space.empty,))
        runs.append(run)
    sampled, timed = _sample_actions(space, actions, seed), {}
    for k in range(max(1, action_passes)):  # each pass over all actions: passes lie apart in time
        for parent, action, child in sampled:
            if progress:
                progress(step, f"{parent} {action}" + (f" (pass {k + 1})" if k else ""), total)
            step += 1
            timed.setdefault((parent, action), []).append(meter.measure(child, parent, rounds=action_rounds))
            meter.forget(keep=(space.empty,))
    action_cases = []
    for parent, action, child in sampled:
        p, *later = timed[(parent, action)]
        pc, pp = table.predict(space, child), table.predict(space, parent)
        action_cases.append({"parent": str(parent), "action": str(action), "child": str(child),
                             "latency_ms": {"predicted": pc.latency_ms - pp.latency_ms,
                                            "predicted_uncalibrated": pc.uncalibrated_latency_ms - pp.uncalibrated_latency_ms,
                                            "measured": p.diff_ms, "noise_se": p.diff_se_ms,
                                            "measured_raw": p.raw_diff_ms, "speed": p.speed,
                                            "in_situ": p.situ_diff_ms, "in_situ_se": p.situ_se_ms,
                                            "predicted_in_layers": (pc.latency_ms - _fixed_ms(table, child))
                                            - (pp.latency_ms - _fixed_ms(table, parent)),
                                            "later_passes": [t.diff_ms for t in later]},
                             "_mem": (pc.memory_bytes - pp.memory_bytes, str(child), str(parent))})
    mem_archs = list(dict.fromkeys(archs + [space.parse(c["child"]) for c in action_cases]
                                   + [space.parse(c["parent"]) for c in action_cases]))
    real = _real_memory(profiler, space, mem_archs, lut_config, memory) if mem_archs else {}
    for c in action_cases:
        pred_d, child, parent = c.pop("_mem")
        if child in real and parent in real:
            c["memory_bytes"] = {"predicted": pred_d,
                                 "measured": real[child]["memory_bytes"] - real[parent]["memory_bytes"]}
    first = runs[0]
    backbone_ref = _median([p.b_ms for p in first.values() if not isinstance(p, Exception)])
    cases, failed = [], []
    for arch in archs:
        key = str(arch)
        got = first[key]
        try:
            pred = table.predict(space, arch)
        except LutError as exc:
            failed.append({"arch": key, "status": "error", "reason": str(exc)})
            continue
        if isinstance(got, Exception) or pred.status != "ok":
            failed.append({"arch": key, "status": "error" if isinstance(got, Exception) else "ok",
                           "predicted_status": pred.status,
                           "reason": f"{type(got).__name__}: {got}" if isinstance(got, Exception) else "; ".join(pred.reasons)})
            continue
        measured = {"median": got.a_ms, "p10": got.a_p10_ms, "p90": got.a_p90_ms}[statistic]
        case = {
            "arch": key, "status": "ok", "predicted_status": "ok",
            "latency_ms": {"predicted": pred.latency_ms, "predicted_uncalibrated": pred.uncalibrated_latency_ms,
                           "measured": measured, "measured_median": got.a_ms, "measured_p10": got.a_p10_ms,
                           "measured_p90": got.a_p90_ms, "backbone_measured": got.b_ms,
                           "drift_corrected": _corrected(got, backbone_ref),
                           "rel_error": (pred.latency_ms - measured) / measured},
            "temporal_ms": {"predicted": pred.temporal_ms,
                            "predicted_uncalibrated": pred.uncalibrated_latency_ms - pred.backbone_ms,
                            "measured": got.diff_ms, "se": got.diff_se_ms, "measured_raw": got.raw_diff_ms,
                            "speed": got.speed,
                            "in_situ": got.situ_diff_ms, "in_situ_se": got.situ_se_ms,
                            "predicted_in_layers": pred.temporal_ms - _fixed_ms(table, arch),
                            "passes": [r[key].diff_ms for r in runs if not isinstance(r.get(key), Exception)]},
            "estimated": pred.missing,
        }
        if key in real:
            mem = real[key]
            case["memory_bytes"] = {"predicted": pred.memory_bytes, "measured": mem["memory_bytes"],
                                    "rel_error": (pred.memory_bytes - mem["memory_bytes"]) / mem["memory_bytes"],
                                    "predicted_activation": pred.memory_bytes - mem["param_bytes"] - mem["input_bytes"],
                                    "measured_activation": mem["activation_peak_bytes"], "meter": mem.get("meter")}
        cases.append(case)
    ok = cases
    lat = [(c["latency_ms"]["predicted"], c["latency_ms"]["measured"]) for c in ok]
    mem = [(c["memory_bytes"]["predicted"], c["memory_bytes"]["measured"]) for c in ok if "memory_bytes" in c]
    act = [(c["memory_bytes"]["predicted_activation"], c["memory_bytes"]["measured_activation"])
           for c in ok if "memory_bytes" in c]
    latency = accuracy(lat)
    corrected = [c["latency_ms"]["drift_corrected"] for c in ok]
    predicted = [c["latency_ms"]["predicted"] for c in ok]
    latency.update(spearman=spearman(predicted, corrected), kendall=kendall(predicted, corrected),
                   spearman_unpaired=spearman(predicted, [m for _, m in lat]),
                   spearman_uncalibrated=spearman([c["latency_ms"]["predicted_uncalibrated"] for c in ok], corrected))
    # The backbone alone has no temporal part: its measured one is noise around 0, no relative error.
    layered = [c for c in ok if space.parse(c["arch"]).total_layers > 0]
    noise = [_ceiling_noise(c) for c in layered]
    temporal = temporal_accuracy([(c["temporal_ms"]["predicted"], c["temporal_ms"]["measured"]) for c in layered],
                                 noise)
    situ = [(c["temporal_ms"]["predicted_in_layers"], c["temporal_ms"]["in_situ"]) for c in layered
            if c["temporal_ms"]["in_situ"] is not None]
    # The temporal layers timed inside the network (hooks, same clock): the same quantity
    # without the backbone's noise, but blind to effects on the backbone's own time.
    temporal["in_situ"] = temporal_accuracy(situ) if situ else None
    temporal["uncalibrated"] = temporal_accuracy(
        [(c["temporal_ms"]["predicted_uncalibrated"], c["temporal_ms"]["measured"]) for c in layered], noise)
    report = {
        "samples": len(archs), "measured_ok": len(ok), "passes": len(runs), "calibrated": calibrated,
        "latency": latency, "temporal": temporal, "ceiling": _ceiling(runs, archs, backbone_ref),
        "memory": accuracy(mem), "memory_activation": accuracy(act),
        "memory_meter": next((c["memory_bytes"]["meter"] for c in ok if "memory_bytes" in c), None),
        "actions": _action_report(action_cases),
        "scaled_to_table_speed": ref_ms is not None, "table_backbone_ms": ref_ms,
        "machine_speed": _spread([c["temporal_ms"]["speed"] for c in ok if c["temporal_ms"]["speed"] is not None]),
        "measurement_spread_p10_p90": {
            "median": _median([(c["latency_ms"]["measured_p90"] - c["latency_ms"]["measured_p10"])
                               / c["latency_ms"]["measured_median"] for c in ok]) if ok else None},
        "worst_latency": sorted(ok, key=lambda c: -abs(c["latency_ms"]["rel_error"]))[:worst],
        "worst_temporal": sorted(ok, key=lambda c: -abs(c["temporal_ms"]["predicted"] - c["temporal_ms"]["measured"]))[:worst],
        "worst_memory": sorted([c for c in ok if "memory_bytes" in c],
                               key=lambda c: -abs(c["memory_bytes"]["rel_error"]))[:worst],
        "failed": failed, "cases": ok, "action_cases": action_cases,
        "protocol": dict(lut_config.protocol(), paired="A,B interleaved with the backbone", rounds=meter.rounds,
                         action_rounds=action_rounds or meter.rounds, lead_in=LEAD_IN),
        "statistic": statistic,
    }
    return report


def _fixed_ms(table, arch) -> float:
    """The calibration's fixed cost of ``arch``'s occupied slots outside their layers: no part
    of what the in-situ hooks time."""
    overheads = (table.meta.get("calibration") or {}).get("overheads") or {}
    return sum(overheads.get(slot, {}).get("outside_ms", 0.0) for slot in arch.keys())


def _corrected(p, backbone_ref: float) -> float:
    """A whole network's time with the machine's drift taken out: at the table's speed when
    the measurement was scaled to it, else the backbone's median plus the paired difference."""
    return p.a_scaled_ms if p.a_scaled_ms is not None else backbone_ref + p.diff_ms


def _spread(values: list[float]) -> dict | None:
    return {"min": min(values), "median": _median(values), "max": max(values)} if values else None


def _ceiling_noise(case: dict) -> float:
    """A network's two-pass disagreement of its temporal part (0 with one pass)."""
    p = case["temporal_ms"]["passes"]
    return abs(p[0] - p[1]) if len(p) >= 2 else 0.0


def _ceiling(runs: list[dict], archs: list, backbone_ref: float) -> dict:
    """Pass 2 predicting pass 1: the best any predictor can do against this noise."""
    if len(runs) < 2:
        return {"spearman": None, "kendall": None, "temporal_mape": None, "temporal_within_10pct": None,
                "passes": len(runs)}
    keys = [str(a) for a in archs if not isinstance(runs[0].get(str(a)), Exception)
            and not isinstance(runs[1].get(str(a)), Exception)]
    ref2 = _median([runs[1][k].b_ms for k in keys])
    one = [_corrected(runs[0][k], backbone_ref) for k in keys]
    two = [_corrected(runs[1][k], ref2) for k in keys]
    t = temporal_accuracy([(runs[1][str(a)].diff_ms, runs[0][str(a)].diff_ms) for a in archs
                           if str(a) in keys and a.total_layers > 0])
    whole = accuracy([(runs[1][k].a_ms, runs[0][k].a_ms) for k in keys])
    return {"spearman": spearman(two, one), "kendall": kendall(two, one), "temporal_mape": t["mape"],
            "temporal_within_10pct": t["within_10pct"], "temporal_spearman": t["spearman"],
            "latency_mape": whole["mape"], "passes": len(runs)}


def _action_report(cases: list[dict]) -> dict:
    """ΔLatency: right sign, and within ±20 %, over the actions whose measured Δ exceeds
    twice its paired standard error; ΔMemory within ±10 % (or 64 KiB) of the measured one."""
    if not cases:
        return {"n": 0}
    clear = [c for c in cases if abs(c["latency_ms"]["measured"]) > 2 * c["latency_ms"]["noise_se"]]

    def shares(rows):  # (predicted, measured, allowance ms): right sign; and within max(±20 %, allowance)
        if not rows:
            return None, None
        sign = [(p > 0) == (m > 0) for p, m, _ in rows]
        within = [s and abs(p - m) <= max(0.2 * abs(m), allow) for s, (p, m, allow) in zip(sign, rows)]
        return sum(sign) / len(rows), sum(within) / len(rows)

    def share(pred_key):
        return shares([(c["latency_ms"][pred_key], c["latency_ms"]["measured"], 0.0) for c in clear])

    sign, within = share("predicted")
    # Within ±20 % or within twice the measurement's own standard error: where the prediction
    # is as close as this many rounds can tell.
    _, or_noise = shares([(c["latency_ms"]["predicted"], c["latency_ms"]["measured"], 2 * c["latency_ms"]["noise_se"])
                          for c in clear])
    situ = [c for c in cases if c["latency_ms"]["in_situ"] is not None
            and abs(c["latency_ms"]["in_situ"]) > 2 * c["latency_ms"]["in_situ_se"]]
    situ_sign, situ_within = shares([(c["latency_ms"]["predicted_in_layers"], c["latency_ms"]["in_situ"], 0.0)
                                     for c in situ])
    # What a prediction equal to the true Δ would score against this noise: each action's chance
    # that its measurement (normal, its standard error) lands within ±20 % of the truth.
    chance = [math.erf(0.2 * abs(c["latency_ms"]["measured"]) / (max(c["latency_ms"]["noise_se"], 1e-9) * math.sqrt(2)))
              for c in clear]
    ceiling = sum(chance) / len(chance) if chance else None
    # The same score for the action's second pass against its first: what a timing of its own
    # reproduces to (the two-pass ceiling; None with one pass).
    two = [(c["latency_ms"]["later_passes"][0], c["latency_ms"]["measured"], 0.0) for c in clear
           if c["latency_ms"].get("later_passes")]
    two_pass = shares(two)[1]
    sign_u, within_u = share("predicted_uncalibrated")
    # The error a search's ΔLatency carries: RMS of predicted − measured over the actions above
    # noise, and what remains of it once the measurement's own noise is taken out (the model's).
    err2 = [(c["latency_ms"]["predicted"] - c["latency_ms"]["measured"]) ** 2 for c in clear]
    rms = math.sqrt(sum(err2) / len(err2)) if err2 else None
    noise2 = sum(c["latency_ms"]["noise_se"] ** 2 for c in clear) / len(clear) if clear else 0.0
    model = math.sqrt(max(rms ** 2 - noise2, 0.0)) if rms is not None else None
    mem = [c for c in cases if "memory_bytes" in c]
    mem_ok = [abs(c["memory_bytes"]["predicted"] - c["memory_bytes"]["measured"])
              <= max(0.10 * abs(c["memory_bytes"]["measured"]), 65536) for c in mem]
    return {"n": len(cases), "above_noise": len(clear), "right_sign": sign, "right_sign_within_20pct": within,
            "right_sign_within_20pct_or_2se": or_noise, "ceiling_within_20pct": ceiling,
            "two_pass_within_20pct": two_pass,
            "median_noise_se_ms": _median([c["latency_ms"]["noise_se"] for c in cases]),
            "error_rms_ms": rms, "model_error_rms_ms": model,
            "uncalibrated": {"right_sign": sign_u, "right_sign_within_20pct": within_u},
            "in_situ": {"above_noise": len(situ), "right_sign": situ_sign, "right_sign_within_20pct": situ_within},
            "latency_spearman": spearman([c["latency_ms"]["predicted"] for c in cases],
                                         [c["latency_ms"]["measured"] for c in cases]),
            "memory_n": len(mem), "memory_within_10pct_or_64kib": sum(mem_ok) / len(mem) if mem else None}


def _median(values):
    if not values:
        return None
    s = sorted(values)
    return s[len(s) // 2] if len(s) % 2 else (s[len(s) // 2 - 1] + s[len(s) // 2]) / 2


def table_protocol(table, base: LutConfig, repeats: int | None = None, warmup: int | None = None) -> LutConfig:
    """The protocol ``table`` was measured with (backend, device, the backend's options such as
    threads and clock, repeats, warm-up), on top of ``base`` for anything the table does not
    record: validation measures whole networks the same way the table measured their parts."""
    fp, proto = table.fingerprint, table.meta.get("protocol", {})
    backend = fp.get("backend", base.backend)
    options = to_dict(base.options) if backend == base.backend else {}
    try:
        own = {f.name for f in dataclasses.fields(LutConfig.options_class(backend))}
    except ConfigError:
        own = set()  # a backend this install lacks: the replace below names it
    options.update({k: v for k, v in fp.items() if k in own and isinstance(v, (str, int, float))})
    changes = {"backend": backend, "device": fp.get("device", base.device), "options": options}
    for key, given in (("repeats", repeats), ("warmup", warmup)):
        value = given if given is not None else proto.get(key)
        if value is not None:
            changes[key] = value
    try:
        return dataclasses.replace(base, **changes)
    except ConfigError:
        raise
    except ValueError as exc:
        raise ConfigError(f"lut: {exc}") from None
