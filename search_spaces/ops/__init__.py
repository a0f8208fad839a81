"""Temporal operators: residual layers on ``(B, T, C, H, W)`` video tensors (SnapGen-V §3.2).

Each lives in its own module of this package and registers itself with ``@register_op``;
the registry imports every module here on first use.
"""
from search_spaces.ops.base import OPS, OpCost, TemporalOp, create_op, list_ops, op_class, register_op

__all__ = ["OPS", "OpCost", "TemporalOp", "create_op", "list_ops", "op_class", "register_op"]
