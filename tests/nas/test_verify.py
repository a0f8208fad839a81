"""``hwnas pareto verify``: the real runner, evaluator, Optuna storage and (once) Ray; a campaign
whose trials are recorded with chosen search qualities, so the front is known."""
from __future__ import annotations

import json
import shutil

import pytest
import yaml

from core.budgets import Budgets
from core.errors import ConfigError
from evaluators.runner import CandidateResult
from nas.campaign import Campaign
from nas.config import Experiment
from nas.pareto import Point, compute_front
from nas.strategies import Candidate, Outcome
from nas.verify import choose, proportion_se, protocol, rank_agreement, run_verify, spread, verify
from search_spaces.space import SearchSpace
from tests.nas.conftest import analytic_cost, small_config

VERIFY = {"steps": 2, "batch": 2, "options": {"prompts": 4, "sample_steps": 2}, "top": 8, "contrast": 3, "min_architectures": 8}


# the correlation and the wrong pairs, on constructed numbers ---------------------------
def test_rank_agreement_names_the_pairs_ordered_wrongly():
    out = rank_agreement(["a", "b", "c", "d"], [4.0, 3.0, 2.0, 1.0], [0.9, 0.5, 0.6, 0.1])
    assert out["misordered"] == [["b", "c"]]
    assert out["spearman"] == pytest.approx(0.8) and out["kendall"] == pytest.approx(4 / 6)
    assert out["n"] == 4 and out["pairs"] == 6
    # reversed: every pair wrong, in the search's order
    out = rank_agreement(["a", "b", "c"], [1.0, 2.0, 3.0], [3.0, 2.0, 1.0])
    assert out["spearman"] == pytest.approx(-1.0) and out["kendall"] == pytest.approx(-1.0)
    assert out["misordered"] == [["c", "b"], ["c", "a"], ["b", "a"]]
    # ties are not wrong; a constant quality has no correlation
    out = rank_agreement(["a", "b", "c"], [1.0, 2.0, 3.0], [0.2, 0.2, 0.2])
    assert out["misordered"] == [] and out["spearman"] is None and out["kendall"] is None
    assert rank_agreement(["a", "b"], [1.0, 2.0], [1.0, 2.0])["spearman"] is None  # too few
    assert "misordered_beyond_noise" not in out  # no standard errors given


def test_wrong_pairs_within_the_verified_noise_are_told_apart(tiny_config_path):
    # search: a > b > c; verified: c above both, b above a by less than twice its error
    out = rank_agreement(["a", "b", "c"], [3.0, 2.0, 1.0], [0.20, 0.22, 0.40], [0.025, 0.025, 0.03])
    assert out["misordered"] == [["a", "b"], ["a", "c"], ["b", "c"]]
    assert out["misordered_beyond_noise"] == [["a", "c"], ["b", "c"]]  # 0.02 < 2 * hypot(0.025, 0.025)
    # prompt_suite's motion accuracy over 256 held-out captions: a binomial share
    exp = Experiment.from_dict({**yaml.safe_load(open(tiny_config_path)), "verify": {"evaluator": "prompt_suite"}})
    proto = protocol(exp)
    assert proportion_se(proto, 0.2) == pytest.approx((0.2 * 0.8 / 256) ** 0.5)
    assert proportion_se(protocol(exp, evaluator="flow_loss"), 0.9) is None


def test_choice_takes_the_best_of_the_front_and_dominated_ones_across_the_range():
    assert spread([1, 2, 3, 4, 5, 6, 7], 3) == [1, 4, 7] and spread([1, 2], 5) == [1, 2] and spread([1, 2], 1) == [1]
    # front: a (fast, poor) ... d (slow, good); dominated: e..i, worse and slower than d
    front = [Point(a, q, lat, 1.0) for a, q, lat in (("a", 0.1, 1), ("b", 0.2, 2), ("c", 0.3, 3), ("d", 0.4, 4))]
    dominated = [Point(a, q, 5.0, 1.0) for a, q in (("e", 0.05), ("f", 0.15), ("g", 0.25), ("h", 0.35), ("i", 0.38))]
    fr = compute_front(front + dominated + [Point("e", 0.01, 5.0, 1.0)], (0.0, 10.0, 10.0))
    picked = choose(fr, top=2, contrast=1, minimum=5)
    assert [c.arch for c in picked] == ["d", "i", "c", "g", "e"]  # best first; e counted with its best
    assert [c.on_front for c in picked] == [True, False, True, False, False]
    assert picked[-1].search_quality == 0.05
    assert len(choose(fr, top=8, contrast=0, minimum=0)) == 4
    with pytest.raises(ConfigError, match="--top 0"):
        choose(fr, top=0, contrast=1)


