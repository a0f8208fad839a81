"""Successive halving inside A1 in a real campaign: real training in-process (InlinePool),
the small tiny space (2 slots x 2 operators, one layer each), K = 4, so rungs of 1, 2 and 4
steps. Each rung's survivors continue from their previous rung's checkpoint (a missing one
would stop the campaign with a CampaignError), and the campaign converges on fewer training
steps than full evaluation of the same rung-0 candidates would take. With the margin rule at
margin 0 every evolution step is decided at the first rung."""
from __future__ import annotations

import pytest

from nas.campaign import Campaign
from nas.config import Experiment
from nas.engine import Search
from tests.nas.conftest import small_config

K = 4


@pytest.mark.parametrize("margin,rung", [(None, 2), (0.0, 0)], ids=["no-margin", "margin-0"])
def test_snapgen_with_halving_runs_a_real_campaign_end_to_end(tmp_path, tiny_config_path, work, small_lut,
                                                              margin, rung):
    cfg = small_config(tmp_path / "c.yaml", tiny_config_path, work, lut=small_lut,
                       search={"strategy": "snapgen", "options": {"halving": True, "halving_margin": margin},
                               "steps": K, "max_train_steps": 60, "workers": 0})
    experiment = Experiment.load(cfg)
    camp = Campaign.create(tmp_path / "camp", experiment.to_dict())
    Search(camp, experiment).run()

    state = camp.load_state()
    strategy = state["strategy"]
    assert strategy["done"] and strategy["stop_reason"].startswith("converged"), strategy["stop_reason"]
    decisions = strategy["decisions"]  # each at the last rung, or (margin 0) at the first
    assert decisions and all(d["rung"] == rung for d in decisions)
    assert decisions[0]["action"] and strategy["current"] == decisions[-1]["to"]

    events = camp.events()
    rounds = [e for e in events if e["event"] == "round_started"]
    by_id = {c["id"]: c for r in rounds for c in r["candidates"]}
    trained = [e for e in events if e["event"] == "candidate"]
    assert trained and all(e["status"] == "ok" for e in trained)
    for cid, c in by_id.items():
        r = int(cid.split(".h")[1][0])
        assert r <= rung and c["steps"] == [1, 1, 2][r]  # the rung's additional training: 1, 2 - 1, 4 - 2
        if r:  # continued from its own previous rung's weights
            assert c["parent_weights"] == cid.replace(f".h{r}.", f".h{r - 1}.")
    rung0 = [c for c in by_id.values() if ".h0." in c["id"]]
    evolution_steps = {c["id"].split(".")[0] for c in rung0}
    assert state["steps_used"] == sum(c["steps"] for c in by_id.values())
    assert state["steps_used"] < K * len(rung0)  # full evaluation: every rung-0 candidate trained K
    assert len(evolution_steps) == len(decisions)
    assert camp.status()["budget"]["training_steps"] == state["steps_used"]
