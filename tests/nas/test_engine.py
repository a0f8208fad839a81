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
from search_spaces.architecture import Architecture
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


def with_lut(tmp_path, tiny_config_path, work, lut, search, **lut_options) -> Experiment:
    """The small experiment on table ``lut`` with ``lut_options`` set."""
    cfg = small_config(tmp_path / "c.yaml", tiny_config_path, work, lut=lut, search=search)
    data = yaml.safe_load(cfg.read_text())
    data["lut"].update(lut_options)
    cfg.write_text(yaml.safe_dump(data))
    return Experiment.load(cfg)


def holey_table(tmp_path, tiny_config_path, work, small_lut):
    """The small table less one operator row (conv1d at mid, then priced by estimate): its
    path, the dropped key and the space."""
    from lookup_tables import LookupTable
    from search_spaces.space import SearchSpace

    space = SearchSpace(Experiment.load(small_config(tmp_path / "c0.yaml", tiny_config_path, work,
                                                     lut=small_lut)).space)
    table = LookupTable.load(small_lut)
    dropped = space.slot("mid").shape("conv1d").key
    table.rows = table.rows.drop(dropped)
    return table.save(tmp_path / "holey.parquet"), dropped, space


def test_an_unsure_estimate_is_measured_before_the_decision(tmp_path, tiny_config_path, work, small_lut):
    """A table missing one operator row prices it by estimate; with lut.measure_unsure_ms the
    campaign measures it on its device, keeps it (provenance) in its own copy, and a resume
    prices from that copy."""
    from lookup_tables import LookupTable

    holey, dropped, _ = holey_table(tmp_path, tiny_config_path, work, small_lut)
    experiment = with_lut(tmp_path, tiny_config_path, work, holey, {"strategy": "snapgen", "max_train_steps": 30,
                                                                    "workers": 0},
                          measure_unsure_ms=0.0)  # every estimate is unsure
    camp = Campaign.create(tmp_path / "camp", experiment.to_dict())
    Search(camp, experiment, pool=FakePool()).run()
    measured = [e for e in camp.events() if e["event"] == "lut_measured_when_unsure"]
    assert [e["key"] for e in measured] == [dropped]
    own = LookupTable.load(camp.root / "lut.parquet")
    assert own.row(dropped)["provenance"] == "measured-during-search"
    assert dropped not in LookupTable.load(holey)  # the user's table is untouched
    Search(Campaign.open(camp.root), pool=FakePool()).run()  # a resume accepts the campaign's copy


class PricedQualityPool(FakePool):
    """Quality proportional to the latency the table predicts: every addition gains the same
    per ms, so the best two of an evolution step tie and any latency error could swap them."""

    def __init__(self, cost):
        super().__init__()
        self.cost = cost

    def evaluate(self, jobs):
        for job, _ in super().evaluate(jobs):
            q = 0.01 * self.cost(job.arch).latency_ms
            yield job, CandidateResult(str(job.arch), "ok", None, q, {"flow": q}, {"w": torch.zeros(1)}, 0.1,
                                       job.steps, 0.01)


@pytest.mark.parametrize("strategy", ["snapgen", "random"])
def test_an_estimate_less_sure_than_the_decision_gap_is_measured(tmp_path, tiny_config_path, work, small_lut,
                                                                  strategy):
    """With lut.measure_unsure_gap (and no threshold) an estimate is measured when its error
    exceeds the latency change that would swap the strategy's best two actions (here they
    tie); a strategy that does not rank on latency (random) states no gap: nothing is measured."""
    from lookup_tables import LookupTable
    from nas.engine import TableCost

    holey, dropped, space = holey_table(tmp_path, tiny_config_path, work, small_lut)
    options = {"combine": "latency"} if strategy == "snapgen" else {}
    experiment = with_lut(tmp_path, tiny_config_path, work, holey, {"strategy": strategy, "max_train_steps": 30,
                                                                    "workers": 0, "options": options},
                          measure_unsure_gap=True)
    camp = Campaign.create(tmp_path / "camp", experiment.to_dict())
    Search(camp, experiment, pool=PricedQualityPool(TableCost(LookupTable.load(holey), space))).run()
    measured = [e for e in camp.events() if e["event"] == "lut_measured_when_unsure"]
    if strategy == "random":
        assert not measured
        return
    assert [e["key"] for e in measured] == [dropped]
    (e,) = measured
    assert e["gap_ms"] < e["error_ms"] and e["threshold_ms"] == e["gap_ms"]
    assert LookupTable.load(camp.root / "lut.parquet").row(dropped)["provenance"] == "measured-during-search"


