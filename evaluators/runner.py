"""``CandidateRunner``: what a search worker does with one candidate.

Built from plain config dataclasses (a Ray actor can construct it). ``prepare()`` does the
one-off work — the dataset, the pre-trained frozen spatial backbone, the evaluator with
its fixed validation noise — and ``run()`` trains one architecture briefly from its
parent's temporal weights and scores it. ``run`` never raises: a non-finite loss, an
out-of-memory error or any other exception ends that candidate as ``failed`` with a
one-line reason.
"""
from __future__ import annotations

import contextlib
import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from core.errors import one_line
from core.io import atomic_torch
from evaluators.config import DataConfig, EvaluatorConfig, TrainConfig
from evaluators.data import DataError, LatentDataset
from evaluators.pretrain import cache_key, pretrain_spatial
from evaluators.scores import create_evaluator
from evaluators.synth import synthesise
from evaluators.training import TrainingFailed, inherit, temporal_state, train_temporal
from search_spaces.architecture import Architecture
from search_spaces.backbones import build_unet
from search_spaces.space import SearchSpace, SpaceConfig


@dataclass
class CandidateResult:
    arch: str
    status: str  # "ok" | "failed"
    reason: str | None
    quality: float | None
    breakdown: dict[str, float] = field(default_factory=dict)
    state: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)
    train_loss: float | None = None
    steps: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict:
        """Plain data (the weights left out)."""
        return {k: v for k, v in vars(self).items() if k != "state"}


class CandidateRunner:
    def __init__(self, space_config: SpaceConfig, data: DataConfig, train: TrainConfig,
                 evaluator: EvaluatorConfig, workdir: str | Path, seed: int = 0):
        self.space_config, self.data_config = space_config, data
        self.train_config, self.evaluator_config = train, evaluator
        self.workdir, self.seed = Path(workdir), seed
        self.device = torch.device(train.device)
        self.space: SearchSpace | None = None
        self.dataset: LatentDataset | None = None
        self.unet = None
        self.evaluator = None
        self.info: dict = {}

    # One-off work ------------------------------------------------------------------
    @property
    def data_dir(self) -> Path:
        return Path(self.data_config.dir) if self.data_config.dir else self.workdir / "data"

    def _dataset(self, space: SearchSpace) -> LatentDataset:
        cfg, path = self.data_config, self.data_dir
        _, frames, channels, height, width = space.video_shape
        _, tokens, dim = space.text_shape
        if cfg.dir is None and not (path / "meta.json").is_file():
            if cfg.set == "realistic":
                from evaluators.realistic import synthesise_realistic

                synthesise_realistic(path, cfg.videos, cfg.val_videos, frames, height, width, tokens, dim, cfg.seed,
                                     cfg.text_encoder, cache_dir=self.workdir / "cache")
            else:
                synthesise(path, cfg.videos, cfg.val_videos, frames, height, width, tokens, dim, cfg.seed,
                           cfg.text_encoder, cfg.speed_scale)
        data = LatentDataset(path)
        data.check_shapes(frames, channels, height, width, tokens, dim)
        return data

    def _backbone(self, space: SearchSpace, data: LatentDataset, progress=None):
        backbone = self.space_config.backbone
        if backbone.weights is not None:  # the user's pre-trained image model
            self.info["backbone"] = str(backbone.weights)
            return build_unet(backbone, self.device).eval().requires_grad_(False)  # frozen
        pre = self.train_config.pretrain
        cache = Path(pre.cache_dir) if pre.cache_dir else self.workdir / "cache"
        path = cache / f"backbone-{cache_key(space.unet_config, data, pre, self.train_config)}.pt"
        with torch.random.fork_rng():  # initial weights from the seed, not from whatever ran before
            torch.manual_seed(self.seed)
            unet = build_unet(backbone, "cpu")
        if path.is_file():
            unet.load_state_dict(torch.load(path, map_location="cpu", weights_only=True)["unet"])
            self.info.update(backbone=str(path), pretrained="cached")
        else:
            unet.to(self.device)
            partial = path.with_name(path.stem + ".partial.pt")  # a kill loses at most a few steps
            stats = pretrain_spatial(unet, data, pre, self.train_config, self.seed, self.device, progress, partial)
            atomic_torch(path, {"unet": {k: v.cpu() for k, v in unet.state_dict().items()}, "stats": stats})
            partial.unlink(missing_ok=True)
            self.info.update(backbone=str(path), pretrained="now", pretrain=stats)
        return unet.to(self.device).eval().requires_grad_(False)

    def prepare(self, progress=None) -> dict:
        """Dataset, frozen pre-trained backbone and evaluator; quick when all is cached.
        ``progress(step, total, loss)`` is called during spatial pre-training."""
        if self.evaluator is not None:
            return self.info
        start = time.perf_counter()
        with self._threads():
            self.space = SearchSpace(self.space_config)
            self.dataset = self._dataset(self.space)
            self.info["data"] = str(self.data_dir)
            # scored under the noise prior the model is trained with
            self.evaluator_config = dataclasses.replace(self.evaluator_config,
                                                        noise_correlation=self.train_config.noise_correlation)
            evaluator = create_evaluator(self.evaluator_config, self.dataset, self.device)  # fails fast (weights)
            self.unet = self._backbone(self.space, self.dataset, progress)
        self.evaluator = evaluator
        self.info["prepare_seconds"] = time.perf_counter() - start
        return self.info

    @contextlib.contextmanager
    def _threads(self):
        """torch threads = ``train.threads`` while working (one thread is far steadier on a
        shared CPU), the caller's setting restored after."""
        threads = torch.get_num_threads()
        if self.train_config.threads:
            torch.set_num_threads(self.train_config.threads)
        try:
            yield
        finally:
            torch.set_num_threads(threads)

    # One candidate -----------------------------------------------------------------
    def build(self, arch: Architecture, parent_state: dict[str, torch.Tensor] | None, seed: int):
        """The candidate's video UNet on the frozen backbone, temporal weights inherited."""
        self.prepare()
        torch.manual_seed(seed)  # new layers' initial weights
        model = self.space.build(arch, unet=self.unet)
        model.temporal.to(self.device)
        inherit(model, parent_state)
        return model

    def run(self, arch: Architecture | str, parent_state: dict[str, torch.Tensor] | None = None,
            steps: int | None = None, seed: int | None = None) -> CandidateResult:
        start = time.perf_counter()
        steps = self.train_config.steps if steps is None else steps
        seed = self.seed if seed is None else seed
        name = str(arch)
        try:
            self.prepare()
            if isinstance(arch, str):
                arch = self.space.parse(arch)
            with self._threads():
                model = self.build(arch, parent_state, seed)
                stats = train_temporal(model, self.dataset, steps, self.train_config, seed, self.device)
                score = self.evaluator.score(model)
            if score.quality != score.quality or abs(score.quality) == float("inf"):
                raise TrainingFailed(f"quality is {score.quality}")
            return CandidateResult(name, "ok", None, float(score.quality), dict(score.breakdown),
                                   temporal_state(model), stats.loss, stats.steps, time.perf_counter() - start)
        except torch.OutOfMemoryError as exc:
            reason = f"out of memory: {one_line(exc, with_type=True)[:200]}"
        except (TrainingFailed, DataError) as exc:
            reason = str(exc)
        except Exception as exc:  # noqa: BLE001 - a candidate fails, the process goes on
            reason = one_line(exc, with_type=True)[:200]
        finally:
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
        return CandidateResult(name, "failed", reason, None, {}, {}, None, 0, time.perf_counter() - start)
