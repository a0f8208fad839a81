"""``torch``: measured on cpu, cuda or mps with PyTorch.

Protocol: threads fixed (``torch.set_num_threads``), ``warmup`` untimed calls, then
``repeats`` timed calls (CUDA events on GPU, ``perf_counter`` elsewhere, or the thread's CPU
time with ``clock: thread``); median, p10 and
p90 are recorded. Peak memory comes from one extra call under a meter (the CUDA allocator
on GPU, the live-tensor tracker on CPU) after a first untimed call, so the meter never slows
the timed calls and one-off library workspaces are not counted.
A real out-of-memory, or a peak above ``memory_limit_mib``, gives status ``oom``.
"""
from __future__ import annotations

import statistics
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Literal

import torch

from core.errors import one_line
from lookup_tables.errors import LutError
from lookup_tables.memory import meter_for
from lookup_tables.profilers.base import Measurement, Profiler, cpu_model, register_profiler
from search_spaces.architecture import Architecture
from search_spaces.backbones import build_unet, slot_modules
from search_spaces.ops import create_op, op_class
from search_spaces.shapes import DTYPE_BYTES, OpShape
from search_spaces.space import SearchSpace

TORCH_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


class OverMemoryLimit(Exception):
    """A subject whose peak memory is above the configured device memory."""


def is_oom(exc: BaseException) -> bool:
    if isinstance(exc, (torch.cuda.OutOfMemoryError, MemoryError, OverMemoryLimit)):
        return True
    text = str(exc).lower()
    return "out of memory" in text or "can't allocate memory" in text or "not enough memory" in text


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


@contextmanager
def fixed_threads(threads: int):
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@dataclass(frozen=True)
class TorchOptions:
    """``threads``: CPU threads while measuring (1 gives 3-5 % noise, 2 gives 13-26 %).
    ``clock``: ``wall`` (elapsed time) or ``thread`` (CPU time of the measuring thread; cpu,
    one thread only): what the work takes when nothing else preempts it, the stable choice
    on a shared machine."""

    threads: int = 1
    clock: Literal["wall", "thread"] = "wall"

    def __post_init__(self):
        if self.threads < 1:
            raise ValueError("threads must be at least 1")


def _device_ok(device: str) -> bool:
    if device in ("cpu", "cuda", "mps"):
        return True
    return device.startswith("cuda:") and device[5:].isdigit()


