"""``hwnas lut``: build, inspect, use and check lookup tables (METHOD.md §2).

    hwnas lut build CONFIG|--grid G [--device D] [--backend B] --out LUT.parquet
    hwnas lut show LUT [CONFIG] [--json]             rows by provenance, calibration terms
    hwnas lut predict LUT CONFIG --arch ARCH [--uncalibrated] [--json]
    hwnas lut validate LUT CONFIG [--samples N] [--passes 2] [--actions N] [--action-passes 2] [--json]
    hwnas lut calibrate LUT CONFIG [--repeats N] [--json]   fit the correction terms (sidecar)
    hwnas lut needs LUT CONFIG [--json]            what pricing another space would reuse/measure
    hwnas lut merge OUT LUT... [--allow-other-device]
    hwnas lut export-bundle CONFIG --out DIR       Core ML models + manifest + runner for a Mac
    hwnas lut import-results RESULTS --out LUT     merge what the runner measured
"""
from __future__ import annotations

import dataclasses
import math
import sys

from core.config import ConfigError, load_yaml, parse, to_dict
from nas.cli.common import CliError, emit_json, load_experiment


def register(sub) -> None:
    lut = sub.add_parser("lut", help="lookup tables: build, show, predict, validate, calibrate, needs, merge, "
                                         "export-bundle, import-results").add_subparsers(
        dest="action", required=True)

    p = lut.add_parser("build", help="measure a space's operators and backbone (resumes, skips measured rows)")
    p.add_argument("config", nargs="?", help="experiment YAML (its space and lut sections)")
    p.add_argument("--grid", help="YAML with an extra grid (channels, frames, height, width, text_tokens lists)")
    p.add_argument("--out", required=True, help="the table, LUT.parquet (its sidecar is LUT.parquet.json)")
    _protocol_args(p)
    p.add_argument("--allow-other-device", action="store_true", help="add to a table of another device")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    p.add_argument("--json", action="store_true", help="print the table's summary as one JSON document")
    p.set_defaults(func=run_build)

    p = lut.add_parser("show", help="a table's device, protocol, rows (by provenance), calibration, estimator error")
    p.add_argument("lut", help="the table, LUT.parquet")
    p.add_argument("config", nargs="?", help="experiment YAML: also list the entries pricing it would estimate")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run_show)

    p = lut.add_parser("predict", help="latency and peak memory of an architecture")
    p.add_argument("lut")
    p.add_argument("config")
    p.add_argument("--arch", required=True, help="canonical string, JSON, 'empty' or 'full'")
    p.add_argument("--allow-other-device", action="store_true", help="price a space of another dtype")
    p.add_argument("--statistic", default="median", help="median, p10 or p90 of each row's latency")
    p.add_argument("--uncalibrated", action="store_true", help="the plain additive model (no calibration terms)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run_predict)

    p = lut.add_parser("validate", help="measure random whole networks and compare with the prediction")
    p.add_argument("lut")
    p.add_argument("config")
    p.add_argument("--samples", type=int, default=20, help="random whole networks to measure (default 20)")
    p.add_argument("--seed", type=int, default=0, help="seed of the sampled networks and actions")
    p.add_argument("--repeats", type=int, help="A,B rounds per network (default: the table's repeats)")
    p.add_argument("--warmup", type=int, help="warm-up rounds per network (default: the table's)")
    p.add_argument("--statistic", default="median", help="compare the median, p10 or p90 latency")
    p.add_argument("--passes", type=int, default=2, help="independent passes (2 gives the noise ceiling)")
    p.add_argument("--actions", type=int, default=0, help="random (parent, action) pairs to check")
    p.add_argument("--action-repeats", type=int, help="child, parent, backbone rounds per action (default: --repeats)")
    p.add_argument("--action-passes", type=int, default=1,
                   help="independent passes over the actions (2 gives their two-pass ceiling)")
    p.add_argument("--memory", default="real", help="real (the device allocator's peak), rss (resident set of a fresh "
                                                    "process; cpu) or tracker (the build's own meter)")
    p.add_argument("--as-measured", action="store_true",
                   help="compare paired times as measured, not scaled to the speed of the table's backbone row")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run_validate)

    p = lut.add_parser("calibrate", help="fit per-operator-and-slot correction terms from paired networks")
    p.add_argument("lut")
    p.add_argument("config")
    p.add_argument("--repeats", type=int, help="A,B rounds per network (default: the table's repeats)")
    p.add_argument("--warmup", type=int)
    p.add_argument("--source", help="both (scales, slot costs and operators' first use from the temporal layers "
                                    "timed inside the network, the hooks' cost from network - backbone; cpu, the "
                                    "default there), in_situ, or paired (network - backbone; the default elsewhere)")
    p.add_argument("--random-networks", type=int,
                   help="random networks measured beside the structured design, so the terms hold for "
                        "networks like those a search meets (default: 12, lookup_tables.calibrate.RANDOM_NETWORKS)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run_calibrate)

    p = lut.add_parser("needs", help="what a table holds, estimates and lacks for a space")
    p.add_argument("lut")
    p.add_argument("config")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run_needs)

    p = lut.add_parser("merge", help="merge tables of one device into OUT")
    p.add_argument("out")
    p.add_argument("luts", nargs="+")
    p.add_argument("--allow-other-device", action="store_true")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run_merge)

    p = lut.add_parser("export-bundle", help="convert each operator to Core ML for measuring on a Mac")
    p.add_argument("config")
    p.add_argument("--out", required=True, help="bundle directory")
    p.add_argument("--grid", help="YAML with an extra grid")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run_export)

    p = lut.add_parser("import-results", help="merge a bundle runner's results into a table")
    p.add_argument("results", help="results JSON written by the bundle's run_coreml.py")
    p.add_argument("--out", required=True, help="table to create or extend")
    p.add_argument("--allow-other-device", action="store_true")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run_import)


