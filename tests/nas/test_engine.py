"""The search engine (``nas.engine.Search``) with a fake pool: what it records, what it
emits, and that a run killed between candidates resumes without losing or repeating one.
The campaign store, the lookup table, the space and the strategies are the real ones."""
from __future__ import annotations

import pytest
import torch
import yaml

from evaluators.runner import CandidateResult
from nas.campaign import Campaign
from nas.config import Experiment
from nas.engine import Observer, Search
from nas.workers import WorkerPool
from tests.nas.conftest import small_config, synthetic_quality


class Killed(Exception):
    pass


class FakePool(WorkerPool):
    """Answers each job with the synthetic objective; raises Killed after ``kill_after`` jobs."""

    def __init__(self, kill_after: int | None = None):
        super().__init__(lambda: type("R", (), {"prepare": lambda self, progress=None: {}})())
        self.kill_after, self.jobs = kill_after, []

    def evaluate(self, jobs):
        for job in jobs:
            if self.kill_after is not None and len(self.jobs) >= self.kill_after:
                raise Killed()
            self.jobs.append(job)
            q = synthetic_quality(job.arch, job.seed)
            yield job, CandidateResult(str(job.arch), "ok", None, q, {"flow": q}, {"w": torch.zeros(1)}, 0.1,
                                       job.steps, 0.01)


class Recorder(Observer):
    def __init__(self):
        self.events = []

    def event(self, kind, fields):
        self.events.append(kind)


@pytest.fixture
def experiment(tmp_path, tiny_config_path, work, small_lut):
    return Experiment.load(small_config(tmp_path / "c.yaml", tiny_config_path, work, lut=small_lut,
                                        search={"strategy": "random", "max_train_steps": 18, "workers": 0}))


def test_records_every_candidate_and_emits_each_event_once(tmp_path, experiment):
    camp = Campaign.create(tmp_path / "camp", experiment.to_dict())
    pool, rec = FakePool(), Recorder()
    reason = Search(camp, experiment, pool=pool).run(rec)
    assert "budget" in reason or "no unseen" in reason
    trials = camp.trials()
    assert len(trials) == len(pool.jobs) == 6  # 18 steps / K = 3
    assert sorted(t.user_attrs["arch"] for t in trials) == sorted(str(j.arch) for j in pool.jobs)
    logged = [e["event"] for e in camp.events() if e["event"] != "created"]
    assert logged == rec.events  # one emission feeds both the log and the observer
    assert rec.events[0] == "started" and rec.events[-1] == "stopped"
    assert rec.events.count("candidate") == 6
    assert camp.status()["steps_used"] == 18
    assert camp.study().metric_names == ["quality", "latency_ms", "memory_bytes"]


def test_killed_run_resumes_without_losing_or_repeating(tmp_path, experiment):
    camp = Campaign.create(tmp_path / "camp", experiment.to_dict())
    with pytest.raises(Killed):
        Search(camp, experiment, pool=FakePool(kill_after=3)).run()
    done_before = {e["id"] for e in camp.events() if e["event"] == "candidate"}
    assert len(done_before) == 3
    pool = FakePool()
    Search(Campaign.open(camp.root), pool=pool).run()  # rebuilt from the frozen config
    retrained = {j.key for j in pool.jobs} & done_before
    assert not retrained  # finished candidates come from their checkpoints
    ids = [t.user_attrs["candidate_id"] for t in camp.trials()]
    assert len(ids) == len(set(ids)) == 6
    uninterrupted = Campaign.create(tmp_path / "whole", experiment.to_dict())
    Search(uninterrupted, experiment, pool=FakePool()).run()
    assert sorted(t.user_attrs["arch"] for t in uninterrupted.trials()) == \
        sorted(t.user_attrs["arch"] for t in camp.trials())
    assert "resumed" in [e["event"] for e in camp.events()]


def test_an_unsure_estimate_is_measured_before_the_decision(tmp_path, tiny_config_path, work, small_lut):
    """A table missing one operator row prices it by estimate; with lut.measure_unsure_ms the
    campaign measures it on its device, keeps it (provenance) in its own copy, and a resume
    prices from that copy."""
    from lookup_tables import LookupTable
    from search_spaces.space import SearchSpace

    exp0 = Experiment.load(small_config(tmp_path / "c0.yaml", tiny_config_path, work, lut=small_lut))
    space = SearchSpace(exp0.space)
    table = LookupTable.load(small_lut)
    dropped = space.slot("mid").shape("conv1d").key
    table.rows = table.rows.drop(dropped)
    table.save(tmp_path / "holey.parquet")
    cfg = small_config(tmp_path / "c.yaml", tiny_config_path, work, lut=tmp_path / "holey.parquet",
                       search={"strategy": "snapgen", "max_train_steps": 30, "workers": 0})
    data = yaml.safe_load(cfg.read_text())
    data["lut"]["measure_unsure_ms"] = 0.0  # every estimate is unsure
    cfg.write_text(yaml.safe_dump(data))
    experiment = Experiment.load(cfg)
    camp = Campaign.create(tmp_path / "camp", experiment.to_dict())
    Search(camp, experiment, pool=FakePool()).run()
    measured = [e for e in camp.events() if e["event"] == "lut_measured_when_unsure"]
    assert [e["key"] for e in measured] == [dropped]
    own = LookupTable.load(camp.root / "lut.parquet")
    assert own.row(dropped)["provenance"] == "measured-during-search"
    assert dropped not in LookupTable.load(tmp_path / "holey.parquet")  # the user's table is untouched
    Search(Campaign.open(camp.root), pool=FakePool()).run()  # a resume accepts the campaign's copy
