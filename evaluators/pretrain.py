"""Spatial pre-training: the backbone is an *image* model, trained first on single frames,
then frozen for every candidate (SnapGen-V). The weights are cached under a key that
hashes the backbone config, the data and these settings, and written atomically (temp
file + ``os.replace``) so concurrent workers may race to the same cache safely.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch

from core.errors import HwnasError
from core.io import atomic_torch
from evaluators.config import PretrainConfig, TrainConfig
from evaluators.data import LatentDataset
from evaluators.flow import flow_loss, logit_normal_t


def cache_key(unet_config: dict, data: LatentDataset, pretrain: PretrainConfig, train: TrainConfig) -> str:
    # diffusers' private keys (``_use_default_values``, a set) vary in order between processes
    unet_config = {k: v for k, v in unet_config.items() if not k.startswith("_")}
    blob = json.dumps({"unet": unet_config, "data": data.fingerprint, "steps": pretrain.steps,
                       "batch": pretrain.batch, "lr": pretrain.lr, "m": t_mean(pretrain, train), "s": t_std(pretrain, train)},
                      sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def t_mean(pretrain: PretrainConfig, train: TrainConfig) -> float:
    return train.logit_mean if pretrain.logit_mean is None else pretrain.logit_mean


def t_std(pretrain: PretrainConfig, train: TrainConfig) -> float:
    return train.logit_std if pretrain.logit_std is None else pretrain.logit_std


def _schedule(opt, pretrain: PretrainConfig):
    # One-cycle needs at least two steps on each side of its peak; very short runs
    # (smoke tests) keep the learning rate constant.
    if pretrain.steps < 4:
        return torch.optim.lr_scheduler.ConstantLR(opt, factor=1.0, total_iters=0)
    return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=pretrain.lr, total_steps=pretrain.steps,
                                               pct_start=max(0.1, 2 / pretrain.steps))


def pretrain_spatial(unet, data: LatentDataset, pretrain: PretrainConfig, train: TrainConfig,
                     seed: int = 0, device: str | torch.device = "cpu", progress=None,
                     checkpoint: str | Path | None = None, checkpoint_every: int = 25) -> dict[str, float]:
    """Train the 2D ``unet`` in place by rectified flow on single frames of the train split
    (each frame conditioned on its clip's caption). Returns the loss at the start and end.

    With ``checkpoint``, the state (weights, optimiser, schedule, step) is written there
    atomically every ``checkpoint_every`` steps and a killed run continues from it; the
    random draws of the finished steps are replayed (cheap: no forward), so the result is
    the same as an uninterrupted run's."""
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    unet.train().requires_grad_(True)
    opt = torch.optim.AdamW(unet.parameters(), lr=pretrain.lr, weight_decay=0.0)
    sched = _schedule(opt, pretrain)
    stream = data.batches("train", min(pretrain.batch, data.count("train")), gen)
    first = last = float("nan")
    ema, start = None, 0
    if checkpoint is not None and Path(checkpoint).is_file():
        saved = torch.load(checkpoint, map_location="cpu", weights_only=True)
        unet.load_state_dict(saved["unet"])
        opt.load_state_dict(saved["opt"])
        sched.load_state_dict(saved["sched"])
        start, first, ema = saved["step"], saved["first"], saved["ema"]
    for step in range(pretrain.steps):
        batch = next(stream)
        b, t = batch.latents.shape[:2]
        frame = torch.randint(t, (b,), generator=gen)  # one random frame of each clip
        x0 = batch.latents[torch.arange(b), frame].to(device)
        text = batch.text.to(device)
        tt = logit_normal_t(x0.shape[0], t_mean(pretrain, train), t_std(pretrain, train), gen, device)
        noise = torch.randn(x0.shape, generator=gen).to(device)
        if step < start:  # finished before the kill: its draws replayed, nothing trained
            continue
        loss = flow_loss(lambda x, ts, c: unet(x, ts, encoder_hidden_states=c).sample, x0, text, tt, noise)
        if not torch.isfinite(loss):
            raise HwnasError(f"spatial pre-training diverged at step {step} (loss {loss.item()}); lower "
                             f"train.pretrain.lr ({pretrain.lr})")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        opt.step()
        sched.step()
        value = loss.item()
        ema = value if ema is None else 0.95 * ema + 0.05 * value
        if step == 0:
            first = value
        last = ema
        if progress is not None:
            progress(step + 1, pretrain.steps, ema)
        if checkpoint is not None and (step + 1) % checkpoint_every == 0 and step + 1 < pretrain.steps:
            atomic_torch(checkpoint, {"unet": unet.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),
                                      "step": step + 1, "first": first, "ema": ema})
    unet.eval().requires_grad_(False)
    return {"first_loss": first, "final_loss": last}
