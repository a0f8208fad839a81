"""``hwnas data encode``: captioned videos -> the project's dataset of latents (``evaluators.data``).

Each clip: T frames sampled at ``fps``, resized and centre-cropped to H×W
(``evaluators.video_io``), encoded frame by frame by a local ``AutoencoderKL``
(``evaluators.vae``) into ``(T, C, H/f, W/f)`` scaled latents; its caption embedded per
token by a local CLIP text model (``evaluators.clip_text``) or the ``minilm``/``builtin``
encoders (``evaluators.text``).

Resumable: the work happens in ``OUT.partial/`` beside ``OUT``. Each finished shard is
written atomically and recorded in ``progress.json`` with the clips it holds; a clip that
cannot be used is recorded there with its reason at once. After a kill the same command
carries on from the finished shards (the clips of an unfinished shard are encoded again);
with other settings it refuses. When every clip is done, ``meta.json`` is written with a
``report`` (clips found, encoded, skipped with reasons) and the folder is renamed to
``OUT``. The validation split is a seeded choice of clips made before any decoding, so it
does not depend on which clips turn out unreadable.
"""
from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from core.errors import HwnasError
from core.io import atomic_json, atomic_torch
from evaluators.data import FORMAT, VERSION, DataError
from evaluators.video_io import Clip, ClipError, VideoInputError, find_clips, match_captions, read_captions, read_clip

TEXT_BUILTINS = ("builtin", "minilm")


@dataclass(frozen=True)
class EncodeSettings:
    frames: int
    height: int
    width: int
    fps: float | None = None
    val_fraction: float = 0.1
    val_videos: int | None = None  # overrides val_fraction
    shard_size: int = 64
    batch: int = 8  # clips per VAE call
    seed: int = 0
    tokens: int | None = None  # text tokens L (CLIP default: the tokenizer's max length)
    text_dim: int | None = None  # D for builtin/minilm (minilm default 384)

    def __post_init__(self):
        if self.frames < 1:
            raise HwnasError(f"--frames {self.frames}: must be at least 1")
        if self.height < 1 or self.width < 1:
            raise HwnasError(f"--size {self.height}x{self.width}: must be positive")
        if self.fps is not None and self.fps <= 0:
            raise HwnasError(f"--fps {self.fps}: must be positive")
        if not 0.0 < self.val_fraction < 1.0:
            raise HwnasError(f"--val-fraction {self.val_fraction}: must be in (0, 1)")
        if self.val_videos is not None and self.val_videos < 1:
            raise HwnasError(f"--val-videos {self.val_videos}: must be at least 1")
        if self.shard_size < 1 or self.batch < 1:
            raise HwnasError("--shard-size and --batch must be at least 1")


def parse_size(text: str) -> tuple[int, int]:
    """``HxW`` (or a single number for a square) -> (H, W)."""
    parts = text.lower().replace("×", "x").split("x")
    try:
        sizes = [int(p) for p in parts]
    except ValueError:
        raise HwnasError(f"--size {text!r}: expected HxW, e.g. 512x512") from None
    if len(sizes) == 1:
        sizes *= 2
    if len(sizes) != 2 or min(sizes) < 1:
        raise HwnasError(f"--size {text!r}: expected HxW with positive integers")
    return sizes[0], sizes[1]


def load_text_encoder(spec: str, settings: EncodeSettings, device: str = "cpu"):
    """``builtin`` | ``minilm`` | a local CLIP folder -> callable captions -> (N, L, D)."""
    if spec in TEXT_BUILTINS:
        from evaluators.text import text_encoder

        if spec == "minilm":
            try:  # its loading bar would break the plain progress lines on stderr
                import transformers

                transformers.logging.disable_progress_bar()
            except ImportError:
                pass
        dim = settings.text_dim or (384 if spec == "minilm" else None)
        if dim is None:
            raise HwnasError("--text-encoder builtin needs --text-dim D (the UNet's cross_attention_dim)")
        encoder = text_encoder(spec, settings.tokens or 77, dim)
        encoder.dim = dim
        return encoder
    from evaluators.clip_text import ClipTextEncoder

    return ClipTextEncoder(spec, settings.tokens, device)  # D is the model's width; --text-dim is not used


