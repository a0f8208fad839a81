"""Randomly initialised SD-style pipelines written with ``save_pretrained``: a folder with
``unet/``, ``vae/``, ``text_encoder/`` and ``tokenizer/`` that loads exactly as a downloaded
diffusers pipeline does (``space.backbone.weights``, ``hwnas data encode --vae/--text-encoder``).

No hub access is needed: the CLIP tokenizer is built from a byte-level vocabulary written
here (every byte as a token, with and without the end-of-word mark, no merges: each word
becomes its characters). For tests (``TINY``), demos and GPU benchmarks (``SD15``: the
SD-1.5 shapes, random weights).
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

TINY_UNET = {"sample_size": 8, "in_channels": 4, "out_channels": 4, "block_out_channels": [32, 64],
             "layers_per_block": 1, "down_block_types": ["CrossAttnDownBlock2D", "DownBlock2D"],
             "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D"], "cross_attention_dim": 32,
             "attention_head_dim": 8, "norm_num_groups": 8}
TINY_VAE = {"in_channels": 3, "out_channels": 3, "latent_channels": 4, "block_out_channels": [8, 16],
            "down_block_types": ["DownEncoderBlock2D"] * 2, "up_block_types": ["UpDecoderBlock2D"] * 2,
            "layers_per_block": 1, "norm_num_groups": 4, "sample_size": 16, "scaling_factor": 0.18215}
TINY_TEXT = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
             "max_position_embeddings": 77}
# SD-1.5's shapes (runwayml/stable-diffusion-v1-5 configs), weights random.
SD15_VAE = {"in_channels": 3, "out_channels": 3, "latent_channels": 4, "block_out_channels": [128, 256, 512, 512],
            "down_block_types": ["DownEncoderBlock2D"] * 4, "up_block_types": ["UpDecoderBlock2D"] * 4,
            "layers_per_block": 2, "norm_num_groups": 32, "sample_size": 512, "scaling_factor": 0.18215}
SD15_TEXT = {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12, "num_attention_heads": 12,
             "max_position_embeddings": 77, "hidden_act": "quick_gelu"}


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2 / CLIP's reversible byte -> printable character map."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


def save_tokenizer(out: str | Path, max_length: int = 77):
    """A CLIP tokenizer over single bytes (vocabulary 514), saved with ``save_pretrained``."""
    from transformers import CLIPTokenizer

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    chars = list(_bytes_to_unicode().values())
    vocab = {t: i for i, t in enumerate(chars + [c + "</w>" for c in chars] + ["<|startoftext|>", "<|endoftext|>"])}
    (out / "vocab.json").write_text(json.dumps(vocab))
    (out / "merges.txt").write_text("#version: 0.2\n")
    tok = CLIPTokenizer(str(out / "vocab.json"), str(out / "merges.txt"), model_max_length=max_length)
    tok.save_pretrained(str(out))
    return tok


def save_pipeline(out: str | Path, unet: dict | None = None, vae: dict | None = None, text: dict | None = None,
                  seed: int = 0, unet_preset: str | None = None) -> Path:
    """Write ``out/{unet,vae,text_encoder,tokenizer}`` with random weights (seeded). ``unet``
    is a diffusers UNet2DConditionModel config (or ``unet_preset``, a bundled preset name)."""
    import logging

    import transformers
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    transformers.logging.disable_progress_bar()
    logging.getLogger("diffusers").setLevel(logging.ERROR)
    out = Path(out)
    if unet_preset is not None:
        from search_spaces.backbones import BackboneConfig, unet_config

        unet = unet_config(BackboneConfig(preset=unet_preset))
    unet, vae, text = dict(unet or TINY_UNET), dict(vae or TINY_VAE), dict(text or TINY_TEXT)
    tok = save_tokenizer(out / "tokenizer", text.get("max_position_embeddings", 77))
    torch.manual_seed(seed)
    UNet2DConditionModel.from_config(unet).save_pretrained(out / "unet")
    AutoencoderKL.from_config(vae).save_pretrained(out / "vae")
    cfg = CLIPTextConfig(vocab_size=len(tok), bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                         pad_token_id=tok.pad_token_id, **text)
    CLIPTextModel(cfg).save_pretrained(out / "text_encoder")
    (out / "model_index.json").write_text(json.dumps({
        "_class_name": "StableDiffusionPipeline", "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"], "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"]}, indent=1))
    return out
