"""Peak memory of whole networks as the operating system sees it (CPU), for validation.

The prediction's memory model is built from a live-tensor tracker (``lookup_tables.memory``);
checking it with the same tracker proves nothing. Here each network runs in a fresh Python
process whose allocator hands every block of 64 KiB or more straight back to the kernel
(``MALLOC_MMAP_THRESHOLD_``: glibc otherwise keeps freed memory and raises its threshold
after the first large free, so a second forward would reuse it and read as zero). The peak is
the kernel's high-water mark of the resident set (``VmHWM``), reset (``/proc/self/clear_refs``
5) after the network and its inputs exist and after one warm-up forward: what the forward adds
above what was resident, with everything the libraries allocate (oneDNN scratch, attention
buffers) that the tracker never sees. No code is shared with the tracker.

    python -m lookup_tables.rss < request.pickle      (one JSON line per network on stdout)
"""
from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys

from lookup_tables.errors import LutError

MMAP_THRESHOLD = 65536
SUPPORTED = sys.platform.startswith("linux")


def _status(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise LutError(f"/proc/self/status has no {field}")


def _reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def rss_peaks(space, archs: list, lut_config, op_options: dict | None = None, timeout: float = 600) -> dict[str, dict]:
    """{arch string: {"activation_peak_bytes", "param_bytes", "input_bytes", "memory_bytes", "meter"}},
    measured in one fresh subprocess (the networks one after another, each freed before the next)."""
    if not SUPPORTED:
        raise LutError("the resident-set peak needs Linux (/proc/self/clear_refs); use --memory tracker")
    request = pickle.dumps({"space": space.config, "archs": [str(a) for a in archs], "lut": lut_config,
                            "dtype": space.config.dtype, "op_options": op_options or {}})
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_=str(MMAP_THRESHOLD), MALLOC_TRIM_THRESHOLD_="0",
               OMP_NUM_THREADS=str(lut_config.options.threads))
    env["PYTHONPATH"] = os.pathsep.join([p for p in sys.path if p] + [env.get("PYTHONPATH", "")])
    proc = subprocess.run([sys.executable, "-m", "lookup_tables.rss"], input=request, capture_output=True,
                          env=env, timeout=timeout)
    if proc.returncode != 0:
        tail = proc.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["(no message)"]
        raise LutError(f"the resident-set memory worker failed: {tail[0]}")
    out = {}
    for line in proc.stdout.decode().splitlines():
        rec = json.loads(line)
        out[rec.pop("arch")] = rec
    return out


def _worker() -> None:
    import torch

    from lookup_tables.profilers.torch_backend import TorchProfiler
    from search_spaces.space import SearchSpace

    req = pickle.loads(sys.stdin.buffer.read())
    torch.set_num_threads(req["lut"].options.threads)
    space = SearchSpace(req["space"])
    profiler = TorchProfiler(req["lut"], req["dtype"], req["op_options"])
    for text in req["archs"]:
        arch = space.parse(text) if text else space.empty
        with torch.no_grad():
            fn = profiler.network_call(space, arch)
            fn()  # warm-up: one-off library state is no part of a forward's peak
            peaks = []
            for _ in range(2):
                _reset_peak()
                base = _status("VmRSS")
                y = fn()
                peaks.append(_status("VmHWM") - base)
                del y
        input_bytes = sum(t.numel() * t.element_size() for t in fn.inputs)
        param_bytes = sum(p.numel() * p.element_size() for p in fn.module.parameters())
        peak = max(peaks)
        print(json.dumps({"arch": text, "activation_peak_bytes": peak, "param_bytes": param_bytes,
                          "input_bytes": input_bytes, "memory_bytes": param_bytes + input_bytes + peak,
                          "meter": "resident-set high-water mark (VmHWM) of a fresh process"}), flush=True)
        del fn


if __name__ == "__main__":
    _worker()