@pytest.mark.parametrize("strategy", ["snapgen", "random"])
def test_actions_closer_than_the_tables_error_are_measured_and_decided_on(tmp_path, tiny_config_path, work,
                                                                          small_lut, strategy):
    """With lut.measure_actions_ms the children whose predicted latency could swap the decision
    by changing less than that are timed against their parent on this device, and the strategy
    decides on (and the trials record) the parent's prediction plus the measured ΔLatency; a
    strategy that does not rank on latency (random) has nothing measured."""
    from lookup_tables import LookupTable
    from nas.engine import TableCost
    from search_spaces.space import SearchSpace

    options = {"combine": "latency"} if strategy == "snapgen" else {}
    experiment = with_lut(tmp_path, tiny_config_path, work, small_lut, {"strategy": strategy, "max_train_steps": 30,
                                                                        "workers": 0, "options": options},
                          measure_actions_ms=0.05, measure_actions_rounds=4)
    space = SearchSpace(experiment.space)
    predict = TableCost(LookupTable.load(small_lut), space)
    camp = Campaign.create(tmp_path / "camp", experiment.to_dict())
    Search(camp, experiment, pool=PricedQualityPool(predict)).run()
    measured = [e for e in camp.events() if e["event"] == "action_measured"]
    if strategy == "random":
        assert not measured
        return
    assert measured and all(e["gap_ms"] < 0.05 and e["rounds"] == 4 for e in measured)
    trials = {t.user_attrs["candidate_id"]: t for t in camp.trials()}
    for e in measured:  # recorded at the parent's prediction plus the measured ΔLatency
        t = trials[e["candidate"]]
        parent = predict(Architecture.parse(t.user_attrs["parent"])).latency_ms
        assert t.values[1] == pytest.approx(parent + e["measured_ms"])
        assert e["predicted_ms"] == pytest.approx(predict(Architecture.parse(t.user_attrs["arch"])).latency_ms - parent)
        assert t.user_attrs["delta_latency_ms"] == pytest.approx(e["measured_ms"])  # the strategy's own ΔLat


def test_measuring_actions_with_a_table_of_another_device_fails_before_any_training(tmp_path, tiny_config_path, work,
                                                                                   small_lut):
    from lookup_tables import DeviceMismatchError, LookupTable

    table = LookupTable.load(small_lut)
    table.meta["fingerprint"] = dict(table.fingerprint, device_name="a phone's NPU")
    table.save(tmp_path / "phone.parquet")
    experiment = with_lut(tmp_path, tiny_config_path, work, tmp_path / "phone.parquet",
                          {"strategy": "snapgen", "max_train_steps": 30, "workers": 0}, measure_actions_ms=0.05)
    pool = FakePool()
    with pytest.raises(DeviceMismatchError, match="the campaign's device .*device_name"):
        Search(Campaign.create(tmp_path / "camp", experiment.to_dict()), experiment, pool=pool).run()
    assert not pool.jobs


# the final stage (rescore) -------------------------------------------------------------------
class LongerTrainingReorders(FakePool):
    """The synthetic objective, turned upside down for runs of ``long`` steps or more: what
    longer training shows is not what K steps show."""

    long = 7

    def evaluate(self, jobs):
        for job, result in super().evaluate(jobs):
            if job.steps >= self.long:
                result = CandidateResult(result.arch, "ok", None, -result.quality, {"flow": -result.quality},
                                         {"w": torch.full((1,), float(job.steps))}, 0.1, job.steps, 0.02)
            yield job, result


