"""FLOPs, parameters and peak activation memory of one forward of any torch model.

FLOPs come from ``torch.utils.flop_counter`` with the math attention kernel forced, so that
attention is counted whatever fused kernel the CPU would pick (its flash kernel is not
counted otherwise). Peak activation memory comes from a dispatch-level tracker of live
tensor storages; both work on the meta device, so models too big for this machine are
costed without running them.
"""
from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves
from torch.utils.flop_counter import FlopCounterMode


class LiveTensorTracker(TorchDispatchMode):
    """Tracks the bytes of storages created inside the mode that are still referenced.

    ``peak_bytes`` is the high-water mark of those bytes: inputs and parameters created
    before the mode are not counted. A storage is freed when the last tensor object that
    refers to it (views included) is collected, so use it under ``torch.no_grad()``:
    tensors saved for backward are not tracked.
    """

    def __init__(self):
        super().__init__()
        self.live_bytes = 0
        self.peak_bytes = 0
        self._refs: dict[int, list] = {}  # storage id -> [bytes, live tensor objects]
        self._known: set[int] = set()

    def __enter__(self):
        self.live_bytes = self.peak_bytes = 0
        self._refs.clear()
        return super().__enter__()

    def _release(self, key: int) -> None:
        entry = self._refs.get(key)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] == 0:
            self.live_bytes -= entry[0]
            del self._refs[key]

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        inputs = None
        for t in tree_leaves(out):
            if not isinstance(t, torch.Tensor):
                continue
            storage = t.untyped_storage()
            key = storage._cdata
            entry = self._refs.get(key)
            if entry is None:
                if inputs is None:
                    inputs = self._input_keys(args, kwargs)
                if key in inputs:
                    continue  # an in-place op or view of something not ours
                entry = self._refs[key] = [storage.nbytes(), 0]
                self.live_bytes += entry[0]
                self.peak_bytes = max(self.peak_bytes, self.live_bytes)
            entry[1] += 1
            weakref.finalize(t, self._release, key)
        return out

    @staticmethod
    def _input_keys(args, kwargs) -> set[int]:
        return {t.untyped_storage()._cdata for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)}


class FusedAttention(TorchFunctionMode):
    """Stands in for a fused (flash / memory-efficient) attention kernel on the meta device.

    On meta, ``scaled_dot_product_attention`` always decomposes into the math path, whose
    score matrix (heads·N² per sequence) dominates the peak of any large UNet; GPUs and the
    Neural Engine never hold it. Under this mode the call returns only its output, so the
    tracked peak is that of a fused kernel. Meta tensors only: real tensors run as usual.
    """

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is F.scaled_dot_product_attention and args and args[0].is_meta:
            q, v = args[0], (args[2] if len(args) > 2 else kwargs["value"])
            return torch.empty((*q.shape[:-1], v.shape[-1]), dtype=q.dtype, device=q.device)
        return func(*args, **kwargs)


@dataclass(frozen=True)
class ModelCost:
    flops: int
    params: int
    activation_peak_bytes: int

    def as_dict(self) -> dict:
        return {"flops": self.flops, "params": self.params, "activation_peak_bytes": self.activation_peak_bytes}


def count_flops(fn: Callable[[], Any]) -> int:
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def peak_activation_bytes(fn: Callable[[], Any]) -> int:
    tracker = LiveTensorTracker()
    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), tracker:
        fn()
    return tracker.peak_bytes


def model_cost(model: torch.nn.Module, *args, **kwargs) -> ModelCost:
    """Cost of ``model(*args, **kwargs)``: one inference forward."""
    def run():
        with torch.no_grad():
            model(*args, **kwargs)
    return ModelCost(
        flops=count_flops(run),
        params=sum(p.numel() for p in model.parameters()),
        activation_peak_bytes=peak_activation_bytes(run),
    )
