"""The longer training after the search (``hwnas train``): one chosen architecture trained
by rectified flow with logit-normal t, as in the search, but for many more steps.

Options beyond the brief training of a candidate: unfreeze the spatial layers (with their
own, smaller learning rate), mix image batches (one frame per clip, T = 1) with the video
batches as SnapGen-V trains images and videos jointly, a learning-rate schedule with
warm-up, an EMA of the weights, gradient clipping, and a checkpoint every N steps from
which a killed run resumes exactly where it stopped.

Determinism: the batches come from one generator seeded by ``seed`` (a resumed run
fast-forwards it past the batches already used), and each step's t, noise and image/video
choice from a generator seeded by (seed, step). So a run on the CPU is a function of the
seed and the starting weights, and a run killed and resumed ends with the same weights
as one that was never interrupted.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Literal

import torch

from core.errors import one_line
from core.io import atomic_torch
from evaluators.data import LatentDataset
from evaluators.flow import flow_loss, logit_normal_t
from evaluators.model_dir import ModelError, config_sha256
from evaluators.training import TrainingFailed


@dataclass(frozen=True)
class LongTrainConfig:
    """Options of the long training. ``lr``: the temporal layers' peak learning rate;
    ``spatial_lr`` the spatial layers' when ``unfreeze_spatial`` (default ``lr / 10``);
    ``schedule`` after ``warmup_steps`` of linear warm-up; ``ema`` the EMA decay (None: off);
    ``image_ratio`` the share of steps that train on image batches."""

    steps: int = 1000
    batch: int = 4
    lr: float = 1e-3
    weight_decay: float = 0.0
    schedule: Literal["constant", "cosine", "linear"] = "cosine"
    warmup_steps: int = 0
    min_lr_ratio: float = 0.1
    ema: float | None = 0.999
    max_grad_norm: float | None = 1.0
    unfreeze_spatial: bool = False
    spatial_lr: float | None = None
    image_ratio: float = 0.0
    checkpoint_every: int = 100
    log_every: int = 10
    logit_mean: float = -1.0
    logit_std: float = 1.0

    def __post_init__(self):
        for name in ("steps", "batch", "checkpoint_every", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.warmup_steps < 0:
            raise ValueError("warmup_steps must be non-negative")
        if self.lr <= 0 or (self.spatial_lr is not None and self.spatial_lr <= 0):
            raise ValueError("learning rates must be positive")
        if self.ema is not None and not 0.0 < self.ema < 1.0:
            raise ValueError(f"ema must be in (0, 1) or off, got {self.ema}")
        if not 0.0 <= self.image_ratio < 1.0:
            raise ValueError(f"image_ratio must be in [0, 1), got {self.image_ratio}")
        if self.max_grad_norm is not None and self.max_grad_norm <= 0:
            raise ValueError("max_grad_norm must be positive")
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            raise ValueError("min_lr_ratio must be in [0, 1]")

    def lr_factor(self, step: int) -> float:
        """Multiplier of the peak learning rate at ``step`` (0-based)."""
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        span = max(1, self.steps - self.warmup_steps)
        progress = min(1.0, (step - self.warmup_steps) / span)
        if self.schedule == "constant":
            return 1.0
        if self.schedule == "linear":
            return 1.0 - (1.0 - self.min_lr_ratio) * progress
        return self.min_lr_ratio + (1.0 - self.min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


@dataclass
class LongTrainResult:
    steps: int
    resumed_from: int | None
    final_loss: float | None
    log: list  # [step, mean loss since the previous entry, lr]
    seconds: float


class Stop(Exception):
    """Raised by a ``on_step`` callback to stop the run (tests use it to simulate a kill)."""


def _step_generator(seed: int, step: int) -> torch.Generator:
    return torch.Generator().manual_seed((seed * 1_000_003 + step) % (2 ** 63))


def read_checkpoint(checkpoint: str | Path, identity: dict) -> dict | None:
    """The resume state at ``checkpoint`` (None when there is none), refused with a
    ``ModelError`` when it was written for another ``identity`` (config, architecture,
    options, seed, starting weights)."""
    checkpoint = Path(checkpoint)
    if not checkpoint.is_file():
        return None
    digest = config_sha256(identity)
    try:
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001
        raise ModelError(f"{checkpoint}: unreadable checkpoint ({one_line(exc, with_type=True)})") from None
    if state.get("identity_sha256") != digest:
        raise ModelError(
            f"{checkpoint}: a checkpoint of another config or architecture ({state.get('arch', '?')}, "
            f"sha256 {str(state.get('identity_sha256', '?'))[:12]}, this run {digest[:12]}); "
            f"give another --out or remove it")
    return state


def run_identity(experiment: dict, arch: str, config: LongTrainConfig, seed: int, init_info: dict | None) -> dict:
    """What a checkpoint must have been written for to be resumed by this run."""
    return {"experiment": experiment, "arch": arch, "options": asdict(config), "seed": seed,
            "init": init_info or {"source": "identity"}}


def trainable(model, config: LongTrainConfig) -> list[dict]:
    groups = [{"params": [p for p in model.temporal.parameters()], "lr": config.lr, "name": "temporal"}]
    if config.unfreeze_spatial:
        groups.append({"params": list(model.unet.parameters()), "lr": config.spatial_lr or config.lr / 10,
                       "name": "spatial"})
    return [g for g in groups if g["params"]]


def train_long(model, data: LatentDataset, config: LongTrainConfig, seed: int, checkpoint: str | Path,
               identity: dict, device: str | torch.device = "cpu",
               on_step: Callable[[int, int, float], None] | None = None) -> tuple[LongTrainResult, dict | None]:
    """Train ``model`` (a VideoUNet) in place. ``checkpoint`` is written every
    ``checkpoint_every`` steps and at the end; when it exists it is resumed, after checking
    that it was written for the same ``identity`` (config, architecture, options, seed).
    Returns the result and the EMA weights ({name: tensor} of every trained parameter),
    or None when EMA is off."""
    start = time.perf_counter()
    checkpoint = Path(checkpoint)
    device = torch.device(device)
    model.unet.requires_grad_(config.unfreeze_spatial)
    groups = trainable(model, config)
    named = {n: p for n, p in model.named_parameters()
             if (n.startswith("temporal.") or (config.unfreeze_spatial and n.startswith("unet.")))}
    for g in groups:
        g["initial_lr"] = g["lr"]
    opt = torch.optim.AdamW(groups, lr=config.lr, weight_decay=config.weight_decay) if groups else None
    ema = {n: p.detach().clone() for n, p in named.items()} if config.ema is not None else None
    log: list = []
    window: list[float] = []  # losses since the last log entry
    step0, resumed = 0, None
    digest = config_sha256(identity)
    state = read_checkpoint(checkpoint, identity)
    if state is not None:
        model.load_state_dict(state["model"])
        if opt is not None:
            opt.load_state_dict(state["optimizer"])
        if ema is not None:
            ema = {k: v.to(device) for k, v in state["ema"].items()}
        step0 = resumed = int(state["step"])
        log, window = list(state["log"]), list(state.get("window", []))
    if not named or step0 >= config.steps:
        return LongTrainResult(step0, resumed, log[-1][1] if log else None, log, time.perf_counter() - start), \
            ({k: v.cpu() for k, v in ema.items()} if ema else None)

    data_gen = torch.Generator().manual_seed(seed)
    stream = data.batches("train", config.batch, data_gen)
    for _ in range(step0):  # the batches a resumed run has already used
        next(stream)

    def save(step: int) -> None:
        atomic_torch(checkpoint, {"identity_sha256": digest, "arch": str(model.architecture), "step": step,
                                  "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
                                  "optimizer": opt.state_dict() if opt is not None else {},
                                  "ema": {k: v.cpu() for k, v in ema.items()} if ema is not None else {},
                                  "log": log, "window": window, "config": asdict(config)})

    model.eval()
    model.temporal.train()
    if config.unfreeze_spatial:
        model.unet.train()
    for step in range(step0, config.steps):
        gen = _step_generator(seed, step)
        factor = config.lr_factor(step)
        for g in opt.param_groups:
            g["lr"] = g["initial_lr"] * factor
        batch = next(stream)
        x0, text = batch.latents, batch.text
        if config.image_ratio > 0 and float(torch.rand(1, generator=gen)) < config.image_ratio:
            frame = torch.randint(x0.shape[1], (x0.shape[0],), generator=gen)
            x0 = x0[torch.arange(x0.shape[0]), frame][:, None]  # image batch: (B, 1, C, H, W)
        x0, text = x0.to(device), text.to(device)
        t = logit_normal_t(len(x0), config.logit_mean, config.logit_std, gen, device)
        noise = torch.randn(x0.shape, generator=gen).to(device)
        loss = flow_loss(model, x0, text, t, noise)
        value = loss.item()
        if not math.isfinite(value):
            raise TrainingFailed(f"loss became {value} at step {step + 1} of {config.steps}; lower --lr ({config.lr})")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if config.max_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_([p for g in groups for p in g["params"]], config.max_grad_norm)
        opt.step()
        if ema is not None:
            with torch.no_grad():
                for n, p in named.items():
                    ema[n].lerp_(p.detach(), 1.0 - config.ema)
        window.append(value)
        done = step + 1
        if done % config.log_every == 0 or done == config.steps:
            log.append([done, sum(window) / len(window), opt.param_groups[0]["lr"]])
            window = []
        if done % config.checkpoint_every == 0 or done == config.steps:
            save(done)
        if on_step is not None:
            on_step(done, config.steps, value)
    model.eval()
    model.requires_grad_(False)
    return (LongTrainResult(config.steps, resumed, log[-1][1] if log else None, log, time.perf_counter() - start),
            {k: v.cpu() for k, v in ema.items()} if ema is not None else None)


def train_model(experiment: dict, arch: str, out: str | Path, config: LongTrainConfig, seed: int,
                workdir: str | Path, init_state: dict | None = None, init_info: dict | None = None,
                device: str = "cpu", threads: int | None = None, progress=None,
                on_step: Callable[[int, int, float], None] | None = None) -> dict:
    """Train ``arch`` of the experiment (a plain config dict with ``space``, ``data``,
    ``train``) into the model folder ``out``. The data and the pre-trained spatial backbone
    come from ``workdir`` (a campaign's workdir reuses its cache). ``init_state``: temporal
    weights to start from (a campaign's stored weights); without it the temporal layers
    start as the identity. Returns the training record (also in ``out/training.json``)."""
    import dataclasses

    from core.config import parse
    from evaluators.config import DataConfig, EvaluatorConfig, TrainConfig
    from evaluators.model_dir import PIXEL_TRANSFORM, write_model
    from evaluators.runner import CandidateRunner
    from evaluators.training import inherit
    from search_spaces.space import SpaceConfig

    out = Path(out)
    space_cfg = SpaceConfig.from_dict(experiment["space"])
    data_cfg = parse(DataConfig, experiment.get("data", {}), "data")
    train_cfg = dataclasses.replace(parse(TrainConfig, experiment.get("train", {}), "train"), device=device,
                                    threads=threads)
    runner = CandidateRunner(space_cfg, data_cfg, train_cfg, EvaluatorConfig(), workdir, seed)
    from search_spaces.space import SearchSpace

    parsed = SearchSpace(space_cfg).parse(arch)
    identity = run_identity(experiment, str(parsed), config, seed, init_info)
    read_checkpoint(out / "checkpoint.pt", identity)  # another config's checkpoint: refused before any work
    with runner._threads():
        runner.prepare(progress)
        torch.manual_seed(seed)
        from search_spaces.backbones import build_unet

        unet = build_unet(space_cfg.backbone, "cpu")
        unet.load_state_dict(runner.unet.state_dict())  # a private copy: unfreezing must not touch the cache
        model = runner.space.build(parsed, unet=unet).to(device)
        loaded = inherit(model, init_state)
        expected = sorted(model.temporal.state_dict())
        if init_state and loaded != expected:
            raise ModelError(f"the stored weights for {parsed} do not fit its layers "
                             f"({len(loaded)} of {len(expected)} tensors match): weights of another config")
        result, ema = train_long(model, runner.dataset, config, seed, out / "checkpoint.pt", identity, device,
                                 on_step)
    if ema:  # the EMA weights are the ones a user samples and exports
        with torch.no_grad():
            params = dict(model.named_parameters())
            for name, value in ema.items():
                params[name].copy_(value.to(params[name].device))
    data = runner.dataset
    record = {"arch": str(parsed), "seed": seed, "device": str(device), "options": asdict(config),
              "init": identity["init"], "steps": result.steps, "resumed_from": result.resumed_from,
              "final_loss": result.final_loss, "log": result.log, "seconds": result.seconds,
              "ema_weights": ema is not None, "data": str(runner.data_dir), "backbone": runner.info.get("backbone")}
    meta = {"arch": str(parsed), "experiment": experiment, "config_sha256": config_sha256(experiment),
            "text": {"name": data_cfg.text_encoder, "encoder": data.meta.get("encoder"),
                     "tokens": data.text_shape[0], "dim": data.text_shape[1]},
            "latents": {"transform": data.meta.get("transform"),
                        "pixel_space": data.meta.get("transform") == PIXEL_TRANSFORM},
            "init": identity["init"], "ema": ema is not None, "steps": result.steps}
    write_model(out, meta, model.unet.state_dict(), model.temporal.state_dict(), record)
    return record
