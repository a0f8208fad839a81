"""The realistic built-in set: the motion its caption names is the motion in its frames, and
its latents are the small VAE's (they decode back to the frames)."""
from __future__ import annotations

import pytest
import torch

pytest.importorskip("skimage")

from evaluators.realistic import load_photos, make_clips, render_clip, small_vae  # noqa: E402


def ramp(h: int = 64, w: int = 96) -> torch.Tensor:
    """Brightness grows left to right, redness top to bottom."""
    x = torch.linspace(0, 1, w)[None, None, :].expand(1, h, w)
    y = torch.linspace(0, 1, h)[None, :, None].expand(1, h, w)
    return torch.cat([y, x, x])


def test_pans_and_zooms_move_the_view_the_way_the_caption_says():
    gen = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    mean = lambda v, c: v[:, c].mean(dim=(1, 2))  # noqa: E731
    right = render_clip("pan", "right", ramp(), None, 6, 16, gen())
    left = render_clip("pan", "left", ramp(), None, 6, 16, gen())
    down = render_clip("pan", "down", ramp(), None, 6, 16, gen())
    assert (mean(right, 1).diff() > 0).all() and (mean(left, 1).diff() < 0).all()  # view goes right: brighter
    assert (mean(down, 0).diff() > 0).all() and mean(down, 1).diff().abs().max() < 1e-4
    zin = render_clip("zoom", "in", ramp(), None, 6, 16, gen())
    zout = render_clip("zoom", "out", ramp(), None, 6, 16, gen())
    spread = lambda v: v[:, 1].amax(dim=(1, 2)) - v[:, 1].amin(dim=(1, 2))  # noqa: E731
    assert (spread(zin).diff() < 0).all() and (spread(zout).diff() > 0).all()  # zooming in narrows the view
    still = render_clip("still", "none", ramp(), None, 4, 16, gen())
    assert torch.equal(still[0], still[-1])


def test_a_cutout_moves_over_a_still_background():
    black, white = torch.zeros(3, 64, 64), torch.ones(3, 64, 64)
    for direction, axis, sign in (("right", 1, 1), ("left", 1, -1), ("up", 0, -1), ("down", 0, 1)):
        video = render_clip("cutout", direction, black, white, 5, 32, torch.Generator().manual_seed(1))
        mass = video[:, 0]
        coords = torch.arange(32, dtype=torch.float32)
        centroid = (mass.sum(dim=2 - axis) * coords).sum(1) / mass.sum(dim=(1, 2))
        assert (sign * centroid.diff() > 0).all(), direction


def test_captions_name_the_motion_and_the_photos():
    photos = load_photos(max_side=96)
    assert len(photos) >= 3
    _, captions, labels = make_clips(24, 4, 16, seed=3, photos=photos)
    for caption, kind, direction, bg, obj in zip(captions, *(labels[k] for k in ("kind", "direction", "background",
                                                                                   "object"))):
        assert bg in caption
        if kind == "pan":
            assert caption == f"the camera pans {direction} over {bg}"
        elif kind == "zoom":
            assert caption == f"the camera zooms {direction} on {bg}"
        elif kind == "cutout":
            assert caption == f"{obj} moving {direction} over {bg}" and obj != bg
        else:
            assert caption == f"a still view of {bg}"
    assert len(set(labels["kind"])) >= 3


def test_the_set_is_the_small_vae_latents_of_its_frames(tmp_path, monkeypatch):
    from evaluators import realistic
    from evaluators.data import LatentDataset
    from evaluators.vae import Vae

    vae_dir = small_vae()  # the shipped weights
    photos = load_photos(max_side=96)
    monkeypatch.setattr(realistic, "load_photos", lambda *a, **k: photos)
    out = realistic.synthesise_realistic(tmp_path / "r", 10, 2, 4, 16, 16, 8, 32, seed=0)
    data = LatentDataset(out)
    assert data.latent_shape == (4, 4, 16, 16) and data.text_shape == (8, 32)
    assert (data.count("train"), data.count("val")) == (8, 2)
    frames, captions, _ = make_clips(8, 4, 32, seed=0, photos=photos)
    train = data.load("train")
    assert train.captions == captions
    vae = Vae(vae_dir)
    decoded = vae.decode(train.latents[:2].flatten(0, 1))
    assert (decoded - frames[:2].flatten(0, 1)).abs().mean() < 0.08  # a working autoencoder, not noise
    assert 0.5 < float(train.latents.std()) < 2.0  # the scaling factor gives ~unit-variance latents


def test_the_realistic_set_needs_a_4_channel_unet(tiny_config_path):
    from core.config import load_yaml
    from core.errors import ConfigError
    from evaluators.compat import check_inputs
    from nas.config import Experiment
    from search_spaces.space import SearchSpace

    exp = Experiment.from_dict(load_yaml(tiny_config_path) | {"data": {"set": "realistic"}})
    with pytest.raises(ConfigError, match="data.set: realistic has 4-channel latents .* in_channels is 3"):
        check_inputs(SearchSpace(exp.space), exp.data)
    exp = Experiment.load("experiments/realistic.yaml")
    check_inputs(SearchSpace(exp.space), exp.data)  # the shipped experiment fits