@register_profiler("torch")
class TorchProfiler(Profiler):
    Options = TorchOptions

    @staticmethod
    def check_config(lut) -> None:
        if not _device_ok(lut.device):
            raise ValueError(f"device {lut.device!r}; allowed for torch: cpu, cuda, cuda:N, mps")
        if lut.options.clock == "thread" and (lut.device != "cpu" or lut.options.threads != 1):
            raise ValueError("options.clock 'thread' needs device cpu and options.threads 1 "
                             "(other threads' and devices' time is not the measuring thread's)")

    def __init__(self, config, dtype, op_options=None):
        super().__init__(config, dtype, op_options)
        self.device = torch.device(config.device)
        self.torch_dtype = TORCH_DTYPES[dtype]
        self._unet = None  # the backbone is built once and shared by every network measured

    def device_name(self) -> str:
        if self.device.type == "cuda":
            if not torch.cuda.is_available():
                return "cuda (unavailable)"
            return torch.cuda.get_device_name(self.device)
        if self.device.type == "mps":
            return "Apple GPU (mps)"
        return cpu_model()

    def fingerprint(self) -> dict:
        out = super().fingerprint()
        if self.device.type == "cuda" and torch.cuda.is_available():
            out["cuda"] = torch.version.cuda
        return out

    # Timing and memory ------------------------------------------------------------
    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        elif self.device.type == "mps":
            torch.mps.synchronize()

    def _time(self, fn: Callable[[], object]) -> list[float]:
        cfg = self.config
        for _ in range(cfg.warmup):
            fn()
        self._sync()
        times = []
        if self.device.type == "cuda":
            for _ in range(cfg.repeats):
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                fn()
                end.record()
                end.synchronize()
                times.append(start.elapsed_time(end))
            return times
        clock = time.thread_time if cfg.options.clock == "thread" else time.perf_counter
        for _ in range(cfg.repeats):
            t0 = clock()
            fn()
            self._sync()
            times.append((clock() - t0) * 1e3)
        return times

    def _measure(self, build: Callable[[], tuple]) -> Measurement:
        """``build()`` returns (module, inputs, flops, slots); ``slots`` maps a slot to the
        block at whose output the live bytes are read."""
        self._check_device()
        try:
            with fixed_threads(self.config.options.threads), torch.no_grad():
                module, inputs, flops, slots = build()
                param_bytes = sum(p.numel() * p.element_size() for p in module.parameters())
                input_bytes = sum(t.numel() * t.element_size() for t in inputs)
                # One call before the meter: libraries allocate their workspaces (cuBLAS keeps
                # ~32 MiB per process) on first use, which is no part of this subject's peak.
                module(*inputs)
                self._sync()
                live, hooks = {}, []
                meter = meter_for(self.device)
                for slot, block in slots.items():
                    hooks.append(block.register_forward_hook(
                        lambda m, a, o, slot=slot: live.__setitem__(slot, meter.live_bytes())))
                try:
                    with meter:
                        module(*inputs)
                finally:
                    for h in hooks:
                        h.remove()
                memory = param_bytes + input_bytes + meter.peak_bytes
                limit = self.config.memory_limit_bytes
                if limit is not None and memory > limit:
                    raise OverMemoryLimit(f"peak {memory / 2**20:.1f} MiB is over memory_limit_mib "
                                          f"{self.config.memory_limit_mib:g}")
                times = self._time(lambda: module(*inputs))
        except Exception as exc:  # one subject failing must not end the build
            status = "oom" if is_oom(exc) else "error"
            return Measurement(status=status, reason=f"{one_line(exc, with_type=True)}"[:300])
        finally:
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
        return Measurement(
            latency_ms=statistics.median(times), latency_p10_ms=percentile(times, 0.1),
            latency_p90_ms=percentile(times, 0.9), repeats=len(times), flops=int(flops),
            param_bytes=param_bytes, input_bytes=input_bytes, activation_peak_bytes=meter.peak_bytes,
            memory_bytes=memory, slot_live_bytes=live)

    def _check_device(self) -> None:
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise LutError(f"lut.device {self.config.device!r}: CUDA is not available on this machine")
        if self.device.type == "mps" and not torch.backends.mps.is_available():
            raise LutError("lut.device 'mps': the MPS backend is not available on this machine")

    def _limit_check(self, estimate_bytes: int) -> None:
        limit = self.config.memory_limit_bytes
        if limit is not None and estimate_bytes > 2 * limit:
            # Far over the limit by the analytic cost: do not even try to allocate it.
            raise OverMemoryLimit(f"analytic peak {estimate_bytes / 2**20:.1f} MiB is over memory_limit_mib "
                                  f"{self.config.memory_limit_mib:g}")

    # Subjects ---------------------------------------------------------------------
    def _inputs(self, video_shape, text_shape) -> list[torch.Tensor]:
        g = torch.Generator(device="cpu").manual_seed(0)
        return [torch.randn(video_shape, generator=g).to(self.device, self.torch_dtype),
                torch.randn(text_shape, generator=g).to(self.device, self.torch_dtype)]

    def measure_op(self, shape: OpShape) -> Measurement:
        def build():
            cost = op_class(shape.op).cost(shape)
            nb = DTYPE_BYTES[shape.dtype]
            self._limit_check(cost.activation_bytes + (cost.params + 2 * shape.batch * shape.tokens * shape.channels) * nb)
            with torch.device(self.device):
                op = create_op(shape.op, shape, **self.op_options)
            op = op.to(self.torch_dtype).eval()
            return op, self._inputs(shape.video_shape, shape.text_shape), cost.flops, {}

        return self._measure(build)

    def _backbone(self, space: SearchSpace):
        if self._unet is None:
            self._unet = build_unet(space.config.backbone, self.device).to(self.torch_dtype).eval()
        return self._unet

    def measure_backbone(self, space: SearchSpace) -> Measurement:
        return self.measure_network(space, space.empty, slots=True)

    def measure_network(self, space: SearchSpace, arch: Architecture, slots: bool = False) -> Measurement:
        def build():
            model = space.build(arch, self.device, unet=self._backbone(space)).eval()
            inputs = self._inputs(space.video_shape, space.text_shape)
            timestep = torch.full((space.config.batch,), 500.0, device=self.device)
            blocks = {n: m for n, m in slot_modules(model.unet).items() if n in space.slot_names} if slots else {}
            return NetworkCall(model, timestep), inputs, 0, blocks

        return self._measure(build)

    # Paired measurement (hwnas lut validate) ----------------------------------------
    def network_call(self, space: SearchSpace, arch: Architecture) -> Callable[[], object]:
        """``fn()`` runs one forward of ``arch`` on the inputs every subject gets (the same
        seed), sharing the one backbone."""
        self._check_device()
        model = space.build(arch, self.device, unet=self._backbone(space)).eval()
        call = NetworkCall(model, torch.full((space.config.batch,), 500.0, device=self.device))
        inputs = self._inputs(space.video_shape, space.text_shape)
        # In-network time of the temporal layers (hooks around each slot's stack, same clock):
        # ``run.situ[0]`` accumulates it; ``interleaved`` reads it per call.
        clock = time.thread_time if self.config.options.clock == "thread" else time.perf_counter
        situ, starts = [0.0], []
        # Host clocks around asynchronous GPU kernels would time their launch: CPU only.
        for stack in (model.temporal.values() if self.device.type == "cpu" else ()):
            stack.register_forward_pre_hook(lambda m, a: starts.append(clock()))
            stack.register_forward_hook(lambda m, a, o: situ.__setitem__(0, situ[0] + clock() - starts.pop()))

        def run():
            return call(*inputs)

        run.module, run.inputs = call, inputs
        if self.device.type == "cpu":
            run.situ, run.situ_ms = situ, []
        return run

    def interleaved(self, fns: list[Callable[[], object]], rounds: int, warmup: int | None = None,
                    lead_in: int = 0) -> list[list[float]]:
        """Times of ``fns`` called in turn (A, B, A, B ...) ``rounds`` times after ``warmup``
        untimed turns, with this protocol's threads and clock: drift of the machine hits every
        subject alike, so differences of paired calls cancel it. ``lead_in``: untimed calls of
        a subject right before each of its timed calls, so that the timed call follows itself
        (as a denoising step does) rather than another subject. One list of ms per fn; a fn from
        ``network_call`` also gets ``fn.situ_ms``, its temporal layers' in-network time per call
        (CPU clocks only)."""
        warmup = self.config.warmup if warmup is None else warmup
        for fn in fns:
            if hasattr(fn, "situ_ms"):
                fn.situ_ms = []
        out: list[list[float]] = [[] for _ in fns]
        with fixed_threads(self.config.options.threads), torch.no_grad():
            for _ in range(warmup):
                for fn in fns:
                    fn()
            self._sync()
            clock = time.thread_time if self.config.options.clock == "thread" else time.perf_counter
            for _ in range(rounds):
                for i, fn in enumerate(fns):
                    for _ in range(lead_in):
                        fn()
                    if self.device.type == "cuda":
                        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                        start.record()
                        fn()
                        end.record()
                        end.synchronize()
                        out[i].append(start.elapsed_time(end))
                        continue
                    s0 = fn.situ[0] if hasattr(fn, "situ") else 0.0
                    t0 = clock()
                    fn()
                    self._sync()
                    out[i].append((clock() - t0) * 1e3)
                    if hasattr(fn, "situ"):
                        fn.situ_ms.append((fn.situ[0] - s0) * 1e3)
        return out

    def peak_memory(self, space: SearchSpace, arch: Architecture) -> dict:
        """The device allocator's peak of one forward (after a warm-up call), whole network: CUDA's
        ``max_memory_allocated``, or on CPU the allocator's blocks as ``torch.profiler`` records them."""
        from lookup_tables.memory import CpuAllocatorMeter, CudaMeter

        fn = self.network_call(space, arch)
        cuda = self.device.type == "cuda"
        with fixed_threads(self.config.options.threads), torch.no_grad():
            fn()
            with (CudaMeter(self.device) if cuda else CpuAllocatorMeter()) as meter:
                fn()
        return {"activation_peak_bytes": int(meter.peak_bytes),
                "param_bytes": sum(p.numel() * p.element_size() for p in fn.module.parameters()),
                "input_bytes": sum(t.numel() * t.element_size() for t in fn.inputs),
                "meter": "cuda max_memory_allocated" if cuda else "cpu allocator events (torch.profiler)"}


class NetworkCall(torch.nn.Module):
    """``model(sample, text)`` with a fixed timestep, so every subject takes (video, text)."""

    def __init__(self, model, timestep):
        super().__init__()
        self.model, self.timestep = model, timestep

    def forward(self, sample, text):
        return self.model(sample, self.timestep, text)
