"""Pareto fronts and the exact 3-D hypervolume, cross-checked against Optuna's."""
from __future__ import annotations

import numpy as np
import pytest
from optuna._hypervolume import compute_hypervolume

from core.budgets import Budgets
from nas.pareto import Point, compute_front, dominates, hypervolume, pareto_front, reference_point


@pytest.mark.parametrize("n", [1, 2, 7, 40])
def test_hypervolume_matches_optuna(n):
    rng = np.random.default_rng(n)
    pts = rng.random((n, 3))
    ref = np.array([1.05, 1.1, 1.0])
    inside = pts[(pts < ref).all(axis=1)]
    expected = compute_hypervolume(inside, ref) if len(inside) else 0.0
    assert hypervolume(pts.tolist(), ref.tolist()) == pytest.approx(expected, rel=1e-12)


def test_hypervolume_of_a_box_and_of_points_outside():
    assert hypervolume([(0, 0, 0)], (1, 2, 3)) == pytest.approx(6.0)
    assert hypervolume([(0, 0, 5)], (1, 2, 3)) == 0.0  # not better than the reference
    assert hypervolume([(0, 0, 0), (0.5, 0.5, 0.5)], (1, 1, 1)) == pytest.approx(1.0)  # dominated adds nothing


def test_front_keeps_exactly_the_non_dominated_points():
    pts = [Point("a", 0.9, 10, 100), Point("b", 0.8, 5, 100), Point("c", 0.7, 6, 100),  # c dominated by b
           Point("d", 0.95, 20, 50), Point("a", 0.5, 10, 100)]  # a seen twice: its best counts
    front = pareto_front(pts)
    assert [p.arch for p in front] == ["b", "a", "d"]
    assert all(not dominates(q.losses(), p.losses()) for p in front for q in pts)


def test_reference_point_from_budgets_and_infeasible_points_add_nothing():
    budgets = Budgets(latency_ms=10.0, memory_mib=1.0)
    inside, outside = Point("in", 0.9, 8.0, 2**19), Point("out", 0.99, 12.0, 2**19)
    ref = reference_point([inside, outside], budgets, quality=0.5)
    assert ref == (0.5, 10.0, float(2**20))
    front = compute_front([inside, outside], ref)
    assert {p.arch for p in front.points} == {"in", "out"}
    assert front.hypervolume == pytest.approx(0.4 * 2.0 * 2**19)
    data = front.to_dict(budgets)
    assert [p["feasible"] for p in data["front"]] == [True, False]