def check_device(device: str) -> None:
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        raise HwnasError(f"--device {device!r}: not a torch device (cpu, cuda, cuda:N, mps)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise HwnasError(f"--device {device}: this machine has no CUDA GPU; use --device cpu")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise HwnasError(f"--device {device}: this machine has {torch.cuda.device_count()} CUDA GPUs")


def check_against_unet(unet_config: dict, latent_channels: int, text_dim: int, where: str) -> None:
    """The data's latent channels must be the UNet's ``in_channels`` and the text width its
    ``cross_attention_dim``."""
    problems = []
    if int(unet_config.get("in_channels", latent_channels)) != latent_channels:
        problems.append(f"the VAE's latent channels ({latent_channels}) differ from the UNet's in_channels "
                        f"({unet_config['in_channels']})")
    if int(unet_config.get("cross_attention_dim", text_dim)) != text_dim:
        problems.append(f"the text encoder's width ({text_dim}) differs from the UNet's cross_attention_dim "
                        f"({unet_config['cross_attention_dim']})")
    if problems:
        raise HwnasError(f"{where}: {'; '.join(problems)}")


def _split(ids: list[str], settings: EncodeSettings) -> dict[str, str]:
    if len(ids) < 2:
        raise VideoInputError(f"need at least 2 captioned clips for a train and a val split, found {len(ids)}")
    n_val = settings.val_videos or max(1, round(settings.val_fraction * len(ids)))
    if n_val >= len(ids):
        raise HwnasError(f"--val-videos {n_val}: must be below the {len(ids)} captioned clips")
    order = sorted(ids)
    random.Random(settings.seed).shuffle(order)
    val = set(order[:n_val])
    return {i: "val" if i in val else "train" for i in sorted(ids)}


class _Work:
    """``OUT.partial/``: finished shards and ``progress.json``."""

    def __init__(self, out: Path, plan: dict):
        self.dir = out.parent / f"{out.name}.partial"
        self.progress_path = self.dir / "progress.json"
        if self.progress_path.is_file():
            state = json.loads(self.progress_path.read_text())
            if state.get("plan") != plan:
                raise HwnasError(f"{self.dir}: an unfinished encode with other settings or inputs is there; "
                                 "rerun it with the same arguments, or delete that folder")
            self.state = state
            for s in state["shards"]:
                if not (self.dir / s["file"]).is_file():
                    raise HwnasError(f"{self.dir}: shard {s['file']} recorded as finished is missing; delete the folder")
        else:
            self.dir.mkdir(parents=True, exist_ok=True)
            self.state = {"plan": plan, "shards": [], "skipped": []}
            self._save()

    @property
    def resumed_clips(self) -> int:
        return sum(len(s["clips"]) for s in self.state["shards"]) + len(self.state["skipped"])

    def done(self) -> set[str]:
        return {c for s in self.state["shards"] for c in s["clips"]} | {s["video"] for s in self.state["skipped"]}

    def _save(self) -> None:
        atomic_json(self.progress_path, self.state)

    def skip(self, clip_id: str, reason: str) -> None:
        self.state["skipped"].append({"video": clip_id, "reason": reason})
        self._save()

    def write_shard(self, split: str, latents, text, captions, clips) -> None:
        name = f"{split}-{sum(s['split'] == split for s in self.state['shards']):05d}.pt"
        atomic_torch(self.dir / name, {"latents": torch.cat(latents).contiguous(), "text": torch.cat(text).contiguous(),
                                       "captions": list(captions), "labels": {"video": list(clips)}})
        self.state["shards"].append({"file": name, "split": split, "count": len(clips), "clips": list(clips)})
        self._save()


def encode_dataset(videos: str | Path, captions: str | Path, vae: str | Path, text_encoder: str, out: str | Path,
                   settings: EncodeSettings, device: str = "cpu", unet_config: dict | None = None,
                   progress=None) -> Path:
    """Encode every captioned clip of ``videos`` into the dataset ``out``. ``unet_config``
    (the backbone's diffusers config) is checked against the VAE and text encoder first.
    ``progress`` is a ``core.progress.Progress`` (or None)."""
    from evaluators.vae import Vae

    check_device(device)
    out = Path(out)
    if (out / "meta.json").is_file() or (out.exists() and any(out.iterdir())):
        raise HwnasError(f"--out {out}: exists; choose another folder or delete it")
    clips = find_clips(videos)
    if not clips:
        raise VideoInputError(f"VIDEOS: no video files ({', '.join(('mp4', 'webm', 'gif', 'mkv', 'mov'))}) or "
                              f"frame folders in {videos}")
    found, missing = match_captions(clips, read_captions(captions))
    if missing:
        shown = ", ".join(missing[:5]) + (", ..." if len(missing) > 5 else "")
        raise VideoInputError(f"--captions {captions}: {len(missing)} of its videos are not in {videos}: {shown}")
    model = Vae(vae, device)
    model.check_size(settings.height, settings.width)
    encoder = load_text_encoder(text_encoder, settings, device)
    if unet_config is not None:
        check_against_unet(unet_config, model.channels, encoder.dim, "--config")
    by_id = {c.id: c for c in clips}
    splits = _split(list(found), settings)
    plan = {"settings": asdict(settings), "videos": str(Path(videos).resolve()), "vae": str(model.path.resolve()),
            "text_encoder": text_encoder if text_encoder in TEXT_BUILTINS else str(Path(text_encoder).resolve()),
            "clips": hashlib.sha256(json.dumps([[i, found[i], splits[i]] for i in sorted(found)]).encode()).hexdigest()}
    work = _Work(out, plan)
    uncaptioned = sorted(set(by_id) - set(found))
    done = work.done()
    for clip_id in uncaptioned:
        if clip_id not in done:
            work.skip(clip_id, f"no caption in {Path(captions).name}")
    model.load()
    task = progress.task(f"encoding {out.name}", total=len(by_id)) if progress else None
    if task:
        task.update(completed=len(work.done()))
    for split in ("val", "train"):
        todo = [by_id[i] for i in sorted(found) if splits[i] == split and i not in done]
        _encode_split(split, todo, found, model, encoder, settings, work, task)
    if task:
        task.finish()
    return _finish(work, out, model, encoder, settings, len(clips), videos)


def _encode_split(split, todo: list[Clip], captions, model, encoder, settings, work: _Work, task) -> None:
    buf_lat, buf_text, buf_caps, buf_ids = [], [], [], []
    pending: list[tuple[Clip, torch.Tensor]] = []

    def flush_batch():
        if not pending:
            return
        frames = torch.cat([f for _, f in pending])  # (b·T, 3, H, W)
        z = model.encode(frames)
        z = z.reshape(len(pending), settings.frames, *z.shape[1:])
        caps = [captions[c.id] for c, _ in pending]
        buf_lat.append(z)
        buf_text.append(encoder(caps).float())
        buf_caps.extend(caps)
        buf_ids.extend(c.id for c, _ in pending)
        if task:
            task.update(advance=len(pending), description=f"{split}: {pending[-1][0].id}")
        pending.clear()

    def flush_shard(final: bool):
        while len(buf_ids) >= settings.shard_size or (final and buf_ids):
            n = min(settings.shard_size, len(buf_ids))
            lat, text = torch.cat(buf_lat), torch.cat(buf_text)
            work.write_shard(split, [lat[:n]], [text[:n]], buf_caps[:n], buf_ids[:n])
            rest = (lat[n:], text[n:], buf_caps[n:], buf_ids[n:])
            buf_lat[:], buf_text[:] = ([rest[0]] if len(rest[3]) else []), ([rest[1]] if len(rest[3]) else [])
            buf_caps[:], buf_ids[:] = rest[2], rest[3]

    for clip in todo:
        try:
            frames = read_clip(clip, settings.frames, settings.height, settings.width, settings.fps)
        except ClipError as exc:
            work.skip(clip.id, str(exc))
            if task:
                task.update(advance=1, description=f"skipped {clip.id}: {exc}")
            continue
        pending.append((clip, frames))
        if len(pending) >= settings.batch:
            flush_batch()
            flush_shard(final=False)
    flush_batch()
    flush_shard(final=True)


def _finish(work: _Work, out: Path, model, encoder, settings: EncodeSettings, found: int, videos) -> Path:
    state = work.state
    counts = {s: sum(x["count"] for x in state["shards"] if x["split"] == s) for s in ("train", "val")}
    skipped = state["skipped"]
    if not counts["train"] and not counts["val"]:
        first = "; ".join(f"{s['video']}: {s['reason']}" for s in skipped[:3])
        shutil.rmtree(work.dir, ignore_errors=True)
        raise DataError(f"VIDEOS {videos}: no readable clip among {found} ({first})")
    for split, n in counts.items():
        if not n:
            raise DataError(f"VIDEOS {videos}: no {split} clip could be read ({len(skipped)} skipped, see "
                            f"{work.progress_path}); add clips or change --val-videos")
    h, w = settings.height // model.factor, settings.width // model.factor
    meta = {"format": FORMAT, "version": VERSION,
            "latent_shape": [settings.frames, model.channels, h, w],
            "text_shape": [int(encoder.tokens), int(encoder.dim)],
            "encoder": encoder.name, "transform": model.name,
            "shards": [{k: s[k] for k in ("file", "split", "count")} for s in state["shards"]],
            "report": {"clips_found": found, "encoded": counts["train"] + counts["val"],
                       "train": counts["train"], "val": counts["val"], "skipped": skipped,
                       "frames": settings.frames, "fps": settings.fps, "size": [settings.height, settings.width],
                       "vae": str(model.path), "scaling_factor": model.scale, "downsample": model.factor}}
    atomic_json(work.dir / "meta.json", meta)
    os.replace(work.dir, out)
    (out / "progress.json").unlink()
    return out


def check_against_space(space, settings: EncodeSettings, vae: str | Path, where: str) -> EncodeSettings:
    """The experiment's video T×H×W and text tokens must be what this encode will write;
    returns the settings with the text tokens and width the space asks for filled in."""
    from evaluators.vae import Vae

    factor = Vae(vae).factor
    _, frames, _, height, width = space.video_shape
    _, tokens, _ = space.text_shape
    want = (frames, height * factor, width * factor)
    if (settings.frames, settings.height, settings.width) != want:
        raise HwnasError(f"{where}: space.video is {frames} frames of {height}x{width} latents, i.e. --frames {frames} "
                         f"--size {want[1]}x{want[2]} with this VAE (/{factor}); got --frames {settings.frames} "
                         f"--size {settings.height}x{settings.width}")
    if settings.tokens is not None and settings.tokens != tokens:
        raise HwnasError(f"{where}: space.text.tokens is {tokens}; got --tokens {settings.tokens}")
    from dataclasses import replace

    return replace(settings, tokens=tokens, text_dim=settings.text_dim or int(space.unet_config["cross_attention_dim"]))