def _protocol_args(p) -> None:
    p.add_argument("--backend", help="torch, onnxruntime, coreml or analytic (default: the config's lut.backend)")
    p.add_argument("--device", help="cpu, cuda, cuda:N, mps; for analytic a device spec name")
    p.add_argument("--repeats", type=int, help="timed calls per entry (default: the config's lut.repeats)")
    p.add_argument("--warmup", type=int, help="untimed calls before them (default: the config's lut.warmup)")
    p.add_argument("--threads", type=int, help="measuring threads (torch, onnxruntime: lut.options.threads)")
    p.add_argument("--clock", help="wall (elapsed) or thread (CPU time of the measuring thread; cpu, 1 thread)")
    p.add_argument("--memory-limit-mib", type=float,
                   help="device memory: an entry whose peak exceeds it is marked oom (default: the config's)")


def _lut_config(args, exp=None):
    from lookup_tables.config import GridConfig, LutConfig

    base = exp.lut if exp is not None else LutConfig()
    changes = {k: getattr(args, k) for k in ("backend", "device", "repeats", "warmup", "memory_limit_mib")
               if getattr(args, k, None) is not None}
    # --threads and --clock set backend options (lut.options); another --backend starts from its defaults
    options = to_dict(base.options) if changes.get("backend", base.backend) == base.backend else {}
    options.update({k: getattr(args, k) for k in ("threads", "clock") if getattr(args, k, None) is not None})
    if getattr(args, "grid", None):
        changes["grid"] = parse(GridConfig, load_yaml(args.grid), "grid")
    try:
        return dataclasses.replace(base, **changes, options=options)
    except ConfigError:
        raise
    except ValueError as exc:
        raise ConfigError(f"lut: {exc}") from None


def _space(exp):
    from search_spaces.space import SearchSpace

    return SearchSpace(exp.space)


def run_build(args) -> int:
    from lookup_tables import build_table

    if args.config is None and args.grid is None:
        raise CliError("lut build: give an experiment CONFIG, a --grid, or both")
    exp = load_experiment(args.config) if args.config else None
    cfg = _lut_config(args, exp)
    table = build_table(_space(exp) if exp else None, cfg, args.out, progress=not args.no_progress,
                        allow_other_device=args.allow_other_device)
    summary = table.summary()
    if args.json:
        emit_json(summary)
    else:
        print(f"{args.out}: {summary['rows']} rows ("
              + ", ".join(f"{n} {status}" for status, n in summary["by_status"].items()) + ")")
    return 0


def _fmt_bytes(n) -> str:
    return "-" if n is None or (isinstance(n, float) and math.isnan(n)) else f"{n / 2**20:.2f} MiB"


