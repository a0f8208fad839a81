"""Data, brief training and quality scores for candidate architectures.

``CandidateRunner`` is the entry point a search worker uses; ``evaluators.data`` the
dataset format; ``evaluators.scores`` the evaluator registry.
"""
from evaluators.runner import CandidateResult, CandidateRunner

__all__ = ["CandidateResult", "CandidateRunner"]