def rescoring(tmp_path, tiny_config_path, work, small_lut, name="c.yaml", rescore=None, max_train_steps=18):
    return Experiment.load(small_config(tmp_path / name, tiny_config_path, work, lut=small_lut,
                                        search={"strategy": "random", "max_train_steps": max_train_steps,
                                                "workers": 0},
                                        rescore={"steps": 7, "top": 2, "contrast": 1, "min_architectures": 3}
                                        if rescore is None else rescore))


def test_the_final_stage_retrains_the_shortlist_and_its_front_is_the_campaigns(tmp_path, tiny_config_path, work,
                                                                               small_lut, hwnas):
    import json

    from nas.verify import choose

    exp = rescoring(tmp_path, tiny_config_path, work, small_lut)
    camp = Campaign.create(tmp_path / "camp", exp.to_dict())
    pool, rec = LongerTrainingReorders(), Recorder()
    Search(camp, exp, pool=pool).run(rec)
    brief = [j for j in pool.jobs if j.steps == 3]
    final = [j for j in pool.jobs if j.steps == 7]
    assert len(brief) == 6 and pool.jobs[:6] == brief  # the stage runs after the search
    shortlist = [c.arch for c in choose(camp.front("search"), top=2, contrast=1, minimum=3)]
    assert len(shortlist) == 3 and sorted(str(j.arch) for j in final) == sorted(shortlist)
    # from the frozen backbone, the experiment's seed, the stage's own time limit
    assert all(j.parent_state is None and j.seed == exp.seed and j.timeout_s == exp.rescore.timeout_s
               and j.timeout_key == "rescore.timeout_s" for j in final)
    stored = {t.user_attrs["arch"]: t.values[0] for t in camp.trials() if t.user_attrs["role"] == "rescore"}
    assert stored == {str(j.arch): -synthetic_quality(j.arch, j.seed) for j in final}
    # the campaign's front is now the re-scored one; the search's is kept as it was
    assert {p.arch for p in camp.front().evaluated} == set(shortlist)
    assert max(p.quality for p in camp.front().points) == max(stored.values())
    assert len(camp.front("search").evaluated) == 6
    assert rec.events[-4:] == ["rescored", "rescored", "rescore_finished", "stopped"]
    assert rec.events.count("rescore_started") == 1
    status = camp.status()
    assert status["stage"] == "rescore" and status["rescored"] == 3 and status["steps_used"] == 18
    assert status["budget"]["rescore_steps"] == 21 and status["budget"]["training_steps"] == 18
    # each re-scored architecture's weights are kept: `hwnas train --pick` continues from them
    from nas.deploy import stored_weights

    best = max(camp.front().points, key=lambda p: p.quality).arch
    weights, info = stored_weights(camp, best)
    assert info["candidate"].startswith("rescore") and info["steps"] == 7 and weights["w"].item() == 7.0
    # the CLI shows the final front by default, the search's on request
    final, search = (json.loads(hwnas("pareto", "show", camp.root, "--json", *extra).stdout)
                     for extra in ([], ["--stage", "search"]))
    assert final["stage"] == "rescore" and {p["arch"] for p in final["front"]} <= set(shortlist)
    assert search["stage"] == "search" and [p["arch"] for p in search["front"]] == \
        [p.arch for p in camp.front("search").points]
    shown = hwnas("pareto", "show", camp.root)
    assert shown.returncode == 0 and "re-scored after 7 training steps" in shown.stdout
    # run again: nothing left to train
    again = LongerTrainingReorders()
    Search(Campaign.open(camp.root), pool=again).run()
    assert again.jobs == []