def run_show(args) -> int:
    from lookup_tables import LookupTable
    from lookup_tables.unsure import by_provenance

    table = LookupTable.load(args.lut)
    summary = table.summary()
    summary["estimator_loo"] = table.estimator.loo_report()
    summary["provenance"] = by_provenance(table, _space(load_experiment(args.config)) if args.config else None)
    if args.json:
        summary["entries"] = table.records()
        emit_json(summary)
        return 0
    from rich.console import Console
    from rich.table import Table

    fp = summary["fingerprint"]
    console = Console()
    protocol = ", ".join(f"{k} {v}" for k, v in summary["protocol"].items())
    console.print(f"{args.lut}: {fp.get('backend')} on {fp.get('device')} ({fp.get('device_name')}), "
                  f"{fp.get('dtype')}, {fp.get('threads')} thread(s); protocol: {protocol}")
    provenance = {k: prov for prov, keys in summary["provenance"].items() if prov != "estimated" for k in keys}
    t = Table()
    for col in ("key", "provenance", "status", "latency ms (p10-p90)", "memory", "reason"):
        t.add_column(col, overflow="fold")
    for r in table.records():
        lat = "-" if r["latency_ms"] is None else f"{r['latency_ms']:.3f} ({r['latency_p10_ms']:.3f}-{r['latency_p90_ms']:.3f})"
        t.add_row(r["key"], provenance.get(r["key"], ""), r["status"], lat, _fmt_bytes(r["memory_bytes"]),
                  r["reason"] or "")
    console.print(t)
    console.print("rows by provenance: " + ", ".join(
        f"{prov}: {len(keys)}" for prov, keys in summary["provenance"].items() if prov != "estimated"))
    estimated = summary["provenance"].get("estimated")
    if estimated is not None:
        console.print(f"estimated (not rows; {args.config} needs them): {len(estimated)}")
        for k in estimated:
            console.print(f"  {k}")
    cal = summary["calibration"]
    if cal:
        console.print(f"calibration ({cal['fitted_at']}, {len(cal['observations'])} networks, "
                      f"source {cal.get('source') or cal.get('protocol', {}).get('source', 'paired')}, residual RMS "
                      f"{cal['residual_rms_ms']:.3f} ms): scale ± sd per operator and slot")
        for key, term in cal["terms"].items():
            console.print(f"  {term['op']}@{term['slot']}: {term['scale']:.3f} ± {term['scale_sd']:.3f} ({key})")
        for line in _fixed_costs(cal):
            console.print(line)
    for op, err in summary["estimator_loo"].items():
        lat = err["latency_ms"]["rms_relative_error"]
        console.print(f"estimate error (leave-one-out RMS) {op}: latency "
                      f"{'-' if lat is None else f'{lat:.1%}'} over {err['latency_ms']['tested']} rows")
    return 0


def run_predict(args) -> int:
    from lookup_tables import LookupTable

    table = LookupTable.load(args.lut).with_statistic(args.statistic)
    space = _space(load_experiment(args.config))
    pred = table.predict(space, space.parse(args.arch), allow_other_device=args.allow_other_device,
                         calibrated=not args.uncalibrated)
    if args.json:
        emit_json(pred.as_dict())
        return 0
    print(f"{pred.arch}: {pred.latency_ms:.3f} ms ± {pred.latency_error_ms:.3f}, "
          f"{_fmt_bytes(pred.memory_bytes)} ± {_fmt_bytes(pred.memory_error_bytes)} [{pred.status}]"
          + (f" (calibrated; uncalibrated {pred.uncalibrated_latency_ms:.3f} ms)" if pred.calibrated else ""))
    if not (pred.calibrated or args.uncalibrated) and pred.arch != "empty" and table.meta.get("calibration"):
        print("  not calibrated: the table's calibration terms price other shapes (hwnas lut calibrate for this space)")
    for key in pred.missing:
        print(f"  estimated (not measured): {key}")
    for reason in pred.reasons:
        print(f"  {reason}")
    return 0


