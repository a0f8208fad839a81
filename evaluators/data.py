"""Datasets of precomputed video latents with their captions and text conditioning.

Format (a directory)::

    DIR/meta.json        {"format": "hwnas-latents", "version": 1,
                          "latent_shape": [T, C, H, W], "text_shape": [L, D],
                          "encoder": "...", "transform": "...",
                          "shards": [{"file": "train-00000.pt", "split": "train", "count": N}, ...]}
    DIR/<shard>.pt       torch.save of {"latents": float (N, T, C, H, W),
                                        "text": float (N, L, D),
                                        "captions": [N strings],
                                        "labels": {name: [N strings]}  (optional)}

``split`` is ``train`` or ``val`` (the held-out validation split). Shards load with
``torch.load(weights_only=True)``: plain tensors, lists and strings, no pickled code. A user
with a real VAE and text encoder writes latents ``z = vae.encode(frames) · scale`` and the
encoder's token embeddings through :class:`DatasetWriter`; the built-in set
(``evaluators.synth``) uses the exact pixel transform of :func:`frames_to_latents`.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import torch

from core.errors import HwnasError, one_line

FORMAT = "hwnas-latents"
VERSION = 1
SPLITS = ("train", "val")


class DataError(HwnasError, ValueError):
    """A dataset directory that is missing, empty, malformed or corrupt."""


def frames_to_latents(frames: torch.Tensor) -> torch.Tensor:
    """RGB frames in [0, 1] -> pixel-space latents in [-1, 1]: x = 2·rgb − 1 (exact, invertible)."""
    return frames * 2.0 - 1.0


def latents_to_frames(latents: torch.Tensor) -> torch.Tensor:
    """The inverse of :func:`frames_to_latents`, clamped to [0, 1]."""
    return ((latents + 1.0) / 2.0).clamp(0.0, 1.0)


@dataclass
class Batch:
    latents: torch.Tensor  # (B, T, C, H, W)
    text: torch.Tensor  # (B, L, D)
    captions: list[str]
    labels: dict[str, list[str]]


class DatasetWriter:
    """Writes shards and ``meta.json``; the directory appears complete or not at all
    (written beside it, then renamed), so two processes may write the same set at once."""

    def __init__(self, out: str | Path, latent_shape, text_shape, encoder: str, transform: str,
                 shard_size: int = 256):
        self.out = Path(out)
        self.latent_shape, self.text_shape = list(latent_shape), list(text_shape)
        self.encoder, self.transform, self.shard_size = encoder, transform, shard_size
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = Path(tempfile.mkdtemp(prefix=f".{self.out.name}-", dir=self.out.parent))
        self._shards: list[dict] = []

    def add(self, split: str, latents: torch.Tensor, text: torch.Tensor, captions: list[str],
            labels: dict[str, list[str]] | None = None) -> None:
        if split not in SPLITS:
            raise DataError(f"split {split!r}; allowed: {', '.join(SPLITS)}")
        for start in range(0, len(captions), self.shard_size):
            end = start + self.shard_size
            name = f"{split}-{sum(s['split'] == split for s in self._shards):05d}.pt"
            torch.save({"latents": latents[start:end].float().contiguous(),
                        "text": text[start:end].float().contiguous(),
                        "captions": list(captions[start:end]),
                        "labels": {k: list(v[start:end]) for k, v in (labels or {}).items()}},
                       self._tmp / name)
            self._shards.append({"file": name, "split": split, "count": len(captions[start:end])})

    def close(self) -> Path:
        meta = {"format": FORMAT, "version": VERSION, "latent_shape": self.latent_shape,
                "text_shape": self.text_shape, "encoder": self.encoder, "transform": self.transform,
                "shards": self._shards}
        (self._tmp / "meta.json").write_text(json.dumps(meta, indent=1))
        try:
            os.replace(self._tmp, self.out)
        except OSError:  # another process finished first (or the directory exists): keep theirs
            shutil.rmtree(self._tmp, ignore_errors=True)
            if not (self.out / "meta.json").is_file():
                raise DataError(f"{self.out}: exists and is not a dataset; choose another --out") from None
        return self.out


class LatentDataset:
    """Reads a dataset directory: validates ``meta.json`` up front, loads shards on demand
    (one at a time while streaming) and checks each against the declared shapes."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        meta_path = self.root / "meta.json"
        if not self.root.is_dir():
            raise DataError(f"data.dir: {self.root} does not exist")
        if not meta_path.is_file():
            what = "is empty" if not any(self.root.iterdir()) else "has no meta.json"
            raise DataError(f"data.dir: {self.root} {what}; write one with `hwnas data synth --out DIR`")
        try:
            meta = json.loads(meta_path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise DataError(f"{meta_path}: not valid JSON ({exc})") from None
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise DataError(f"{meta_path}: format is not {FORMAT!r}")
        try:
            self.latent_shape = tuple(int(v) for v in meta["latent_shape"])
            self.text_shape = tuple(int(v) for v in meta["text_shape"])
            shards = [(str(s["file"]), str(s["split"]), int(s["count"])) for s in meta["shards"]]
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"{meta_path}: missing or malformed field ({exc})") from None
        if len(self.latent_shape) != 4 or len(self.text_shape) != 2:
            raise DataError(f"{meta_path}: latent_shape must be [T, C, H, W] and text_shape [L, D]")
        self.meta = meta
        self.shards = {split: [(f, n) for f, s, n in shards if s == split] for split in SPLITS}
        for split in SPLITS:
            if not self.shards[split] or not sum(n for _, n in self.shards[split]):
                raise DataError(f"{self.root}: no {split} videos (a {split} split is required)")
        self._cache: tuple[str, Batch] | None = None

    def __len__(self) -> int:
        return self.count("train") + self.count("val")

    def count(self, split: str) -> int:
        return sum(n for _, n in self.shards[split])

    @property
    def fingerprint(self) -> str:
        """Identifies the data (for caches): meta.json's content hash."""
        import hashlib

        return hashlib.sha256((self.root / "meta.json").read_bytes()).hexdigest()[:16]

    def check_shapes(self, frames: int, channels: int, height: int, width: int, tokens: int, dim: int) -> None:
        """The experiment's space must match the stored latents and text."""
        want = ((frames, channels, height, width), (tokens, dim))
        if (self.latent_shape, self.text_shape) != want:
            raise DataError(
                f"{self.root}: latents {list(self.latent_shape)} and text {list(self.text_shape)} do not match "
                f"the space's video T×C×H×W {list(want[0])} and text L×D {list(want[1])}")

    def shard(self, name: str, count: int) -> Batch:
        if self._cache and self._cache[0] == name:
            return self._cache[1]
        path = self.root / name
        if not path.is_file():
            raise DataError(f"{path}: shard listed in meta.json is missing")
        try:
            data = torch.load(path, map_location="cpu", weights_only=True)
            batch = Batch(data["latents"], data["text"], list(data["captions"]), dict(data.get("labels", {})))
        except Exception as exc:  # noqa: BLE001 - any unreadable shard is a corrupt shard
            raise DataError(f"{path}: corrupt shard ({one_line(exc, with_type=True)[:120]})") from None
        if tuple(batch.latents.shape) != (count, *self.latent_shape):
            raise DataError(f"{path}: latents of shape {list(batch.latents.shape)}, meta.json declares "
                            f"{[count, *self.latent_shape]}")
        if tuple(batch.text.shape) != (count, *self.text_shape) or len(batch.captions) != count:
            raise DataError(f"{path}: text of shape {list(batch.text.shape)} and {len(batch.captions)} captions, "
                            f"meta.json declares {[count, *self.text_shape]}")
        if not torch.isfinite(batch.latents).all() or not torch.isfinite(batch.text).all():
            raise DataError(f"{path}: corrupt shard (non-finite values)")
        self._cache = (name, batch)
        return batch

    def load(self, split: str, limit: int | None = None) -> Batch:
        """The first ``limit`` videos of a split, in stored order (the fixed validation subset)."""
        parts: list[Batch] = []
        have = 0
        for name, count in self.shards[split]:
            if limit is not None and have >= limit:
                break
            parts.append(self.shard(name, count))
            have += count
        latents = torch.cat([p.latents for p in parts])[:limit]
        text = torch.cat([p.text for p in parts])[:limit]
        captions = [c for p in parts for c in p.captions][:limit]
        keys = set.intersection(*(set(p.labels) for p in parts)) if parts else set()
        labels = {k: [v for p in parts for v in p.labels[k]][:limit] for k in sorted(keys)}
        return Batch(latents, text, captions, labels)

    def batches(self, split: str, batch_size: int, generator: torch.Generator) -> Iterator[Batch]:
        """Endless stream of shuffled batches: shards in a random order, videos shuffled within
        each shard; only one shard is in memory at a time. Deterministic under ``generator``."""
        shards = self.shards[split]
        while True:
            for i in torch.randperm(len(shards), generator=generator).tolist():
                data = self.shard(*shards[i])
                order = torch.randperm(len(data.captions), generator=generator)
                for start in range(0, len(order) - batch_size + 1, batch_size):
                    idx = order[start:start + batch_size]
                    yield Batch(data.latents[idx], data.text[idx], [data.captions[j] for j in idx.tolist()],
                                {k: [v[j] for j in idx.tolist()] for k, v in data.labels.items()})
                if len(order) < batch_size:
                    raise DataError(f"{self.root}: shard {shards[i][0]} holds {len(order)} videos, fewer than "
                                    f"one batch of {batch_size}")
