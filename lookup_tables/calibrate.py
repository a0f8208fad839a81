"""Calibration: a small correction of the additive model, fitted from paired whole networks.

An operator measured alone does not always cost the same inside the network (launch
overhead, layout conversions, caches that are warm or cold). For each operator family at
each slot (one OpShape key) a scale ``s_k`` multiplies the table's figure, and fixed costs
are added that do not grow with the layers:

* an occupied slot costs ``a_slot`` inside its layers (its input arrives from the backbone)
  and ``c_slot`` outside them (the backbone's hook that hands the slot's features to the
  layers and back; 0.02-0.19 ms on the 2-core CPU, by run);
* the first layer of an operator anywhere in the network costs ``f_op`` more than the next
  (its kernels' code and buffers are cold after the backbone's own layers): on the 2-core CPU
  three-slot networks paid a fixed in-layer cost of 0.25 ms on average, where a cost per slot
  fitted on one-slot networks summed to 0.37 (lut_paired_analysis.py on
  lut_paired_tiny_cpu_lead_in.json).

``temporal(n) = Σ_k count_nk · op_k · s_k + Σ_slot [slot occupied] (a_slot + c_slot)
+ Σ_op [op in n] f_op``.

The temporal part of a handful of networks is measured paired with the backbone
(``lookup_tables.paired``); the terms are the posterior of a Bayesian linear regression with
priors ``s_k ~ N(1, PRIOR_SD²)`` and fixed costs ``~ N(0, (OVERHEAD_PRIOR · one layer of the
median operator)²)``, and each observation's noise from its standard error (plus
``NOISE_FLOOR`` of its value): a term the networks say little about stays near its prior
with a wide uncertainty. Sources:

* ``paired``: network − backbone, end to end (noisy on a shared CPU);
* ``in_situ``: the temporal layers timed inside the network by hooks (far less noise, blind
  to ``c_slot``);
* ``both`` (the default where layers can be timed inside the network, i.e. CPU): each network
  gives both rows; the precise in-situ rows pin the scales, ``a_slot`` and ``f_op``, the
  paired rows ``c_slot``.

The terms, their standard deviations and the networks they came from are stored in the
table's sidecar (``meta["calibration"]``: ``terms`` per OpShape key, ``overheads`` per slot,
``first_use`` per operator); ``predict`` applies them unless asked not to.

Default design: for each slot and operator, that operator alone at that slot, with one layer
and with its most layers (scale against slot cost); for each operator, one layer of it at
every slot that offers it (a slot's cost against the operator's first use); and
``RANDOM_NETWORKS`` random networks like those a search meets. A layer costs less inside a
network with more temporal layers, which no term of the model states: fitted on structured
networks alone the terms hold for those, and averaged over random ones they hold where
predictions are used (the in-situ temporal part of 29 random networks over-predicted by
0.12 ms on average with the structured design alone, by -0.01 with the random networks:
lut_paired_analysis.py on lut_paired_tiny_cpu_first_use.json and ..._random_design.json).
"""
from __future__ import annotations

import numpy as np

from lookup_tables.errors import LutError
from lookup_tables.paired import LEAD_IN
from lookup_tables.profilers.base import now_iso
from search_spaces.architecture import Architecture, Layer

PRIOR_SD = 0.5
OVERHEAD_PRIOR = 0.5  # prior sd of a slot's fixed cost, in layers of the median operator
NOISE_FLOOR = 0.02
RANDOM_NETWORKS = 12
DESIGN_SEED = 1


def default_design(space, random_networks: int = RANDOM_NETWORKS) -> list[Architecture]:
    from lookup_tables.validate import sample_architectures

    alone = [Architecture({slot.name: Layer(op, n)}) for slot in space.slots for op in slot.ops
             for n in sorted({1, slot.max_layers})]
    ops = list(dict.fromkeys(op for slot in space.slots for op in slot.ops))
    everywhere = [Architecture({slot.name: Layer(op, 1) for slot in space.slots if op in slot.ops}) for op in ops]
    design = alone + [a for a in everywhere if len(a) > 1]
    if random_networks > 0:
        taken = set(design) | {space.empty}
        pool = sample_architectures(space, random_networks + len(taken) + 1, DESIGN_SEED)
        design += [a for a in pool if a not in taken][:random_networks]
    return design


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


