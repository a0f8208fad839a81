"""Before any work: the data, the backbone's weights and the space must fit together.

A latent dataset's channels must be the UNet's ``in_channels`` and its text width the UNet's
``cross_attention_dim`` (and its T×H×W and L the space's video and text tokens); a
pipeline given as ``space.backbone.weights`` must have a VAE with ``in_channels`` latent
channels and a text encoder ``cross_attention_dim`` wide. Each mismatch is one line naming
both sides, raised before a table is built or a worker starts.
"""
from __future__ import annotations

from pathlib import Path

from core.errors import ConfigError
from evaluators.config import DataConfig
from evaluators.data import LatentDataset


def check_inputs(space, data: DataConfig) -> None:
    """``space`` is a ``search_spaces.SearchSpace``; raises ``ConfigError``/``DataError``."""
    from evaluators.vae import read_config, vae_geometry
    from search_spaces.backbones import pipeline_folder

    cfg = space.unet_config
    in_channels, text_dim = int(cfg["in_channels"]), int(cfg["cross_attention_dim"])
    weights = space.config.backbone.weights
    if weights is not None:
        if not Path(weights).exists():
            raise ConfigError(f"space.backbone.weights: {weights} does not exist")
        pipe = pipeline_folder(weights)
        problems = []
        if pipe is not None and (pipe / "vae" / "config.json").is_file():
            channels, _ = vae_geometry(read_config(pipe / "vae", "space.backbone.weights"))
            if channels != in_channels:
                problems.append(f"its VAE has {channels} latent channels, the UNet's in_channels is {in_channels}")
        if pipe is not None and (pipe / "text_encoder" / "config.json").is_file():
            text = read_config(pipe / "text_encoder", "space.backbone.weights")
            width = int(text.get("text_config", text).get("hidden_size", text_dim))
            if width != text_dim:
                problems.append(f"its text encoder is {width} wide, the UNet's cross_attention_dim is {text_dim}")
        if problems:
            raise ConfigError(f"space.backbone.weights: {pipe}: {'; '.join(problems)}")
    _, frames, _, height, width = space.video_shape
    _, tokens, _ = space.text_shape
    if data.dir is None:
        if data.set == "realistic":
            if in_channels != 4:
                raise ConfigError(f"data.set: realistic has 4-channel latents (its VAE); the UNet's in_channels is "
                                  f"{in_channels}")
            return
        if in_channels != 3:
            raise ConfigError(f"data.dir: unset, so the built-in RGB set (3 channels) would be used, but the UNet "
                              f"takes {in_channels} latent channels; encode videos with `hwnas data encode` and set "
                              "data.dir")
        return
    dataset = LatentDataset(data.dir)
    t, c, h, w = dataset.latent_shape
    length, dim = dataset.text_shape
    problems = []
    if c != in_channels:
        problems.append(f"its latents have {c} channels, the UNet's in_channels is {in_channels}")
    if dim != text_dim:
        problems.append(f"its text is {dim} wide, the UNet's cross_attention_dim is {text_dim}")
    if problems:
        raise ConfigError(f"data.dir: {data.dir}: {'; '.join(problems)}")
    dataset.check_shapes(frames, in_channels, height, width, tokens, text_dim)
