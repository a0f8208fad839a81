"""``hwnas sample`` of a model trained on VAE latents (the realistic set's 4-channel latents
of 32x32 frames): the file holds the VAE's RGB decoding at its output size, through --vae
or, by default, the data set's own VAE; a missing or mismatched VAE is one line, exit 2."""
import json

import numpy as np
import pytest
from PIL import Image

from tests.nas.deploy_helpers import experiment, write_config

pytest.importorskip("skimage")

PROMPT = "the camera pans left over a cat"
SAMPLE = ("--prompt", PROMPT, "--frames", 2, "--steps", 2, "--seed", 3, "--scale", 1)


@pytest.fixture(scope="module")
def vae_model(tmp_path_factory):
    """One training step on a realistic set of 6 clips: 2 frames of 4x16x16 VAE latents."""
    from nas.cli import main

    d = tmp_path_factory.mktemp("vae_model")
    exp = experiment(d / "work")
    exp["space"].update(backbone={"preset": "tiny", "overrides": {"in_channels": 4, "out_channels": 4}},
                        video={"frames": 2, "height": 16, "width": 16})
    exp.update(data={"set": "realistic", "videos": 6, "val_videos": 2},
               train={"steps": 1, "batch": 2, "threads": 1, "pretrain": {"steps": 2, "batch": 4}},
               evaluator={"name": "flow_loss", "options": {"val_clips": 2, "t_values": [0.5]}})
    cfg = write_config(d / "c.yaml", exp)
    assert main(["train", str(cfg), "--arch", "mid:conv1d:1", "--steps", "1", "--out", str(d / "m"),
                 "--workdir", str(d / "work"), "--json"]) == 0
    return d / "m"


def test_the_file_is_the_vaes_rgb_decoding_at_its_output_size(vae_model, tmp_path, hwnas):
    from evaluators.model_dir import load_model
    from evaluators.realistic import small_vae
    from evaluators.sample import sample_latents, to_uint8
    from evaluators.vae import Vae

    shipped = small_vae()
    r = hwnas("sample", vae_model, *SAMPLE, "--vae", shipped, "--out", tmp_path / "v.png", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["size"] == [32, 32]  # the VAE's frames, not the 16x16 latents
    png = Image.open(tmp_path / "v.png")
    assert png.mode == "RGB" and png.size == (2 * 32, 32)
    latents = sample_latents(load_model(vae_model), [PROMPT], frames=2, steps=2, seed=3)
    assert latents.shape == (1, 2, 4, 16, 16)
    frames = to_uint8(Vae(shipped).decode(latents[0]))  # (T, 32, 32, 3)
    assert np.array_equal(np.asarray(png), frames.transpose(1, 0, 2, 3).reshape(32, 2 * 32, 3))
    # without --vae: the data set's own VAE, so the same picture
    r = hwnas("sample", vae_model, *SAMPLE, "--out", tmp_path / "default.png")
    assert r.returncode == 0, r.stderr
    assert np.array_equal(np.asarray(Image.open(tmp_path / "default.png")), np.asarray(png))


def test_a_missing_or_mismatched_vae_is_one_line_and_exit_2(vae_model, tmp_path, hwnas):
    r = hwnas("sample", vae_model, *SAMPLE, "--vae", tmp_path / "nowhere", "--out", tmp_path / "v.png")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    assert f"--vae: {tmp_path / 'nowhere'} does not exist" in r.stderr
    other = tmp_path / "other_vae"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"latent_channels": 8, "block_out_channels": [16, 32]}))
    r = hwnas("sample", vae_model, *SAMPLE, "--vae", other, "--out", tmp_path / "v.png")
    assert r.returncode == 2 and "its latents have 8 channels, the model's 4" in r.stderr
    assert not (tmp_path / "v.png").exists()
    # latents of a data set of one's own: its VAE is not known, so --vae is needed
    import shutil

    own = tmp_path / "own"
    shutil.copytree(vae_model, own)
    meta = json.loads((own / "model.json").read_text())
    meta["experiment"]["data"]["dir"] = str(tmp_path / "my_latents")
    (own / "model.json").write_text(json.dumps(meta))
    r = hwnas("sample", own, *SAMPLE, "--out", tmp_path / "v.png")
    assert r.returncode == 2 and "give --vae DIR" in r.stderr and len(r.stderr.strip().splitlines()) == 1
