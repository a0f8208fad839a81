"""Reading captioned videos: clips in a folder, their captions, frames sampled at a rate.

* ``find_clips(root)``: every video file (mp4, webm, gif, mkv, mov, avi, m4v) under ``root``
  and every folder of frames (png/jpg/jpeg/bmp/webp, in natural order), keyed by their path
  relative to ``root``.
* ``read_captions(path)``: a CSV with a header row or JSONL. The video column is the first of
  ``video, path, file, filename, videoid, video_id, id``; the caption column the first of
  ``caption, text, prompt, name, title`` (WebVid's CSV: ``videoid`` and ``name``). A caption's
  video matches a clip by relative path, with or without its extension, or by file name.
* ``read_clip(clip, frames, height, width, fps)``: ``frames`` RGB frames in [0, 1] as a
  float tensor (T, 3, H, W). With ``fps`` the frames are those shown at t = 0, 1/fps, 2/fps…
  (each the last frame whose timestamp is at or before t); without it, the first T frames.
  A folder of frames has no timestamps: its images are taken as consecutive frames at
  ``fps``. Each frame is resized (antialiased bilinear) so that it covers H×W, then
  centre-cropped. A clip that cannot be decoded or is too short raises :class:`ClipError`
  with the reason.

Decoding uses PyAV (package ``av``; FFmpeg's libraries ship inside its wheel).
"""
from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from core.errors import HwnasError, one_line

VIDEO_EXTS = (".mp4", ".webm", ".gif", ".mkv", ".mov", ".avi", ".m4v")
IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
VIDEO_KEYS = ("video", "path", "file", "filename", "videoid", "video_id", "id")
CAPTION_KEYS = ("caption", "text", "prompt", "name", "title")


class VideoInputError(HwnasError, ValueError):
    """A videos folder or captions file that cannot be used."""


class ClipError(Exception):
    """One clip that cannot be used (undecodable, too short); the clip is skipped."""


@dataclass(frozen=True)
class Clip:
    id: str  # path relative to the videos folder, "/"-separated
    path: Path
    kind: str  # "video" | "frames"


def _natural(name: str):
    return [int(p) if p.isdigit() else p.lower() for p in re.split(r"(\d+)", name)]


