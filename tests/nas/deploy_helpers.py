"""Shared by the train / sample / gallery / export tests: a small experiment whose data and
pre-trained backbone (30 steps) are made once per test session, and a campaign with three
evaluated architectures and the stored weights of one of them."""
from __future__ import annotations

import copy
from pathlib import Path

import torch

SMALL = {
    "name": "small", "seed": 0,
    "space": {"backbone": {"preset": "tiny"}, "video": {"frames": 4, "height": 16, "width": 16},
              "text": {"tokens": 8}, "ops": ["conv1d", "self_attn1d", "cross_attn1d"], "max_layers": 2,
              "slots": ["down0", "mid", "up1"], "op_options": {"head_dim": 16, "qk_norm": True, "rope": True}},
    "data": {"videos": 24, "val_videos": 4},
    "train": {"steps": 2, "batch": 2, "threads": 1, "pretrain": {"steps": 30, "batch": 8}},
    "evaluator": {"name": "flow_loss", "options": {"val_clips": 4, "t_values": [0.5]}},
    "lut": {"warmup": 1, "repeats": 3},
    "budgets": {"latency_ms": 100.0},
    "search": {"workers": 0},
}
ARCHS = {  # arch -> (quality, latency_ms, memory_bytes): all three on the front
    "mid:conv1d:1": (0.10, 10.0, 1.0e6),
    "down0:conv1d:1,mid:conv1d:1": (0.20, 20.0, 2.0e6),
    "down0:conv1d:2,mid:self_attn1d:1,up1:cross_attn1d:1": (0.30, 200.0, 3.0e6),  # over the latency budget
}
STORED = "down0:conv1d:1,mid:conv1d:1"


def shared_workdir(tmp_path_factory) -> Path:
    """One data set and pre-trained backbone for every test module of the session."""
    path = tmp_path_factory.getbasetemp() / "deploy-work"
    path.mkdir(exist_ok=True)
    return path


def experiment(workdir: Path, **changes) -> dict:
    exp = copy.deepcopy(SMALL)
    exp["search"]["workdir"] = str(workdir)
    exp.update(changes)
    return exp


def write_config(path: Path, exp: dict) -> Path:
    import yaml

    path.write_text(yaml.safe_dump(exp))
    return path


def make_campaign(root: Path, workdir: Path, stored_state: dict | None = None, relative: bool = False):
    """A campaign of three evaluated architectures; ``stored_state`` is kept as the
    checkpoint of ``STORED`` (the current model's weights). ``relative``: the config states
    its latency budget relative to the backbone, which the search resolved to 100 ms."""
    from core.budgets import Budgets
    from evaluators.runner import CandidateResult
    from nas.campaign import Campaign
    from nas.config import Experiment
    from nas.strategies import Candidate, Cost, Outcome
    from search_spaces.architecture import Architecture
    from search_spaces.space import SearchSpace

    exp = Experiment.from_dict(experiment(workdir, **({"budgets": {"latency_over_backbone_pct": 900.0}}
                                                       if relative else {})))
    camp = Campaign.create(root, exp.to_dict())
    budgets = Budgets(latency_ms=100.0) if relative else exp.budgets
    camp.set_budgets(budgets)
    space = SearchSpace(exp.space)
    for i, (arch, (q, lat, mem)) in enumerate(ARCHS.items()):
        a = Architecture.parse(arch)
        cand = Candidate(f"r0.c{i}", a, 2, 0, "child", None, None, None, arch == STORED)
        result = CandidateResult(arch, "ok", None, q, {"flow_loss": q}, stored_state or {}, 0.1, 2, 1.0)
        camp.record(space, Outcome(cand, result, Cost(lat, mem)), {}, 0, budgets)
        if arch == STORED and stored_state is not None:
            camp.save_result(cand, result)
    return camp


def perturbed_temporal_state(workdir: Path, arch: str, seed: int = 1) -> dict:
    """Temporal weights of ``arch`` that are not the identity (random output projections)."""
    from nas.config import Experiment
    from search_spaces.space import SearchSpace

    exp = Experiment.from_dict(experiment(workdir))
    space = SearchSpace(exp.space)
    torch.manual_seed(seed)
    model = space.build(space.parse(arch), "cpu")
    state = {k: v.clone() for k, v in model.temporal.state_dict().items()}
    g = torch.Generator().manual_seed(seed)
    for k in state:
        if "proj_out" in k:
            state[k] = 0.05 * torch.randn(state[k].shape, generator=g)
    return state
