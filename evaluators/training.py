"""Brief rectified-flow training of a candidate's temporal layers (METHOD.md §4).

The spatial backbone stays frozen; AdamW updates only ``model.temporal``. Everything
random — batches, t ~ logit-normal(m, s), noise — comes from one generator seeded by
``seed``, so a run is a function of (seed, starting weights, architecture). A loss that
is not finite raises :class:`TrainingFailed`, which the runner turns into a failed result.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from evaluators.config import TrainConfig
from evaluators.data import LatentDataset
from evaluators.flow import flow_loss, logit_normal_t, video_noise


class TrainingFailed(RuntimeError):
    """A candidate's training cannot go on (non-finite loss, out of memory)."""


@dataclass(frozen=True)
class TrainStats:
    steps: int
    loss: float | None  # mean loss over the last quarter of the steps
    seconds: float


def temporal_state(model) -> dict[str, torch.Tensor]:
    """The temporal weights, on the CPU: what a child inherits."""
    return {k: v.detach().cpu().clone() for k, v in model.temporal.state_dict().items()}


def inherit(model, parent_state: dict[str, torch.Tensor] | None) -> list[str]:
    """Load the parent's temporal weights where key and shape match (weight inheritance):
    layers the child shares with its parent start from the parent's values, an added layer
    keeps its zero-initialised (identity) output. Returns the keys loaded."""
    if not parent_state:
        return []
    own = model.temporal.state_dict()
    shared = {k: v for k, v in parent_state.items() if k in own and own[k].shape == v.shape}
    model.temporal.load_state_dict(shared, strict=False)
    return sorted(shared)


def param_groups(model, config: TrainConfig) -> list[dict]:
    """The temporal parameters, one AdamW group per operator type, at ``lr × lr_scale[op]``."""
    groups: dict[str, list] = {}
    for key, stack in model.temporal.items():  # keys are "{slot}_{op}"
        op = key.split("_", 1)[1]
        groups.setdefault(op, []).extend(p for p in stack.parameters() if p.requires_grad)
    return [{"params": ps, "lr": config.lr * config.lr_scale.get(op, 1.0)} for op, ps in groups.items() if ps]


def train_temporal(model, data: LatentDataset, steps: int, config: TrainConfig, seed: int,
                   device: str | torch.device = "cpu", after_step=None) -> TrainStats:
    """``after_step(n)``, if given, is called after the n-th optimiser step (e.g. to score
    the model at lower fidelities, as the tabulated benchmark does; it must draw no random
    numbers from this run's generator, so the run is the same with or without it)."""
    import time

    start = time.perf_counter()
    params = [p for p in model.temporal.parameters() if p.requires_grad]
    if not params or steps == 0:  # the backbone alone: nothing to train
        return TrainStats(0, None, time.perf_counter() - start)
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(param_groups(model, config), lr=config.lr, weight_decay=config.weight_decay)
    stream = data.batches("train", config.batch, gen)
    model.eval()
    model.temporal.train()  # the frozen backbone stays in eval mode
    tail: list[float] = []
    for step in range(steps):
        batch = next(stream)
        x0, text = batch.latents.to(device), batch.text.to(device)
        t = logit_normal_t(len(x0), config.logit_mean, config.logit_std, gen, device)
        noise = video_noise(x0.shape, gen, config.noise_correlation).to(device)
        loss = flow_loss(model, x0, text, t, noise)
        value = loss.item()
        if not math.isfinite(value):
            raise TrainingFailed(f"loss became {value} at step {step + 1} of {steps}")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if config.max_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm)
        opt.step()
        if step >= steps - max(1, steps // 4):
            tail.append(value)
        if after_step is not None:
            after_step(step + 1)
    model.eval()
    return TrainStats(steps, sum(tail) / len(tail), time.perf_counter() - start)