def test_a_kill_in_the_final_stage_resumes_with_what_is_left(tmp_path, tiny_config_path, work, small_lut):
    exp = rescoring(tmp_path, tiny_config_path, work, small_lut)
    camp = Campaign.create(tmp_path / "camp", exp.to_dict())
    killed = LongerTrainingReorders(kill_after=7)  # the search's 6, then one re-scored architecture
    with pytest.raises(Killed):
        Search(camp, exp, pool=killed).run()
    assert not camp.rescored() and len(camp.front().evaluated) == 6  # until complete: the search's front
    assert len(camp.front("rescore").evaluated) == 1
    pool = LongerTrainingReorders()
    Search(Campaign.open(camp.root), pool=pool).run()
    assert [j.steps for j in pool.jobs] == [7, 7] and str(killed.jobs[-1].arch) not in {str(j.arch) for j in pool.jobs}
    whole = Campaign.create(tmp_path / "whole", exp.to_dict())
    Search(whole, exp, pool=LongerTrainingReorders()).run()
    assert [(p.arch, p.quality) for p in camp.front().points] == [(p.arch, p.quality) for p in whole.front().points]


def test_a_kill_between_a_checkpoint_and_its_trial_trains_nothing_twice(tmp_path, tiny_config_path, work, small_lut,
                                                                        monkeypatch):
    exp = rescoring(tmp_path, tiny_config_path, work, small_lut)
    camp = Campaign.create(tmp_path / "camp", exp.to_dict())
    record = Campaign.record

    def killed_at_the_first_rescored_trial(self, space, outcome, *args):
        if outcome.candidate.role == "rescore":
            raise Killed()
        return record(self, space, outcome, *args)

    monkeypatch.setattr(Campaign, "record", killed_at_the_first_rescored_trial)
    with pytest.raises(Killed):
        Search(camp, exp, pool=LongerTrainingReorders()).run()
    monkeypatch.setattr(Campaign, "record", record)
    assert len(list(camp.ckpt_dir.glob("rescore7-*.pt"))) == 1 and not camp.points("rescore")
    pool = LongerTrainingReorders()
    Search(Campaign.open(camp.root), pool=pool).run()
    assert len(pool.jobs) == 2 and all(j.key.startswith("rescore7-") for j in pool.jobs)
    assert len(camp.points("rescore")) == 3


def test_a_final_stage_added_to_a_finished_campaign_runs_alone(tmp_path, tiny_config_path, work, small_lut):
    without = rescoring(tmp_path, tiny_config_path, work, small_lut, "a.yaml", rescore={})
    camp = Campaign.create(tmp_path / "camp", without.to_dict())
    Search(camp, without, pool=LongerTrainingReorders()).run()
    assert camp.status()["rescored"] is None and camp.status()["stage"] == "search"
    with_stage = rescoring(tmp_path, tiny_config_path, work, small_lut, "b.yaml")
    camp = Campaign.create(tmp_path / "camp", with_stage.to_dict())  # the same search: the same campaign
    pool = LongerTrainingReorders()
    Search(camp, pool=pool).run()
    assert [j.steps for j in pool.jobs] == [7, 7, 7] and camp.rescored()


