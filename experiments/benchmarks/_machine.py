"""What every benchmark records beside its numbers: machine, versions, date, load."""
from __future__ import annotations

import json
import os
import platform
from pathlib import Path

from lookup_tables.profilers.base import cpu_model, now_iso, software_versions

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict:
    return {"cpu": cpu_model(), "cores": os.cpu_count(), "platform": platform.platform(),
            "versions": software_versions(), "date": now_iso(), "loadavg_start": list(os.getloadavg())}


def write(name: str, result: dict, out_dir: str | None = None) -> Path:
    result["machine"]["loadavg_end"] = list(os.getloadavg())
    out = Path(out_dir or os.environ.get("OUT") or RESULTS)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.json"
    path.write_text(json.dumps(result, indent=2, default=str) + "\n")
    return path