# a campaign with real trials ---------------------------------------------------------------
def make_campaign(tmp_path, tiny_config_path, work, name="camp", workers=0, trials=True, rescore=None):
    cfg_path = small_config(tmp_path / f"{name}.yaml", tiny_config_path, work, search={"workers": workers},
                            rescore=rescore)
    cfg = yaml.safe_load(cfg_path.read_text())
    cfg["verify"] = VERIFY
    exp = Experiment.from_dict(cfg)
    camp = Campaign.create(tmp_path / name, exp.to_dict())
    if trials:
        space = SearchSpace(exp.space)
        archs = [space.parse(",".join(f"{s}:{op}:1" for s, op in zip(("down0", "mid"), pair) if op))
                 for pair in [(a, b) for a in ("", "conv1d", "self_attn1d") for b in ("", "conv1d", "self_attn1d")]]
        for i, arch in enumerate(archs):
            cost = analytic_cost(space, arch)
            # conv1d better and cheaper than self_attn1d: a front of 3, 6 dominated
            quality = 0.5 + sum({"conv1d": 0.02, "self_attn1d": 0.01}[layer.op] for _, layer in arch.items())
            c = Candidate(f"c{i}", arch, 3, 0)
            camp.record(space, Outcome(c, CandidateResult(str(arch), "ok", None, quality, {"flow": quality}), cost),
                        {}, 0, Budgets())
    return camp


def test_verify_stores_scores_on_the_trials_resumes_and_shows_them(tmp_path, tiny_config_path, work, hwnas):
    camp = make_campaign(tmp_path, tiny_config_path, work)
    front = camp.front()
    assert len(front.points) == 3  # so that 5 dominated architectures are verified too

    class Killed(Exception):
        pass

    seen = []

    def kill_after_three(entry):
        seen.append(entry["arch"])
        if len(seen) == 3:
            raise Killed

    with pytest.raises(Killed):
        run_verify(camp.root, on_result=kill_after_three)
    record = next((camp.root / "verify").glob("prompt_suite-*.json"))
    assert set(json.loads(record.read_text())["results"]) == set(seen)

    run = hwnas("pareto", "verify", camp.root, "--json")
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    points = out["points"]
    assert len(points) == 8 and all(p["status"] == "ok" for p in points)
    assert {p["arch"] for p in points if p["cached"]} == set(seen)  # the 3 finished before the kill kept
    assert {p["on_front"] for p in points} == {True, False}
    assert [p["search_quality"] for p in points] == sorted((p["search_quality"] for p in points), reverse=True)
    assert out["evaluator"] == "prompt_suite" and out["quality_key"] == "motion"
    assert out["protocol"]["steps"] == 2 and out["protocol"]["options"]["prompts"] == 4
    expected = rank_agreement([p["arch"] for p in points], [p["search_quality"] for p in points],
                              [p["verified_quality"] for p in points])
    for key in ("spearman", "kendall", "misordered", "n"):
        assert out[key] == expected[key]

    # stored with the trials: every finished trial of each verified architecture
    by_arch = {p["arch"]: p for p in points}
    annotated = 0
    for t in camp.trials():
        a = t.user_attrs
        if a["arch"] in by_arch:
            p = by_arch[a["arch"]]
            assert a["verified.prompt_suite.quality"] == p["verified_quality"] == p["breakdown"]["motion"]
            assert a["verified.prompt_suite.quality_key"] == "motion"
            assert a["verified.prompt_suite.breakdown"] == p["breakdown"]
            assert a["verified.prompt_suite.protocol"] == out["protocol"]["sha256"]
            annotated += 1
        else:
            assert not any(k.startswith("verified.") for k in a)
    assert annotated == 8

    # a rerun under the same protocol trains nothing
    events = len([e for e in camp.events() if e["event"] == "verified"])
    again = json.loads(hwnas("pareto", "verify", camp.root, "--json").stdout)
    assert all(p["cached"] for p in again["points"]) and again["spearman"] == out["spearman"]
    assert len([e for e in camp.events() if e["event"] == "verified"]) == events

    # pareto show: the verified columns
    shown = json.loads(hwnas("pareto", "show", camp.root, "--json").stdout)
    for p in shown["front"]:
        assert p["verified"]["prompt_suite"]["quality"] == by_arch[p["arch"]]["verified_quality"]
    table = hwnas("pareto", "show", camp.root)
    assert table.returncode == 0 and "verified prompt_suite" in table.stdout and "motion=" in table.stdout
    text = hwnas("pareto", "verify", camp.root)
    assert "Spearman" in text.stdout and "Kendall" in text.stdout and "pairs ordered wrongly" in text.stdout


