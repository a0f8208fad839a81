"""A trained model's folder: what ``hwnas train`` writes and ``sample``, ``export`` and
``evaluate`` read.

```
MODEL/model.json      {"format": "hwnas-model", "version": 1, "arch": ARCH,
                       "experiment": {...the experiment config...}, "config_sha256",
                       "text": {"encoder", "tokens", "dim"}, "latents": {"transform", "pixel_space"},
                       "init": {...where the temporal weights started...}, "ema": bool}
MODEL/config.yaml     the experiment config (the same as model.json's, for people)
MODEL/weights.pt      {"unet": the 2-D backbone's state dict, "temporal": the temporal layers'}
                      (the EMA weights when EMA was on)
MODEL/training.json   the training record: options, steps, loss log, seconds, init
MODEL/checkpoint.pt   resume state of the training (model, optimiser, schedule, EMA, step)
```

Every file is written atomically (``core.io``), so a folder killed mid-write is still the
previous complete state. The folder reads back with :func:`load_model` without the data
set: the text encoder is rebuilt from its name.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml

from core.errors import HwnasError, one_line
from core.io import atomic_json, atomic_text, atomic_torch

FORMAT = "hwnas-model"
VERSION = 1
PIXEL_TRANSFORM = "x = 2*rgb - 1 (pixel space, exact)"


class ModelError(HwnasError, ValueError):
    """A model folder that is missing, malformed, or belongs to another config."""


def config_sha256(experiment: dict) -> str:
    return hashlib.sha256(json.dumps(experiment, sort_keys=True, default=str).encode()).hexdigest()


def is_model_dir(path: str | Path) -> bool:
    return (Path(path) / "model.json").is_file()


def write_model(out: str | Path, meta: dict, unet_state: dict, temporal_state: dict, record: dict) -> Path:
    """Write (or overwrite) the folder's weights, description and training record."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_torch(out / "weights.pt", {"unet": {k: v.detach().cpu() for k, v in unet_state.items()},
                                      "temporal": {k: v.detach().cpu() for k, v in temporal_state.items()}})
    atomic_text(out / "config.yaml", yaml.safe_dump(meta["experiment"], sort_keys=False))
    atomic_json(out / "training.json", record)
    atomic_json(out / "model.json", {"format": FORMAT, "version": VERSION, **meta})  # last: marks it complete
    return out


def read_meta(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_dir():
        raise ModelError(f"{path}: no such model folder")
    meta_path = path / "model.json"
    if not meta_path.is_file():
        raise ModelError(f"{path} is not a model folder (no model.json); write one with `hwnas train`")
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError as exc:
        raise ModelError(f"{meta_path} is corrupt: {exc}") from None
    if meta.get("format") != FORMAT:
        raise ModelError(f"{meta_path}: format is not {FORMAT!r}")
    for key in ("arch", "experiment", "text"):
        if key not in meta:
            raise ModelError(f"{meta_path}: missing field {key!r}")
    return meta


@dataclass
class TrainedModel:
    """A model folder loaded: its space, the video UNet (eval mode, no grad) and the text encoder."""

    root: Path
    meta: dict
    space: object  # SearchSpace
    model: torch.nn.Module  # VideoUNet
    encoder: object  # a text encoder: captions -> (N, L, D)

    @property
    def arch(self):
        return self.model.architecture

    @property
    def tokens(self) -> int:
        return int(self.meta["text"]["tokens"])

    @property
    def pixel_space(self) -> bool:
        return bool(self.meta.get("latents", {}).get("pixel_space", False))

    def latent_shape(self, frames: int | None = None) -> tuple[int, int, int, int]:
        """(T, C, H, W) of one clip; ``frames`` overrides T."""
        _, t, c, h, w = self.space.video_shape
        return (frames or t, c, h, w)


def load_model(path: str | Path, device: str | torch.device = "cpu") -> TrainedModel:
    """Rebuild the video UNet of a model folder with its trained weights."""
    from core.config import parse
    from evaluators.config import DataConfig
    from evaluators.text import text_encoder
    from search_spaces.backbones import build_unet
    from search_spaces.space import SearchSpace, SpaceConfig

    root = Path(path)
    meta = read_meta(root)
    exp = meta["experiment"]
    try:
        space = SearchSpace(SpaceConfig.from_dict(exp["space"]))
        arch = space.parse(meta["arch"])
    except HwnasError as exc:
        raise ModelError(f"{root}: {one_line(exc)}") from None
    weights_path = root / "weights.pt"
    try:
        weights = torch.load(weights_path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ModelError(f"{weights_path}: missing (the model folder is incomplete)") from None
    except Exception as exc:  # noqa: BLE001 - any unreadable file
        raise ModelError(f"{weights_path}: unreadable ({one_line(exc, with_type=True)})") from None
    unet = build_unet(space.config.backbone, "cpu")
    model = space.build(arch, unet=unet)
    try:
        unet.load_state_dict(weights["unet"])
        model.temporal.load_state_dict(weights["temporal"])
    except (RuntimeError, KeyError) as exc:
        raise ModelError(f"{weights_path}: weights of another architecture or backbone "
                         f"({one_line(exc)[:200]})") from None
    model = model.to(device).eval().requires_grad_(False)
    data = parse(DataConfig, exp.get("data", {}), "data")
    text = meta["text"]
    encoder = text_encoder(text.get("name", data.text_encoder), int(text["tokens"]), int(text["dim"]))
    return TrainedModel(root, meta, space, model, encoder)


def evaluate_model(path: str | Path, workdir: str | Path, evaluator: str | None = None,
                   device: str = "cpu") -> dict:
    """Score a model folder with its experiment's evaluator (or ``evaluator``) on the data it
    was trained on (``training.json``'s data folder; else the built-in set, made in ``workdir``)."""
    import dataclasses
    import time

    from core.config import parse
    from evaluators.config import DataConfig, EvaluatorConfig, TrainConfig
    from evaluators.runner import CandidateRunner
    from evaluators.scores import create_evaluator

    start = time.perf_counter()
    trained = load_model(path, device)
    exp = trained.meta["experiment"]
    ev = parse(EvaluatorConfig, exp.get("evaluator", {}), "evaluator")
    if evaluator:
        ev = ev.switch(evaluator)
    data = parse(DataConfig, exp.get("data", {}), "data")
    record_path = Path(path) / "training.json"
    record = json.loads(record_path.read_text()) if record_path.is_file() else {}
    if data.dir is None and record.get("data") and (Path(record["data"]) / "meta.json").is_file():
        data = dataclasses.replace(data, dir=record["data"])
    runner = CandidateRunner(trained.space.config, data, parse(TrainConfig, exp.get("train", {}), "train"), ev,
                             workdir, exp.get("seed", 0))
    dataset = runner._dataset(trained.space)
    score = create_evaluator(ev, dataset, device).score(trained.model)
    return {"arch": str(trained.arch), "quality": float(score.quality), "breakdown": dict(score.breakdown),
            "seconds": round(time.perf_counter() - start, 3), "evaluator": ev.name, "model": str(path),
            "steps": trained.meta.get("steps")}