def find_clips(root: str | Path) -> list[Clip]:
    root = Path(root)
    if not root.exists():
        raise VideoInputError(f"VIDEOS: {root} does not exist")
    if root.is_file():
        if root.suffix.lower() not in VIDEO_EXTS:
            raise VideoInputError(f"VIDEOS: {root} is not a video ({', '.join(VIDEO_EXTS)}) or a folder")
        return [Clip(root.name, root, "video")]
    clips = []
    for folder in sorted([root, *(p for p in root.rglob("*") if p.is_dir())]):
        files = sorted((p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")),
                       key=lambda p: _natural(p.name))
        videos = [p for p in files if p.suffix.lower() in VIDEO_EXTS]
        images = [p for p in files if p.suffix.lower() in IMAGE_EXTS]
        clips += [Clip(p.relative_to(root).as_posix(), p, "video") for p in videos]
        if images and not videos and folder != root:
            clips.append(Clip(folder.relative_to(root).as_posix(), folder, "frames"))
    return clips


def _pick(keys: list[str], wanted: tuple[str, ...], exclude: str | None = None) -> str | None:
    lowered = {k.strip().lower(): k for k in keys}
    for name in wanted:
        if name in lowered and lowered[name] != exclude:
            return lowered[name]
    return None


def read_captions(path: str | Path) -> list[tuple[str, str]]:
    """``[(video reference, caption), ...]`` in file order."""
    path = Path(path)
    if not path.is_file():
        raise VideoInputError(f"--captions: {path} does not exist")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise VideoInputError(f"--captions: {path} is not UTF-8 text ({exc.reason})") from None
    rows: list[dict] = []
    if path.suffix.lower() in (".jsonl", ".json", ".ndjson"):
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise VideoInputError(f"--captions: {path} line {n} is not JSON ({exc.msg})") from None
            if not isinstance(row, dict):
                raise VideoInputError(f"--captions: {path} line {n} is not a JSON object")
            rows.append(row)
    else:
        rows = list(csv.DictReader(text.splitlines()))
    if not rows:
        raise VideoInputError(f"--captions: {path} holds no captions")
    keys = list(rows[0])
    video_key = _pick(keys, VIDEO_KEYS)
    caption_key = _pick(keys, CAPTION_KEYS, exclude=video_key)
    if video_key is None or caption_key is None:
        raise VideoInputError(f"--captions: {path} needs a video column ({', '.join(VIDEO_KEYS)}) and a caption "
                              f"column ({', '.join(CAPTION_KEYS)}); it has {', '.join(map(str, keys))}")
    out = []
    for n, row in enumerate(rows, 1):
        video, caption = row.get(video_key), row.get(caption_key)
        if video in (None, "") or caption is None:
            raise VideoInputError(f"--captions: {path} row {n} has no {video_key!r} or {caption_key!r}")
        out.append((str(video).strip(), str(caption).strip()))
    return out


def match_captions(clips: list[Clip], captions: list[tuple[str, str]]) -> tuple[dict[str, str], list[str]]:
    """``({clip id: caption}, [video references that name no clip])``. A later caption for
    the same clip wins."""
    index: dict[str, str] = {}
    for clip in clips:
        rel = clip.id
        for key in (rel, rel.rsplit(".", 1)[0] if clip.kind == "video" else rel, Path(rel).name, Path(rel).stem):
            index.setdefault(key, clip.id)
    found, missing = {}, []
    for ref, caption in captions:
        ref_norm = ref.replace("\\", "/").lstrip("./")
        clip_id = index.get(ref_norm) or index.get(Path(ref_norm).name) or index.get(Path(ref_norm).stem)
        if clip_id is None:
            missing.append(ref)
        else:
            found[clip_id] = caption
    return found, missing


def resize_crop(frames: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(T, 3, h, w) in [0, 1] -> (T, 3, H, W): scaled to cover H×W, then centre-cropped."""
    h, w = frames.shape[-2:]
    scale = max(height / h, width / w)
    nh, nw = max(height, round(h * scale)), max(width, round(w * scale))
    if (nh, nw) != (h, w):
        frames = F.interpolate(frames, size=(nh, nw), mode="bilinear", antialias=True, align_corners=False)
    top, left = (nh - height) // 2, (nw - width) // 2
    return frames[..., top:top + height, left:left + width].clamp(0.0, 1.0)


def _to_tensor(rgb) -> torch.Tensor:  # (h, w, 3) uint8 array -> (3, h, w) float in [0, 1]
    import numpy as np

    return torch.from_numpy(np.array(rgb, dtype=np.uint8)).permute(2, 0, 1).float().div_(255.0)


def _sample_video(path: Path, frames: int, fps: float | None) -> list[torch.Tensor]:
    import av

    try:
        container = av.open(str(path))
    except Exception as exc:  # noqa: BLE001 - every FFmpeg failure is "cannot decode"
        raise ClipError(f"cannot open: {one_line(exc).replace(f': {str(path)!r}', '')}") from None
    picked: list[torch.Tensor] = []
    decoded = 0
    last_time = interval = 0.0
    try:
        if not container.streams.video:
            raise ClipError("no video stream")
        stream = container.streams.video[0]
        targets = [k / fps for k in range(frames)] if fps else None
        previous = None  # (time, rgb) of the frame on screen before the current one
        for frame in container.decode(stream):
            decoded += 1
            rate = float(stream.average_rate or 25)
            when = float(frame.time) if frame.time is not None else (decoded - 1) / rate
            last_time = when
            if targets is None:
                picked.append(_to_tensor(frame.to_ndarray(format="rgb24")))
                if len(picked) == frames:
                    break
                continue
            while previous is not None and len(picked) < frames and targets[len(picked)] < when - 1e-6:
                picked.append(previous[1])  # the frame shown at that time
            if len(picked) == frames:
                break
            previous = (when, _to_tensor(frame.to_ndarray(format="rgb24")))
        interval = 1.0 / float(stream.average_rate) if stream.average_rate else 0.0
        if targets is not None and previous is not None:
            # the last frame stays on screen for one frame interval
            while len(picked) < frames and targets[len(picked)] < previous[0] + interval - 1e-6:
                picked.append(previous[1])
    except ClipError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise ClipError(f"cannot decode (after {decoded} frames): {one_line(exc)}") from None
    finally:
        container.close()
    if decoded == 0:
        raise ClipError("cannot decode: no frames")
    if len(picked) < frames:
        rate = f" at {fps:g} fps" if fps else ""
        raise ClipError(f"too short: {decoded} frames lasting {last_time + interval:.2f} s; {frames} frames{rate} "
                        "needed")
    return picked


def _sample_folder(path: Path, frames: int) -> list[torch.Tensor]:
    import numpy as np
    from PIL import Image

    files = sorted((p for p in path.iterdir() if p.suffix.lower() in IMAGE_EXTS), key=lambda p: _natural(p.name))
    if len(files) < frames:
        raise ClipError(f"too short: {len(files)} frames in the folder; {frames} needed")
    out = []
    for p in files[:frames]:
        try:
            with Image.open(p) as im:
                out.append(_to_tensor(np.asarray(im.convert("RGB"))))
        except Exception as exc:  # noqa: BLE001
            raise ClipError(f"cannot decode {p.name}: {one_line(exc)}") from None
    return out


def read_clip(clip: Clip, frames: int, height: int, width: int, fps: float | None = None) -> torch.Tensor:
    """(T, 3, H, W) float frames in [0, 1]; raises :class:`ClipError` with the reason."""
    picked = _sample_folder(clip.path, frames) if clip.kind == "frames" else _sample_video(clip.path, frames, fps)
    sizes = {tuple(f.shape) for f in picked}
    if len(sizes) > 1:
        raise ClipError(f"frames change size mid-clip ({sorted(sizes)[:2]})")
    return resize_crop(torch.stack(picked), height, width)


def write_video(path: str | Path, frames, fps: float = 8.0) -> Path:
    """Write (T, H, W, 3) uint8 frames as mp4 (H.264), webm (VP9) or gif: for tests and demos."""
    import av
    import numpy as np

    path = Path(path)
    codec, pix = {".mp4": ("libx264", "yuv420p"), ".webm": ("libvpx-vp9", "yuv420p"),
                  ".gif": ("gif", "rgb8")}[path.suffix.lower()]
    frames = np.asarray(frames, dtype=np.uint8)
    from fractions import Fraction

    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=Fraction(fps).limit_denominator(1000))
        stream.height, stream.width = frames.shape[1], frames.shape[2]
        stream.pix_fmt = pix
        for rgb in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path
