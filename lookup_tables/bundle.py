"""Core ML bundles: measure on a Mac what this machine can only convert.

``export_bundle`` converts every grid subject (the space's operators, the user grid, the
backbone) with coremltools and writes ``models/*.mlpackage``, ``manifest.json`` and
``run_coreml.py``. On a Mac, ``python run_coreml.py --compute-unit CPU_AND_NE`` times each
model and writes ``results_CPU_AND_NE.json``; ``import_results`` turns that file into table
rows (backend ``coreml``, device = the compute unit). A conversion that fails is a manifest
entry with status ``error`` and its reason; the others are still exported.
``run_manifest`` measures a manifest with another profiler and writes the same results
format: how the round trip is tested off macOS.
"""
from __future__ import annotations

import json
import platform
from pathlib import Path

from core.config import to_dict
from core.errors import one_line
from core.io import atomic_json
from core.progress import as_progress
from lookup_tables.build import entry_label, op_options
from lookup_tables.errors import TableFileError
from lookup_tables.grid import grid_entries
from lookup_tables.memory import analytic_memory
from lookup_tables.profilers.base import Measurement, now_iso
from lookup_tables.table import LookupTable
from search_spaces.shapes import OpShape
from search_spaces.space import SearchSpace, SpaceConfig

FORMAT = 1
RUNNER = Path(__file__).with_name("coreml_runner.py")


def export_bundle(space: SearchSpace, grid, out_dir: str | Path, progress: bool = True) -> dict:
    from lookup_tables.profilers.coreml import convert, network_subject, op_subject

    out_dir = Path(out_dir)
    (out_dir / "models").mkdir(parents=True, exist_ok=True)
    manifest = {"format": FORMAT, "created": now_iso(), "space": to_dict(space.config),
                "grid": to_dict(grid) if grid is not None else None, "op_options": op_options(space),
                "precision": "float16", "target": "iOS18", "entries": []}
    entries = grid_entries(space, grid)
    with as_progress(progress) as shown:
        task = shown.task(f"converting {out_dir.name}", total=len(entries))
        for i, entry in enumerate(entries):
            task.update(description=f"converting {entry_label(entry.key)}")
            file = f"models/{i:04d}_{'backbone' if entry.shape is None else entry.shape.op}.mlpackage"
            record = {"key": entry.key, "kind": "backbone" if entry.shape is None else "op", "file": file,
                      "status": "ok", "reason": ""}
            try:
                if entry.shape is None:
                    module, inputs = network_subject(space, space.empty)
                else:
                    module, inputs = op_subject(entry.shape, op_options(space))
                record["inputs"] = [list(t.shape) for t in inputs]
                convert(module, inputs, out_dir / file)
            except Exception as exc:  # one operator that does not convert must not end the export
                record.update(status="error", reason=one_line(exc, with_type=True)[:300])
            manifest["entries"].append(record)
            atomic_json(out_dir / "manifest.json", manifest)
            task.update(advance=1)
    (out_dir / "run_coreml.py").write_text(RUNNER.read_text())
    return manifest


def load_manifest(bundle: str | Path) -> dict:
    path = Path(bundle) / "manifest.json" if Path(bundle).is_dir() else Path(bundle)
    try:
        manifest = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise TableFileError(f"{path}: not a readable bundle manifest ({exc})") from None
    if manifest.get("format") != FORMAT or "entries" not in manifest:
        raise TableFileError(f"{path}: not an hwnas bundle manifest (format {manifest.get('format')!r})")
    return manifest


def run_manifest(bundle: str | Path, profiler, out_path: str | Path) -> dict:
    """Measure every entry of a bundle's manifest with ``profiler`` (e.g. torch on CPU) and
    write a results file in the runner's format."""
    manifest = load_manifest(bundle)
    space = SearchSpace(SpaceConfig.from_dict(manifest["space"]))
    rows = []
    for e in manifest["entries"]:
        if e["status"] != "ok":
            rows.append({"key": e["key"], "status": e["status"], "reason": e["reason"]})
            continue
        m = profiler.measure_backbone(space) if e["kind"] == "backbone" else profiler.measure_op(OpShape.from_key(e["key"]))
        rows.append({"key": e["key"], **{k: v for k, v in m.as_dict().items() if k != "slot_live_bytes"},
                     "slot_live_bytes": m.slot_live_bytes})
    results = {"format": FORMAT, "manifest": manifest, "created": now_iso(),
               "device": {"compute_unit": profiler.config.device, "device_name": profiler.device_name(),
                          "machine": platform.machine(), "backend": profiler.name},
               "protocol": profiler.config.protocol(), "rows": rows}
    atomic_json(Path(out_path), results)
    return results


def import_results(results_path: str | Path, out_path: str | Path, allow_other_device: bool = False) -> LookupTable:
    """Rows of a runner's results file merged into the table at ``out_path`` (created if absent)."""
    path = Path(results_path)
    try:
        results = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise TableFileError(f"{path}: not a readable results file ({exc})") from None
    for key in ("format", "manifest", "device", "rows"):
        if key not in results:
            raise TableFileError(f"{path}: not a bundle results file (key {key!r} is missing)")
    manifest, device = results["manifest"], results["device"]
    dtype = manifest["space"].get("dtype", "float32")
    fingerprint = {"backend": device.get("backend", "coreml"), "device": device["compute_unit"],
                   "device_name": device.get("device_name"), "dtype": dtype, "threads": None,
                   "machine": device.get("machine"), "precision": manifest.get("precision"),
                   "bundle_created": manifest.get("created")}
    incoming = LookupTable(meta={"fingerprint": fingerprint, "protocol": results.get("protocol", {}),
                                 "created": now_iso(), "op_options": manifest.get("op_options"),
                                 "imported_from": str(path)})
    known = {e["key"] for e in manifest["entries"]}
    for row in results["rows"]:
        if row.get("key") not in known:
            raise TableFileError(f"{path}: row {row.get('key')!r} is not in the bundle's manifest")
        status = row.get("status", "error")
        if status not in ("ok", "oom", "error"):
            raise TableFileError(f"{path}: row {row['key']!r} has status {status!r}; allowed: ok, oom, error")
        m = Measurement(**{k: v for k, v in row.items() if k in Measurement.__dataclass_fields__})
        if not row.get("memory_bytes") and not row["key"].startswith("backbone"):
            m = analytic_memory(m, OpShape.from_key(row["key"]))
        incoming.add(row["key"], m, provenance="imported")
    out_path = Path(out_path)
    if out_path.exists():
        incoming = LookupTable.load(out_path).merge(incoming, allow_other_device=allow_other_device)
    incoming.save(out_path)
    return incoming