def run_validate(args) -> int:
    from lookup_tables import LookupTable
    from lookup_tables.validate import table_protocol, validate

    if args.samples < 1:
        raise CliError("--samples must be at least 1")
    table = LookupTable.load(args.lut)
    exp = load_experiment(args.config)
    cfg = table_protocol(table, exp.lut, args.repeats, args.warmup)
    if (args.passes < 1 or args.action_passes < 1 or args.actions < 0
            or (args.action_repeats is not None and args.action_repeats < 2)):
        raise CliError("--passes and --action-passes must be at least 1, --actions non-negative and --action-repeats "
                       "at least 2")
    report = validate(table, _space(exp), cfg, samples=args.samples, seed=args.seed, statistic=args.statistic,
                      passes=args.passes, actions=args.actions, memory=args.memory, scale_to_table=not args.as_measured,
                      action_rounds=args.action_repeats, action_passes=args.action_passes,
                      progress=None if args.json else lambda i, a, n: print(f"[{i + 1}/{n}] {a}", file=sys.stderr))
    if args.json:
        emit_json(report)
        return 0
    for what, label in (("latency", "whole-network latency as timed (not speed-scaled)"),
                        ("memory", "whole-network memory")):
        a = report[what]
        if a["n"]:
            print(f"{label}: {a['within_5pct']:.0%} within ±5 %, {a['within_10pct']:.0%} within ±10 %, "
                  f"MAPE {a['mape']:.2%}, RMSE {a['rmse']:.4g} over {a['n']} networks")
    print(f"memory measured by: {report['memory_meter'] or 'nothing (this backend does not run the network)'}")
    speed = report["machine_speed"]
    if report["scaled_to_table_speed"] and speed:
        print(f"machine speed: the backbone took {speed['min']:.2f}-{speed['max']:.2f}x "
              f"(median {speed['median']:.2f}x) the table's {report['table_backbone_ms']:.3f} ms; "
              "paired times are stated at the table's speed")
    lat, tem, ceil = report["latency"], report["temporal"], report["ceiling"]
    print(f"rank (drift-corrected, paired): Spearman {_f(lat['spearman'])}, Kendall {_f(lat['kendall'])}; "
          f"two-pass ceiling Spearman {_f(ceil['spearman'])}")
    print(f"temporal part: MAPE {_f(tem['mape'], '.1%')}, {_f(tem['within_10pct'], '.0%')} within ±10 % "
          f"({_f(tem.get('within_10pct_or_ceiling'), '.0%')} within ±10 % or the two-pass noise), Spearman "
          f"{_f(tem['spearman'])}; two-pass ceiling MAPE {_f(ceil['temporal_mape'], '.1%')}")
    act = report["actions"]
    if act["n"]:
        print(f"actions: {act['n']} checked, {act['above_noise']} above noise: right sign {_f(act['right_sign'], '.0%')}, "
              f"right sign and within ±20 % {_f(act['right_sign_within_20pct'], '.0%')} (or within twice the "
              f"measurement's standard error: {_f(act['right_sign_within_20pct_or_2se'], '.0%')}; a true "
              f"prediction would score {_f(act.get('ceiling_within_20pct'), '.0%')} against this noise"
              + (f", the second pass scores {act['two_pass_within_20pct']:.0%} against the first"
                 if act.get("two_pass_within_20pct") is not None else "") + "); "
              f"ΔLatency error RMS {_f(act.get('error_rms_ms'), '.3f')} ms, "
              f"{_f(act.get('model_error_rms_ms'), '.3f')} ms beyond the measurement's noise; ΔMemory within ±10 % "
              f"{_f(act['memory_within_10pct_or_64kib'], '.0%')}")
    spread = report["measurement_spread_p10_p90"]["median"]
    if spread is not None:
        print(f"measurement spread (p90-p10)/median: {spread:.2%} (median over networks)")
    for c in report["worst_latency"][:3]:
        print(f"worst latency: {c['arch']}: {c['latency_ms']['rel_error']:+.2%}")
    for c in report["failed"]:
        print(f"not measured: {c['arch']}: {c['status']} {c['reason']}")
    return 0


def _fixed_costs(cal: dict) -> list[str]:
    return ([f"  fixed cost of an occupied {slot}: {o['ms']:+.3f} ± {o['sd_ms']:.3f} ms "
             f"({o['in_layers_ms']:+.3f} in its layers, {o['outside_ms']:+.3f} outside)"
             for slot, o in (cal.get("overheads") or {}).items()]
            + [f"  first {op} in a network: {o['ms']:+.3f} ± {o['sd_ms']:.3f} ms"
               for op, o in (cal.get("first_use") or {}).items()])


