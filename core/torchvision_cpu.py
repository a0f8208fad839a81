"""PyPI's torchvision beside a CPU build of torch.

PyPI's Linux torchvision wheels are CUDA builds: their ``_C`` extension needs
``libtorch_cuda.so``, which a CPU torch does not have, so it is not loaded, and then
``import torchvision`` fails on its first unguarded fake-kernel registration
(``RuntimeError: operator torchvision::nms does not exist``). The ``vbench`` extra brings
such a torchvision (VBench imports it, and so then do transformers, diffusers, timm and
CLIP). :func:`make_importable` runs before any of them, when ``core`` is imported: where
torchvision is installed, not yet imported and its extension cannot be loaded, it declares
the two operator schemas that torchvision registers fake kernels for, so the import goes
through. torchvision's Python code (transforms, models) then works; its compiled operators
(``nms``, ``roi_align``…) stay unavailable and raise when called. Where the extension loads
(a matching CPU or CUDA build), nothing is changed.
"""
from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
from pathlib import Path

# The operators torchvision's ``_meta_registrations`` registers fake kernels for whether or
# not its extension loaded (the others are guarded by ``extension._has_ops()``).
SCHEMAS = (
    "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
)
_library = None  # the Library that holds the declared schemas; kept alive for the process


def _extension(package_dir: Path) -> Path | None:
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        path = package_dir / f"_C{suffix}"
        if path.is_file():
            return path
    return None


def make_importable() -> bool:
    """Declare torchvision's operator schemas if its extension cannot load; True if it did."""
    global _library
    if _library is not None or "torchvision" in sys.modules:
        return False
    try:
        spec = importlib.util.find_spec("torchvision")
    except (ImportError, ValueError):
        return False
    if spec is None or spec.origin is None:
        return False
    import torch

    extension = _extension(Path(spec.origin).parent)
    if extension is not None:
        try:
            torch.ops.load_library(str(extension))
            return False  # it loads: torchvision defines its operators itself
        except (OSError, RuntimeError):
            pass
    _library = torch.library.Library("torchvision", "DEF")
    for schema in SCHEMAS:
        _library.define(schema)
    return True
