"""Peak-memory meters: the CUDA allocator on GPU, a live-tensor tracker on CPU and meta, and
(for validation) the CPU allocator's own record of its blocks.

All report bytes *beyond* what was allocated when the meter was entered (parameters and
inputs are not counted): ``peak_bytes`` is the high-water mark, ``live_bytes()`` the bytes
live now (read from inside a forward hook to learn what the backbone holds at a slot).
The tracker also sums ``allocated_bytes`` (every storage created: the traffic estimate of
the analytic backend).
"""
from __future__ import annotations

import contextlib
import os
import sys

import torch

from lookup_tables.profilers.base import Measurement
from search_spaces.cost import LiveTensorTracker
from search_spaces.ops import op_class
from search_spaces.shapes import OpShape


class _Tracker(LiveTensorTracker):
    def __init__(self):
        super().__init__()
        self.allocated_bytes = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        before = self.live_bytes
        out = super().__torch_dispatch__(func, types, args, kwargs)
        self.allocated_bytes += max(0, self.live_bytes - before)
        return out


class TrackerMeter:
    """CPU and meta: live tensor storages created inside the ``with`` block."""

    def __init__(self):
        self._tracker = _Tracker()
        self._grad = torch.no_grad()

    def __enter__(self):
        self._grad.__enter__()
        self._tracker.__enter__()
        return self

    def __exit__(self, *exc):
        self._tracker.__exit__(*exc)
        self._grad.__exit__(*exc)
        return False

    def live_bytes(self) -> int:
        return self._tracker.live_bytes

    @property
    def peak_bytes(self) -> int:
        return self._tracker.peak_bytes

    @property
    def allocated_bytes(self) -> int:
        return self._tracker.allocated_bytes


class CudaMeter:
    """GPU: ``torch.cuda.max_memory_allocated`` after a reset, relative to the entry level."""

    def __init__(self, device: torch.device):
        self.device = device
        self.peak_bytes = 0
        self._base = 0
        self._grad = torch.no_grad()

    def __enter__(self):
        self._grad.__enter__()
        torch.cuda.synchronize(self.device)
        torch.cuda.reset_peak_memory_stats(self.device)
        self._base = torch.cuda.memory_allocated(self.device)
        return self

    def __exit__(self, *exc):
        torch.cuda.synchronize(self.device)
        self.peak_bytes = torch.cuda.max_memory_allocated(self.device) - self._base
        self._grad.__exit__(*exc)
        return False

    def live_bytes(self) -> int:
        return torch.cuda.memory_allocated(self.device) - self._base

    @property
    def allocated_bytes(self) -> int:
        return self.peak_bytes


@contextlib.contextmanager
def _native_stderr_quiet():
    """The profiler's C++ side logs a line to file descriptor 2 at every start and stop (``USDT:
    ... profiler_start``), which no log level silences: hide that descriptor for those calls."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


class CpuAllocatorMeter:
    """CPU, for validation: the peak of the bytes PyTorch's CPU allocator handed out inside the
    ``with`` block, summed from the allocation and free events ``torch.profiler`` records
    (``profile_memory``). It counts every block the allocator serves, kernels' own scratch
    included, and shares no code with the live-tensor tracker the table's memory is built from;
    unlike the resident set it is exact and repeats to the byte."""

    def __init__(self):
        self.peak_bytes = 0
        self._grad = torch.no_grad()
        self._prof = None

    def __enter__(self):
        from torch.profiler import ProfilerActivity, profile

        self._grad.__enter__()
        self._prof = profile(activities=[ProfilerActivity.CPU], profile_memory=True)
        with _native_stderr_quiet():
            self._prof.__enter__()
        return self

    def __exit__(self, *exc):
        with _native_stderr_quiet():
            self._prof.__exit__(*exc)
        events = [e for e in self._prof.profiler.kineto_results.events() if e.name() == "[memory]"
                  and e.device_type() == torch.autograd.DeviceType.CPU]
        live = peak = 0
        for e in sorted(events, key=lambda e: e.start_ns()):
            live += e.nbytes()
            peak = max(peak, live)
        self.peak_bytes = peak
        self._grad.__exit__(*exc)
        return False


def meter_for(device: torch.device):
    return CudaMeter(device) if device.type == "cuda" else TrackerMeter()


def analytic_memory(m: Measurement, shape: OpShape) -> Measurement:
    """Fill an operator row's memory from its analytic cost (Core ML does not report it)."""
    cost = op_class(shape.op).cost(shape)
    nb = shape.dtype_bytes
    m.flops = cost.flops
    m.param_bytes = cost.params * nb
    m.input_bytes = (shape.batch * shape.tokens * shape.channels + shape.batch * shape.text_tokens * shape.text_dim) * nb
    m.activation_peak_bytes = cost.activation_bytes
    m.memory_bytes = m.param_bytes + m.input_bytes + m.activation_peak_bytes
    return m
