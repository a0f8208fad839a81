"""Search strategies (ask/tell): ``snapgen`` (SnapGen-V Algorithm A1), ``random``, ``optuna``.

A new strategy is one module here with a ``@register_strategy("name")`` class deriving
from :class:`nas.strategies.base.Strategy`; the contract tests in ``tests/nas`` pick it up.
"""
from nas.strategies.base import (
                                 STRATEGIES,
                                 Candidate,
                                 Cost,
                                 Outcome,
                                 SearchState,
                                 Strategy,
                                 create_strategy,
                                 register_strategy,
)

__all__ = ["STRATEGIES", "Candidate", "Cost", "Outcome", "SearchState", "Strategy", "create_strategy",
           "register_strategy"]