def test_more_seeds_average_the_ground_truth_and_train_only_what_is_new(tmp_path, tiny_config_path, work, hwnas):
    camp = make_campaign(tmp_path, tiny_config_path, work)
    one = run_verify(camp.root, top=1, contrast=1)
    assert one["protocol"]["seeds"] == [0] and one["verified_se"] == "binomial"
    events = len([e for e in camp.events() if e["event"] == "verified"])
    run = hwnas("pareto", "verify", camp.root, "--top", "1", "--contrast", "1", "--seeds", "2", "--json")
    assert run.returncode == 0, run.stderr
    two = json.loads(run.stdout)
    assert two["protocol"]["seeds"] == [0, 1] and two["verified_se"] == "seeds"
    assert two["records"][0] == one["record"]  # seed 0 is the one-seed protocol: reused, not retrained
    assert events == len(one["points"]) == len(two["points"])
    assert len([e for e in camp.events() if e["event"] == "verified"]) == 2 * events  # seed 1 of each only
    records = [json.loads(open(r).read())["results"] for r in two["records"]]
    by_arch = {p["arch"]: p for p in two["points"]}
    per_seed_se = []
    for arch, p in by_arch.items():
        runs = [rec[arch] for rec in records]
        assert [r["seed"] for r in runs] == [0, 1]
        assert runs[0]["train_loss"] != runs[1]["train_loss"]  # the seed reached the training
        assert p["verified_seeds"] == [r["verified_quality"] for r in runs]
        assert p["verified_quality"] == pytest.approx(sum(p["verified_seeds"]) / 2)
        per_seed_se.append(p["verified_seeds"])
        for t in camp.trials():
            if t.user_attrs["arch"] == arch:
                assert t.user_attrs["verified.prompt_suite.quality"] == p["verified_quality"]
                assert t.user_attrs["verified.prompt_suite.seeds"] == [0, 1]
    # the standard error: the spread between seeds pooled over the architectures, over sqrt(2)
    pooled = (sum((q[0] - q[1]) ** 2 / 2 for q in per_seed_se) / len(per_seed_se)) ** 0.5
    assert [p["verified_se"] for p in two["points"]] == pytest.approx([pooled / 2 ** 0.5] * len(by_arch))
    run = hwnas("pareto", "verify", camp.root, "--seeds", "0")
    assert run.returncode == 2 and "--seeds 0" in run.stderr and len(run.stderr.splitlines()) == 1


def test_a_campaign_without_verification_shows_no_verified_column(tmp_path, tiny_config_path, work, hwnas):
    camp = make_campaign(tmp_path, tiny_config_path, work)
    table = hwnas("pareto", "show", camp.root)
    assert table.returncode == 0 and "verified" not in table.stdout
    assert all(p["verified"] == {} for p in json.loads(hwnas("pareto", "show", camp.root, "--json").stdout)["front"])


def test_same_protocol_same_numbers_on_ray_workers(tmp_path, tiny_config_path, work):
    """In-process and on a Ray actor (another process): the same verified numbers."""
    inline = make_campaign(tmp_path, tiny_config_path, work, "inline", workers=0)
    on_ray = make_campaign(tmp_path, tiny_config_path, work, "ray", workers=1)
    outs = []
    for camp in (inline, on_ray):
        exp = camp.experiment()
        choices = choose(camp.front(), top=1, contrast=1)
        outs.append(verify(camp, protocol(exp), choices))
    assert outs[0]["protocol"]["sha256"] == outs[1]["protocol"]["sha256"]  # the pool is not the protocol
    for a, b in zip(outs[0]["points"], outs[1]["points"]):
        assert a["arch"] == b["arch"] and a["status"] == b["status"] == "ok"
        assert (a["verified_quality"], a["breakdown"], a["train_loss"]) == (b["verified_quality"], b["breakdown"],
                                                                          b["train_loss"])


def test_bad_input_is_one_line_and_exit_2(tmp_path, tiny_config_path, work, hwnas):
    empty = make_campaign(tmp_path, tiny_config_path, work, "empty", trials=False)
    run = hwnas("pareto", "verify", empty.root)
    assert run.returncode == 2 and "no candidate has finished" in run.stderr and len(run.stderr.splitlines()) == 1
    camp = make_campaign(tmp_path, tiny_config_path, work)
    run = hwnas("pareto", "verify", camp.root, "--evaluator", "clip_score")
    assert run.returncode == 2 and "unknown evaluator" in run.stderr and "prompt_suite" in run.stderr
    assert len(run.stderr.splitlines()) == 1
    for args in (("--top", "0"), ("--steps", "0"), ("--contrast", "-1")):
        run = hwnas("pareto", "verify", camp.root, *args)
        assert run.returncode == 2 and args[0] in run.stderr and len(run.stderr.splitlines()) == 1
    assert not (camp.root / "verify").exists()  # nothing was run


