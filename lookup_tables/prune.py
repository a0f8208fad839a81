"""The coarse search (METHOD.md §2): remove the states that cannot fit before any training.

A state is (slot, operator, count). It is pruned when the device cannot run the operator at
the slot's shape (status ``oom`` or ``error`` in the table), or when the smallest network
holding it — the backbone plus that state alone — already breaks the memory or the latency
budget: both predictions only grow as layers are added, so no architecture with that state
can fit. ``Pruning.allows`` also rejects a whole architecture whose prediction breaks a budget.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from core.budgets import MIB, Budgets
from search_spaces.architecture import Architecture, Layer
from search_spaces.space import SearchSpace


@dataclass(frozen=True)
class PrunedState:
    slot: str
    op: str
    count: int
    reason: str

    def as_dict(self) -> dict:
        return {"slot": self.slot, "op": self.op, "count": self.count, "reason": self.reason}


class Pruning:
    def __init__(self, space: SearchSpace, table, budgets: Budgets, pruned: list[PrunedState],
                 backbone_reason: str | None):
        self.space, self.table, self.budgets = space, table, budgets
        self.pruned = pruned
        self.backbone_reason = backbone_reason  # the backbone alone breaks a budget: nothing fits
        self._by_state = {(p.slot, p.op, p.count): p for p in pruned}

    def state_reason(self, slot: str, op: str, count: int) -> str | None:
        p = self._by_state.get((slot, op, count))
        return p.reason if p else None

    def why(self, arch: Architecture) -> list[str]:
        """Reasons ``arch`` cannot fit ([] when it may)."""
        if self.backbone_reason:
            return [self.backbone_reason]
        out = [f"{s}:{l.op}:{l.count}: {r}" for s, l in arch.items()
               if (r := self.state_reason(s, l.op, l.count))]
        if out:
            return out
        return _budget_reasons(self.table.predict(self.space, arch), self.budgets)

    def allows(self, arch: Architecture) -> bool:
        return not self.why(arch)

    @property
    def size_after(self) -> int:
        """Architectures left when the pruned states are removed from every slot."""
        if self.backbone_reason:
            return 0
        return math.prod(1 + sum(1 for st in self.space.slot_states(s)[1:]
                                 if (s.name, st.op, st.count) not in self._by_state) for s in self.space.slots)

    def as_dict(self) -> dict:
        return {"pruned": [p.as_dict() for p in self.pruned], "backbone": self.backbone_reason,
                "size_before": self.space.size, "size_after": self.size_after,
                "budgets": {"latency_ms_per_step": self.budgets.latency_ms_per_step,
                            "memory_bytes": self.budgets.memory_bytes}}


def _budget_reasons(pred, budgets: Budgets) -> list[str]:
    if pred.status != "ok":
        return pred.reasons
    out = []
    for v in budgets.violations(pred.latency_ms, pred.memory_bytes):
        if v == "latency":
            out.append(f"latency {pred.latency_ms:.1f} ms > budget {budgets.latency_ms_per_step:.1f} ms")
        else:
            out.append(f"memory {pred.memory_bytes / MIB:.1f} MiB > budget {budgets.memory_bytes / MIB:.1f} MiB")
    return out


def _alone_reason(table, space: SearchSpace, slot, op: str, budgets: Budgets) -> str | None:
    """Why one layer of ``op`` at ``slot`` cannot run on its own (the backbone aside)."""
    shape = slot.shape(op)
    row = table.row(shape.key)
    if row is not None and row["status"] != "ok":
        return f"{row['status']}: {row['reason']}"
    if row is not None and budgets.memory_bytes is not None and row["memory_bytes"] > budgets.memory_bytes:
        return f"the layer alone needs {row['memory_bytes'] / MIB:.1f} MiB > budget {budgets.memory_bytes / MIB:.1f} MiB"
    return None


def prune(space: SearchSpace, table, budgets: Budgets) -> Pruning:
    """States that cannot fit, with the reason. When the backbone alone breaks a budget,
    every architecture is out (``backbone``) and the states listed are those that could not
    run even on their own."""
    base = table.predict(space, space.empty)
    reasons = _budget_reasons(base, budgets)
    backbone_reason = f"backbone alone: {'; '.join(reasons)}" if reasons else None
    pruned = []
    for slot in space.slots:
        for op in slot.ops:
            why = [_alone_reason(table, space, slot, op, budgets)]
            first = 1
            if why[0] is None and backbone_reason is None:
                for count in range(1, slot.max_layers + 1):
                    why = _budget_reasons(table.predict(space, Architecture({slot.name: Layer(op, count)})), budgets)
                    if why:
                        first = count
                        break
            if not why or why[0] is None:
                continue
            # A state that cannot fit takes every larger count of the same op with it.
            for c in range(first, slot.max_layers + 1):
                tail = "" if c == first else f" (already at {first} layer{'s' if first > 1 else ''})"
                pruned.append(PrunedState(slot.name, op, c, "; ".join(why) + tail))
    return Pruning(space, table, budgets, pruned, backbone_reason)
