"""The worker pools' contract, the same tests for the in-process pool and Ray actors: every
job comes back once, with the runner's result unchanged (weights included); a runner that
raises fails only its job; architectures travel as objects."""
from __future__ import annotations

import pytest
import torch

from evaluators.runner import CandidateResult
from nas.workers import InlinePool, Job, RayPool
from search_spaces.architecture import Architecture


class EchoRunner:
    """Quality = number of layers + the parent's weight; ``boom`` architectures raise."""

    def prepare(self, progress=None):
        return {}

    def run(self, arch, parent_state, steps, seed):
        assert isinstance(arch, Architecture)
        if "cross_attn1d" in str(arch):
            raise RuntimeError("boom\nsecond line")
        base = float(parent_state["w"]) if parent_state else 0.0
        layers = sum(l.count for _, l in arch.items())
        return CandidateResult(str(arch), "ok", None, layers + base, {"steps": float(steps)},
                               {"w": torch.tensor(float(seed))}, 0.1, steps, 0.0)


class EchoSpec:
    def __call__(self):
        return EchoRunner()


POOLS = {"inline": lambda: InlinePool(EchoSpec()),
         "ray": lambda: RayPool(EchoSpec(), workers=2, timeout_s=120)}


@pytest.fixture(params=list(POOLS), scope="module")
def pool(request):
    with POOLS[request.param]() as p:
        yield p


def test_every_job_once_with_the_runners_result(pool):
    parent = {"w": torch.tensor(10.0)}
    jobs = [Job("a", Architecture.parse("mid:conv1d:2"), 5, 7, parent),
            Job("b", Architecture.parse("empty"), 3, 8),
            Job("c", Architecture.parse("down0:conv1d:1,mid:self_attn1d:1"), 4, 9, parent)]
    out = {job.key: result for job, result in pool.evaluate(jobs)}
    assert set(out) == {"a", "b", "c"}
    assert out["a"].quality == 12.0 and out["b"].quality == 0.0 and out["c"].quality == 12.0
    assert out["a"].breakdown == {"steps": 5.0}
    assert float(out["c"].state["w"]) == 9.0  # the child's weights come back
    assert all(j.wall_s > 0 for j in jobs)


def test_a_raising_runner_fails_only_its_job(pool):
    jobs = [Job("bad", Architecture.parse("mid:cross_attn1d:1"), 1, 0), Job("good", Architecture.parse("mid:conv1d:1"), 1, 0)]
    out = {job.key: result for job, result in pool.evaluate(jobs)}
    assert out["good"].status == "ok"
    assert out["bad"].status == "failed" and out["bad"].reason == "RuntimeError: boom"