def _f(v, fmt=".3f") -> str:
    return "-" if v is None else format(v, fmt)


def run_calibrate(args) -> int:
    from lookup_tables import LookupTable
    from lookup_tables.calibrate import RANDOM_NETWORKS, calibrate
    from lookup_tables.validate import table_protocol

    table = LookupTable.load(args.lut)
    exp = load_experiment(args.config)
    cfg = table_protocol(table, exp.lut, args.repeats, args.warmup)
    source = args.source or ("both" if cfg.backend == "torch" and cfg.device == "cpu" else "paired")
    doc = calibrate(table, _space(exp), cfg, source=source,
                    random_networks=RANDOM_NETWORKS if args.random_networks is None else args.random_networks,
                    progress=None if args.json else lambda i, a, n: print(f"[{i + 1}/{n}] {a}", file=sys.stderr))
    table.save(args.lut)
    if args.json:
        emit_json(doc)
        return 0
    terms = len(doc["terms"]) + len(doc.get("overheads") or {}) + len(doc.get("first_use") or {})
    print(f"{args.lut}: {terms} calibration terms from {len(doc['observations'])} networks "
          f"(residual RMS {doc['residual_rms_ms']:.3f} ms)")
    for term in doc["terms"].values():
        print(f"  {term['op']}@{term['slot']}: scale {term['scale']:.3f} ± {term['scale_sd']:.3f}")
    for line in _fixed_costs(doc):
        print(line)
    return 0


def run_needs(args) -> int:
    from lookup_tables import LookupTable

    table = LookupTable.load(args.lut)
    exp = load_experiment(args.config)
    report = table.needs(_space(exp), exp.lut.grid)
    if args.json:
        emit_json(report)
        return 0
    print(f"exact hits: {len(report['hits'])}, estimated: {len(report['estimated'])}, "
          f"unavailable: {len(report['unavailable'])}")
    for e in report["estimated"]:
        err = e["latency_rel_error"]
        print(f"  estimate {e['key']} (expected latency error {'-' if err is None else f'{err:.1%}'})")
    for key in report["unavailable"]:
        print(f"  cannot estimate {key}")
    if report["to_measure"]:
        print(f"to price it exactly, measure these {len(report['to_measure'])}: "
              f"hwnas lut build {args.config} --out {args.lut}")
    return 0


def run_merge(args) -> int:
    from lookup_tables import LookupTable

    tables = [LookupTable.load(p) for p in args.luts]
    merged = tables[0]
    for other in tables[1:]:
        merged = merged.merge(other, allow_other_device=args.allow_other_device)
    merged.save(args.out)
    if args.json:
        emit_json(merged.summary())
    else:
        print(f"{args.out}: {len(merged)} rows from {len(tables)} tables")
    return 0


def run_export(args) -> int:
    from lookup_tables import LutError
    from lookup_tables.bundle import export_bundle

    exp = load_experiment(args.config)
    manifest = export_bundle(_space(exp), _lut_config(args, exp).grid, args.out, progress=not args.no_progress)
    failed = [e for e in manifest["entries"] if e["status"] != "ok"]
    if args.json:
        emit_json(manifest)
    else:
        print(f"{args.out}: {len(manifest['entries']) - len(failed)}/{len(manifest['entries'])} subjects converted; "
              f"on a Mac run: python {args.out}/run_coreml.py --compute-unit CPU_AND_NE, then hwnas lut "
              f"import-results {args.out}/results_CPU_AND_NE.json --out LUT.parquet")
    if failed:  # the bundle keeps every subject that converted; the failures are its error rows
        raise LutError(f"{len(failed)} subject(s) did not convert to Core ML, first {failed[0]['key']}: "
                       f"{failed[0]['reason']} (the others are in {args.out}/manifest.json)")
    return 0


def run_import(args) -> int:
    from lookup_tables.bundle import import_results

    table = import_results(args.results, args.out, allow_other_device=args.allow_other_device)
    if args.json:
        emit_json(table.summary())
    else:
        print(f"{args.out}: {len(table)} rows {table.summary()['by_status']}")
    return 0
