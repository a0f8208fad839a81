"""Quality evaluators: one small base class and a registry (``EVALUATORS``); each module of
this package registers one evaluator with ``@register_evaluator(name)``."""
from evaluators.scores.base import EVALUATORS, Evaluator, Score, create_evaluator, register_evaluator

__all__ = ["EVALUATORS", "Evaluator", "Score", "create_evaluator", "register_evaluator"]
