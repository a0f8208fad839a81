"""The lookup table: one row per measured subject (an operator at an OpShape, or a backbone at
its input), stored as Parquet with a JSON sidecar.

The sidecar (``LUT.parquet.json``) holds the device fingerprint, the measurement protocol
and the dates; the same document is embedded in the Parquet file's metadata, so a table is
self-contained and a sidecar that was swapped or edited is detected. Writes are atomic
(a temporary file renamed over the old one).
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from core.errors import one_line
from core.io import atomic_write, read_parquet
from lookup_tables.errors import DeviceMismatchError, LutError, TableFileError
from lookup_tables.grid import parse_backbone_key
from lookup_tables.profilers.base import Measurement, identity, now_iso
from search_spaces.shapes import OpShape

FORMAT = 1
STATISTICS = ("median", "p10", "p90")
_META_KEY = b"hwnas_lut"
COLUMNS = {  # name -> pandas dtype
    "key": "string", "kind": "string", "op": "string", "channels": "int64", "frames": "int64",
    "height": "int64", "width": "int64", "text_tokens": "int64", "text_dim": "int64", "heads": "int64",
    "batch": "int64", "dtype": "string", "status": "string", "latency_ms": "float64",
    "latency_p10_ms": "float64", "latency_p90_ms": "float64", "repeats": "int64", "flops": "int64",
    "param_bytes": "int64", "input_bytes": "int64", "activation_peak_bytes": "int64",
    "memory_bytes": "int64", "slot_live_bytes": "string", "reason": "string", "measured_at": "string",
    # Where a row came from (PROVENANCES) and the protocol it was measured with (JSON of
    # backend, device, device_name, dtype, threads, clock): tables written before these
    # columns existed load with "built" and the table's own protocol.
    "provenance": "string", "protocol": "string",
}
ADDED_COLUMNS = ("provenance", "protocol")
PROVENANCES = ("built", "measured-during-search", "imported")


def sidecar_path(path: str | Path) -> Path:
    return Path(str(path) + ".json")


def _row(key: str, m: Measurement, measured_at: str, provenance: str = "built", protocol: dict | None = None) -> dict:
    bb = parse_backbone_key(key)
    if bb is not None:
        shape = {"op": "backbone", "channels": 0, "heads": 0, **{k: bb[k] for k in (
            "frames", "height", "width", "text_tokens", "text_dim", "batch", "dtype")}}
        kind = "backbone"
    else:
        shape = OpShape.from_key(key).as_dict()
        kind = "op"
    row = {"key": key, "kind": kind, **shape}
    row.update({k: v for k, v in m.as_dict().items() if k in COLUMNS})
    row["slot_live_bytes"] = json.dumps(m.slot_live_bytes, sort_keys=True)
    row["measured_at"] = measured_at
    row["provenance"] = provenance
    row["protocol"] = json.dumps(protocol or {}, sort_keys=True)
    return row


class LookupTable:
    """Rows of measurements of one device (``meta["fingerprint"]``) with one protocol."""

    def __init__(self, rows: pd.DataFrame | None = None, meta: dict | None = None):
        frame = pd.DataFrame(rows if rows is not None else [], columns=list(COLUMNS))
        self.rows = frame.astype(COLUMNS).set_index("key", drop=False)
        self.rows.index.name = None
        self.meta = dict(meta or {})
        self.meta.setdefault("format", FORMAT)
        self._estimator = None

    # Contents ---------------------------------------------------------------------
    @property
    def fingerprint(self) -> dict:
        return self.meta.get("fingerprint", {})

    @property
    def dtype(self) -> str | None:
        return self.fingerprint.get("dtype")

    def __len__(self) -> int:
        return len(self.rows)

    def __contains__(self, key: str) -> bool:
        return key in self.rows.index

    def row(self, key: str) -> dict | None:
        if key not in self.rows.index:
            return None
        out = {k: (v.item() if hasattr(v, "item") else v) for k, v in self.rows.loc[key].to_dict().items()}
        out["slot_live_bytes"] = json.loads(out["slot_live_bytes"] or "{}")
        out["protocol"] = json.loads(out["protocol"] or "{}") or identity(self.fingerprint)
        out["provenance"] = out["provenance"] or "built"
        return out

    def row_measurement(self, key: str) -> Measurement:
        """A row as the Measurement it was made from (to copy it into another table)."""
        row = self.row(key)
        return Measurement(**{k: v for k, v in row.items() if k in Measurement.__dataclass_fields__})

    def keys(self) -> list[str]:
        return list(self.rows.index)

    def ok_rows(self, kind: str = "op") -> pd.DataFrame:
        r = self.rows
        return r[(r["status"] == "ok") & (r["kind"] == kind)]

    def add(self, key: str, measurement: Measurement, provenance: str = "built",
            protocol: dict | None = None) -> None:
        """Add or replace the row ``key``. ``protocol``: the identity of the fingerprint it was
        measured with (default: this table's)."""
        if provenance not in PROVENANCES:
            raise LutError(f"provenance {provenance!r}; allowed: {', '.join(PROVENANCES)}")
        row = _row(key, measurement, now_iso(), provenance, identity(protocol or self.fingerprint))
        new = pd.DataFrame([row], columns=list(COLUMNS)).astype(COLUMNS).set_index("key", drop=False)
        new.index.name = None
        rest = self.rows.drop(index=key, errors="ignore")
        self.rows = new if rest.empty else pd.concat([rest, new])
        self.meta["updated"] = now_iso()
        self._estimator = None

    def with_statistic(self, statistic: str) -> "LookupTable":
        """A copy whose ``latency_ms`` is the ``median`` (as measured), ``p10`` or ``p90`` of each
        row: p10 is what an uncontended run takes on a loaded machine, p90 a cautious price."""
        if statistic not in STATISTICS:
            raise LutError(f"statistic {statistic!r}; allowed: {', '.join(STATISTICS)}")
        if statistic == "median":
            return self
        rows = self.rows.copy()
        rows["latency_ms"] = rows[f"latency_{statistic}_ms"]
        return LookupTable(rows.reset_index(drop=True), dict(self.meta, statistic=statistic))

    # Prediction -------------------------------------------------------------------
    @property
    def estimator(self):
        """Estimates of unmeasured shapes from measured neighbours (lookup_tables.estimate)."""
        if self._estimator is None:
            from lookup_tables.estimate import Estimator

            self._estimator = Estimator(self.ok_rows("op"))
        return self._estimator

    def predict(self, space, arch, allow_other_device: bool = False, calibrated: bool = True):
        """Latency and peak memory of ``arch`` in ``space``: a ``Prediction`` (with the table's
        calibration applied unless ``calibrated=False``)."""
        from lookup_tables.predict import predict

        return predict(self, space, arch, allow_other_device, calibrated)

    def needs(self, space, grid=None) -> dict:
        """Exact hits, estimates and what to measure to price ``space`` exactly."""
        from lookup_tables.predict import needs

        return needs(self, space, grid)

    # Merging ----------------------------------------------------------------------
    def check_compatible(self, fingerprint: dict, what: str = "the other table") -> None:
        mine, theirs = identity(self.fingerprint), identity(fingerprint)
        diff = [k for k in mine if mine[k] != theirs[k]]
        if diff:
            k = diff[0]
            raise DeviceMismatchError(
                f"{what} was measured with {k}={theirs[k]!r}, this table with {k}={mine[k]!r}; "
                "refusing to mix devices (pass allow_other_device / --allow-other-device to force)")

    def merge(self, other: "LookupTable", allow_other_device: bool = False) -> "LookupTable":
        """Rows of both; ``other`` wins where both hold a key. Refuses another device or dtype."""
        if not allow_other_device:
            self.check_compatible(other.fingerprint)
        rows = pd.concat([self.rows.drop(index=other.rows.index, errors="ignore"), other.rows])
        meta = dict(self.meta)
        meta["merged_from"] = meta.get("merged_from", []) + [other.meta.get("created")]
        meta["updated"] = now_iso()
        return LookupTable(rows.reset_index(drop=True), meta)

    # Files ------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Atomic: the Parquet file and then its sidecar are each renamed into place."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = dict(self.meta, rows=len(self.rows))
        text = json.dumps(meta, indent=2, sort_keys=True, default=str)
        schema_table = pa.Table.from_pandas(self.rows.reset_index(drop=True), preserve_index=False)
        schema_table = schema_table.replace_schema_metadata(
            {**(schema_table.schema.metadata or {}), _META_KEY: text.encode()})
        atomic_write(path, lambda f: pq.write_table(schema_table, f))
        atomic_write(sidecar_path(path), lambda f: f.write(text.encode()))
        return path

    @classmethod
    def load(cls, path: str | Path) -> "LookupTable":
        path = Path(path)
        if not path.is_file():
            raise TableFileError(f"{path}: no such lookup table")
        try:
            table = read_parquet(path)
        except (pa.ArrowException, OSError) as exc:
            raise TableFileError(f"{path}: not a readable Parquet table ({one_line(exc)})") from None
        raw = (table.schema.metadata or {}).get(_META_KEY)
        if raw is None:
            raise TableFileError(f"{path}: a Parquet file without hwnas lookup-table metadata")
        meta = json.loads(raw)
        missing = [c for c in COLUMNS if c not in table.column_names and c not in ADDED_COLUMNS]
        if missing:
            raise TableFileError(f"{path}: column {missing[0]!r} is missing")
        side = sidecar_path(path)
        if side.is_file():
            try:
                side_meta = json.loads(side.read_text())
            except json.JSONDecodeError as exc:
                raise TableFileError(f"{side}: sidecar is not valid JSON ({exc})") from None
            if not isinstance(side_meta, dict) or side_meta.get("fingerprint") != meta.get("fingerprint"):
                raise TableFileError(f"{side}: sidecar does not match {path.name} (its device fingerprint differs)")
        rows = table.to_pandas()
        for c in ADDED_COLUMNS:
            if c not in rows.columns:
                rows[c] = "built" if c == "provenance" else json.dumps(identity(meta.get("fingerprint", {})),
                                                                       sort_keys=True)
        bad = rows[~rows["status"].isin(["ok", "oom", "error"])]
        if len(bad):
            raise TableFileError(f"{path}: row {bad['key'].iloc[0]!r} has status {bad['status'].iloc[0]!r}")
        return cls(rows[list(COLUMNS)], meta)

    # Reading ----------------------------------------------------------------------
    def summary(self) -> dict:
        r = self.rows
        return {"rows": len(r), "by_status": {k: int(v) for k, v in r["status"].value_counts().items()},
                "by_kind": {k: int(v) for k, v in r["kind"].value_counts().items()},
                "by_provenance": {k: int(v) for k, v in r["provenance"].fillna("built").value_counts().items()},
                "calibration": self.meta.get("calibration"),
                "fingerprint": self.fingerprint, "protocol": self.meta.get("protocol", {}),
                "created": self.meta.get("created"), "updated": self.meta.get("updated")}

    def records(self) -> list[dict]:
        out = []
        for key in self.rows.index:
            row = self.row(key)
            out.append({k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()})
        return out