def test_the_verify_section_is_typed_and_does_not_change_the_campaign(tmp_path, tiny_config_path, work):
    cfg = yaml.safe_load(small_config(tmp_path / "c.yaml", tiny_config_path, work).read_text())
    with pytest.raises(ConfigError, match="verify.step: unknown key"):
        Experiment.from_dict({**cfg, "verify": {"step": 3}})
    with pytest.raises(ConfigError, match="verify: evaluator: unknown evaluator 'nope'"):
        Experiment.from_dict({**cfg, "verify": {"evaluator": "nope"}})
    with pytest.raises(ConfigError, match="verify.options.prompt: unknown key; allowed: prompts"):
        Experiment.from_dict({**cfg, "verify": {"options": {"prompt": 3}}})
    exp = Experiment.from_dict(cfg)
    assert exp.verify.evaluator == "prompt_suite" and protocol(exp).quality_key == "motion"
    assert protocol(exp, evaluator="flow_loss").quality_key == "quality"
    camp = Campaign.create(tmp_path / "camp", exp.to_dict())
    edited = Experiment.from_dict({**cfg, "verify": {"steps": 7, "lr": 3e-4}})
    again = Campaign.create(tmp_path / "camp", edited.to_dict())  # a new protocol is not another search
    assert again.meta["config_sha256"] == camp.meta["config_sha256"]
    assert again.experiment().verify.steps == 7 and protocol(again.experiment()).experiment.train.lr == 3e-4
    # the protocol's t does not touch the search's pre-trained backbone
    shifted = protocol(Experiment.from_dict({**cfg, "verify": {"logit_mean": 1.0}})).experiment.train
    assert shifted.logit_mean == 1.0 and shifted.pretrain.logit_mean == exp.train.logit_mean
    shutil.rmtree(tmp_path / "camp")


def test_a_campaign_directory_moved_or_copied_reads_its_own_trials(tmp_path, tiny_config_path, work, hwnas):
    camp = make_campaign(tmp_path, tiny_config_path, work)
    before = json.loads(hwnas("pareto", "show", camp.root, "--json").stdout)["front"]
    assert json.loads((camp.root / "campaign.json").read_text())["storage"] is None  # DIR/trials.db, not a path
    moved = tmp_path / "elsewhere" / "camp"
    shutil.copytree(camp.root, moved)
    shutil.rmtree(camp.root)
    after = hwnas("pareto", "show", moved, "--json")
    assert after.returncode == 0, after.stderr
    assert json.loads(after.stdout)["front"] == before
    # a campaign created before this rule recorded its trials.db by absolute path
    meta = json.loads((moved / "campaign.json").read_text())
    (moved / "campaign.json").write_text(json.dumps({**meta, "storage": f"sqlite:///{camp.root / 'trials.db'}"}))
    assert json.loads(hwnas("pareto", "show", moved, "--json").stdout)["front"] == before


def test_after_the_final_stage_the_search_quality_is_the_rescored_one(tmp_path, tiny_config_path, work):
    camp = make_campaign(tmp_path, tiny_config_path, work, rescore={"steps": 5})
    space = SearchSpace(camp.experiment().space)
    rescored = {"empty": 0.9, "mid:self_attn1d:1": 0.8, "down0:conv1d:1": 0.7}  # not the brief trials' order
    for a, q in rescored.items():
        arch = space.parse(a)
        c = Candidate(f"rescore:{a}", arch, 5, 0, role="rescore")
        camp.record(space, Outcome(c, CandidateResult(str(arch), "ok", None, q, {}), analytic_cost(space, arch)),
                    {}, 1, Budgets())
    assert run_verify(camp.root)["search_stage"] == {"stage": "search", "steps": 3}  # not complete yet
    camp.save_state({"rescored": camp.experiment().rescore.key()})
    out = run_verify(camp.root)
    assert out["search_stage"] == {"stage": "rescore", "steps": 5}
    assert {p["arch"]: p["search_quality"] for p in out["points"]} == rescored
    # and how the brief trials (the conv1d ones above the self_attn1d ones) ranked the same three
    brief = {t.user_attrs["arch"]: t.values[0] for t in camp.trials() if t.user_attrs["role"] != "rescore"}
    expected = rank_agreement(list(rescored), [brief[a] for a in rescored],
                              [p["verified_quality"] for p in sorted(out["points"], key=lambda p: -rescored[p["arch"]])])
    assert out["brief_trials"]["qualities"] == {a: brief[a] for a in rescored} != rescored
    assert out["brief_trials"]["steps"] == 3 and out["brief_trials"]["spearman"] == expected["spearman"]
    assert out["brief_trials"]["misordered"] == expected["misordered"]
