"""A local CLIP text encoder (transformers ``CLIPTextModel`` + ``CLIPTokenizer``), as SD uses.

``ClipTextEncoder(path)`` takes a pipeline folder (``text_encoder/`` and ``tokenizer/``) or
one folder holding both the model's ``config.json`` and the tokenizer files. Captions are
padded to ``max_length`` (default: the tokenizer's ``model_max_length``, 77 for SD) and the
per-token states of the last layer (``last_hidden_state``, after the final layer norm, as
SD-1.5 conditions on) are returned: (N, L, D) with D the model's ``hidden_size``.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

import torch

from core.errors import one_line
from evaluators.vae import ModelFolderError, model_folder, read_config


def text_folders(path: str | Path) -> tuple[Path, Path]:
    """(model folder, tokenizer folder) of a pipeline or of a single folder."""
    model = model_folder(path, "text_encoder", "--text-encoder")
    tokenizer = model
    for candidate in (Path(path) / "tokenizer", model.parent / "tokenizer"):  # a pipeline, or its text_encoder/
        if candidate.is_dir():
            tokenizer = candidate
            break
    return model, tokenizer


def text_width(path: str | Path) -> int:
    model, _ = text_folders(path)
    config = read_config(model, "--text-encoder")
    config = config.get("text_config", config)  # a full CLIPModel's config nests it
    if "hidden_size" not in config:
        raise ModelFolderError(f"--text-encoder: {model / 'config.json'} has no hidden_size")
    return int(config["hidden_size"])


class ClipTextEncoder:
    def __init__(self, path: str | Path, tokens: int | None = None, device: str | torch.device = "cpu"):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        self.model_path, self.tokenizer_path = text_folders(path)
        self.dim = text_width(path)
        try:
            import transformers
            from transformers import CLIPTextModel, CLIPTokenizer
        except ImportError:
            raise ModelFolderError("--text-encoder DIR needs transformers: pip install 'hwnas[video]'") from None
        transformers.logging.set_verbosity_error()
        transformers.logging.disable_progress_bar()
        logging.getLogger("transformers").setLevel(logging.ERROR)
        try:
            self.tokenizer = CLIPTokenizer.from_pretrained(self.tokenizer_path, local_files_only=True)
        except Exception as exc:  # noqa: BLE001
            raise ModelFolderError(f"--text-encoder: no CLIP tokenizer in {self.tokenizer_path} "
                                   f"({one_line(exc, with_type=True)[:200]})") from None
        try:
            model = CLIPTextModel.from_pretrained(self.model_path, local_files_only=True)
        except Exception as exc:  # noqa: BLE001
            raise ModelFolderError(f"--text-encoder: {self.model_path} is not a loadable CLIPTextModel "
                                   f"({one_line(exc, with_type=True)[:200]})") from None
        self.device = torch.device(device)
        self.model = model.to(self.device).eval().requires_grad_(False)
        limit = int(model.config.max_position_embeddings)
        self.tokens = int(tokens or min(self.tokenizer.model_max_length, limit))
        if self.tokens > limit:
            raise ModelFolderError(f"--tokens {self.tokens}: this text encoder takes at most {limit} tokens")
        self.name = f"clip({self.model_path}, L={self.tokens}, D={self.dim})"

    @torch.no_grad()
    def __call__(self, captions: list[str]) -> torch.Tensor:
        ids = self.tokenizer(list(captions), padding="max_length", max_length=self.tokens, truncation=True,
                             return_tensors="pt").input_ids.to(self.device)
        return self.model(input_ids=ids).last_hidden_state.float().cpu()