def test_an_edited_final_stage_runs_again_and_reuses_what_it_trained(tmp_path, tiny_config_path, work, small_lut):
    exp = rescoring(tmp_path, tiny_config_path, work, small_lut)
    camp = Campaign.create(tmp_path / "camp", exp.to_dict())
    Search(camp, exp, pool=LongerTrainingReorders()).run()
    first = {p.arch for p in camp.points("rescore")}
    # one more architecture of contrast: only it trains; the front is of all four
    wider = rescoring(tmp_path, tiny_config_path, work, small_lut, "b.yaml",
                      rescore={"steps": 7, "top": 2, "contrast": 2, "min_architectures": 4})
    camp = Campaign.create(tmp_path / "camp", wider.to_dict())
    assert not camp.rescored()  # the stage as now stated has not run: the search's front meanwhile
    pool = LongerTrainingReorders()
    Search(camp, pool=pool).run()
    assert len(pool.jobs) == 1 and str(pool.jobs[0].arch) not in first and camp.rescored()
    assert {p.arch for p in camp.front().evaluated} == first | {str(pool.jobs[0].arch)}
    # longer: every architecture trains again, and the front is of the new steps alone
    longer = rescoring(tmp_path, tiny_config_path, work, small_lut, "c.yaml",
                       rescore={"steps": 9, "top": 2, "contrast": 2, "min_architectures": 4})
    camp = Campaign.create(tmp_path / "camp", longer.to_dict())
    pool = LongerTrainingReorders()
    Search(camp, pool=pool).run()
    assert [j.steps for j in pool.jobs] == [9] * 4 and len(camp.front().evaluated) == 4
    assert camp.status()["rescored"] == 4


class FailsLongRuns(LongerTrainingReorders):
    """Every run of ``long`` steps or more of the architectures in ``failing`` fails."""

    def __init__(self, failing: set[str]):
        super().__init__()
        self.failing = failing

    def evaluate(self, jobs):
        for job, result in super().evaluate(jobs):
            if job.steps >= self.long and str(job.arch) in self.failing:
                result = CandidateResult(result.arch, "failed", "out of memory", None)
            yield job, result


def test_a_failed_final_run_is_tried_again_and_a_smaller_stage_shrinks_the_front(tmp_path, tiny_config_path,
                                                                                  work, small_lut):
    from nas.rescore import shortlist

    exp = rescoring(tmp_path, tiny_config_path, work, small_lut)
    camp = Campaign.create(tmp_path / "camp", exp.to_dict())
    listed = [c.arch for c in shortlist(_searched(tmp_path, exp), exp.rescore)]
    bad = listed[0]
    Search(camp, exp, pool=FailsLongRuns({bad})).run()
    assert camp.rescored() and {p.arch for p in camp.points("rescore")} == set(listed) - {bad}
    failed = [t for t in camp.trials() if t.user_attrs["role"] == "rescore" and t.values is None]
    assert [t.user_attrs["arch"] for t in failed] == [bad] and failed[0].user_attrs["reason"] == "out of memory"
    finished = [e for e in camp.events() if e["event"] == "rescore_finished"]
    assert finished[-1]["failed"] == 1
    pool = LongerTrainingReorders()  # the next run tries the failed one again, and only it
    Search(Campaign.open(camp.root), pool=pool).run()
    assert [str(j.arch) for j in pool.jobs] == [bad] and pool.jobs[0].key.endswith("~1")
    assert {p.arch for p in camp.front().evaluated} == set(listed)
    # a smaller stage: the front is of its shortlist alone, nothing trains
    smaller = rescoring(tmp_path, tiny_config_path, work, small_lut, "s.yaml",
                        rescore={"steps": 7, "top": 1, "contrast": 0, "min_architectures": 1})
    camp = Campaign.create(tmp_path / "camp", smaller.to_dict())
    pool = LongerTrainingReorders()
    Search(camp, pool=pool).run()
    assert pool.jobs == [] and [p.arch for p in camp.front().evaluated] == listed[:1]


def _searched(tmp_path, exp):
    """A campaign of ``exp`` searched (the stage's shortlist follows from its trials alone)."""
    camp = Campaign.create(tmp_path / "searched", exp.to_dict())
    Search(camp, exp, pool=FakePool()).run()
    return camp


def test_the_final_stage_is_typed(tmp_path, tiny_config_path, work, small_lut):
    from core.errors import ConfigError

    for bad, key in [({"steps": 0}, "rescore: steps"), ({"steps": 5, "contrast": -1}, "rescore: contrast"),
                     ({"steps": 5, "topp": 2}, "rescore")]:
        with pytest.raises(ConfigError, match=key):
            rescoring(tmp_path, tiny_config_path, work, small_lut, rescore=bad)