def fit(table, space, observations: list[dict], prior_sd: float = PRIOR_SD, noise_floor: float = NOISE_FLOOR,
        source: str = "paired") -> dict:
    """``observations``: [{"arch", "temporal_ms", "se_ms"}] (with ``source`` ``both``: also
    "paired_ms", "paired_se_ms", "in_situ_ms", "in_situ_se_ms"). Returns the calibration document."""
    archs = [space.parse(o["arch"]) for o in observations]
    feats = [_features(table, space, a) for a in archs]
    keys = sorted({k for f in feats for k in f})
    if not keys:
        raise LutError("calibration needs networks with temporal layers")
    slots = sorted({s for a in archs for s in a.keys()})
    outside = slots if source == "both" else []  # a cost the in-situ hooks cannot see
    ops = sorted({layer.op for a in archs for layer in a.values()})
    rows, y, var = [], [], []

    def add(f, arch, value, se, paired):
        present = {layer.op for layer in arch.values()}
        rows.append([f.get(k, 0.0) for k in keys] + [1.0 if s in arch else 0.0 for s in slots]
                    + [1.0 if paired and s in arch else 0.0 for s in outside]
                    + [1.0 if op in present else 0.0 for op in ops])
        y.append(value)
        var.append(max(se, 1e-6) ** 2 + (noise_floor * abs(value)) ** 2)

    for o, f, a in zip(observations, feats, archs):
        if source == "both":
            add(f, a, o["in_situ_ms"], o["in_situ_se_ms"], False)
            add(f, a, o["paired_ms"], o["paired_se_ms"], True)
        else:
            add(f, a, o["temporal_ms"], o["se_ms"], False)
    X, y, W = np.array(rows), np.array(y), np.diag(1.0 / np.array(var))
    # Fixed costs are priced against one layer of the median operator measured here.
    one_layer = float(np.median([table.row(space.slot(s).shape(a[s].op).key)["latency_ms"]
                                 for a in archs for s in a.keys()]))
    sigma_o = OVERHEAD_PRIOR * one_layer
    n_fixed = len(slots) + len(outside) + len(ops)
    prior_mean = np.array([1.0] * len(keys) + [0.0] * n_fixed)
    prior_prec = np.array([1.0 / prior_sd ** 2] * len(keys) + [1.0 / sigma_o ** 2] * n_fixed)
    A = X.T @ W @ X + np.diag(prior_prec)
    b = X.T @ W @ y + prior_prec * prior_mean
    cov = np.linalg.inv(A)
    mean = cov @ b
    residual = y - X @ mean
    terms = {}
    for i, k in enumerate(keys):
        op, slot = _op_slot(space, k)
        terms[k] = {"op": op, "slot": slot, "scale": float(mean[i]), "scale_sd": float(np.sqrt(cov[i, i])),
                    "networks": sum(k in f for f in feats)}
    overheads = {}
    for j, s in enumerate(slots):
        i = len(keys) + j
        o = len(keys) + len(slots) + outside.index(s) if s in outside else None
        c = float(mean[o]) if o is not None else 0.0
        total_var = cov[i, i] + (cov[o, o] + 2 * cov[i, o] if o is not None else 0.0)
        overheads[s] = {"ms": float(mean[i]) + c, "sd_ms": float(np.sqrt(max(total_var, 0.0))),
                        "in_layers_ms": float(mean[i]), "outside_ms": c, "networks": sum(s in a.keys() for a in archs)}
    first = len(keys) + len(slots) + len(outside)
    first_use = {op: {"ms": float(mean[first + j]), "sd_ms": float(np.sqrt(cov[first + j, first + j])),
                      "networks": sum(any(layer.op == op for layer in a.values()) for a in archs)}
                 for j, op in enumerate(ops)}
    return {"terms": terms, "overheads": overheads, "first_use": first_use, "fitted_at": now_iso(),
            "prior_sd": prior_sd,
            "overhead_prior_sd_ms": sigma_o, "noise_floor": noise_floor, "source": source,
            "observations": observations,
            "residual_rms_ms": float(np.sqrt(np.mean(residual ** 2))) if len(residual) else None}


def _op_slot(space, key: str) -> tuple[str, str]:
    for slot in space.slots:
        for op in slot.ops:
            if slot.shape(op).key == key:
                return op, slot.name
    return key.split("|", 1)[0], "?"


SOURCES = ("paired", "in_situ", "both")


def calibrate(table, space, lut_config, archs: list[Architecture] | None = None, rounds: int | None = None,
              warmup: int | None = None, progress=None, source: str = "paired",
              random_networks: int = RANDOM_NETWORKS) -> dict:
    """Measure ``archs`` (default ``default_design`` with ``random_networks``) paired with the backbone, fit the terms,
    store them in ``table.meta["calibration"]`` (save the table to keep them) and return them.
    ``progress(i, arch, n)`` is called before each network. ``source``: what a network's
    temporal part is taken to be: ``paired`` (network − backbone,
    the end-to-end difference), ``in_situ`` (its temporal layers timed inside the network:
    far less noise, blind to the slot's fixed cost) or ``both`` (scales from the in-situ rows,
    a fixed cost per slot from the paired ones)."""
    if source not in SOURCES:
        raise LutError(f"calibration source {source!r}; allowed: {', '.join(SOURCES)}")
    from lookup_tables.validate import table_meter

    # Stated at the table's speed (lookup_tables.paired): a network measured while the machine
    # ran slower than at the build would otherwise pull its terms up by the slowdown.
    meter = table_meter(table, space, lut_config, rounds=rounds, warmup=warmup)
    if random_networks < 0:
        raise LutError(f"random networks: {random_networks}; a count, 0 or more")
    archs = archs or default_design(space, random_networks)
    observations = []
    for i, arch in enumerate(archs):
        if progress:
            progress(i, str(arch), len(archs))
        p = meter.measure(arch, space.empty)
        meter.forget(keep=(space.empty,))
        if source in ("in_situ", "both") and p.situ_diff_ms is None:
            raise LutError(f"the {lut_config.backend} backend on {lut_config.device} cannot time layers inside the network")
        t, se = (p.situ_diff_ms, p.situ_se_ms) if source == "in_situ" else (p.diff_ms, p.diff_se_ms)
        observations.append({"arch": str(arch), "temporal_ms": t, "se_ms": se, "backbone_ms": p.b_ms,
                             "paired_ms": p.diff_ms, "paired_se_ms": p.diff_se_ms,
                             "in_situ_ms": p.situ_diff_ms, "in_situ_se_ms": p.situ_se_ms,
                             "speed": p.speed})
    doc = fit(table, space, observations, source=source)
    doc["protocol"] = {"rounds": meter.rounds, "warmup": meter.warmup, "lead_in": LEAD_IN, "paired_with": "backbone",
                       "source": source, "scaled_to_table_backbone_ms": meter.ref_ms}
    table.meta["calibration"] = doc
    return doc
