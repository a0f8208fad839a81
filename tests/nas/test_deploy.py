"""hwnas train from a campaign's front (--pick ARCH|best|knee), hwnas sample, and their bad input."""
import json

import pytest
import torch
from PIL import Image

from nas.deploy import pick, stored_weights
from tests.nas.deploy_helpers import (ARCHS, STORED, experiment, make_campaign, perturbed_temporal_state,
                                      shared_workdir, write_config)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return shared_workdir(tmp_path_factory)


@pytest.fixture(scope="module")
def campaign(tmp_path_factory, workdir):
    state = perturbed_temporal_state(workdir, STORED)
    return make_campaign(tmp_path_factory.mktemp("camp") / "c", workdir, state), state


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, workdir):
    from nas.cli import main

    out = tmp_path_factory.mktemp("model") / "m"
    cfg = write_config(out.parent / "c.yaml", experiment(workdir))
    assert main(["train", str(cfg), "--arch", "mid:conv1d:1,up1:self_attn1d:1", "--steps", "3", "--out", str(out),
                 "--workdir", str(workdir), "--json"]) == 0
    return out


def test_pick_best_knee_and_a_given_architecture(campaign):
    camp, _ = campaign
    # best: the highest quality that meets the budgets (the 0.30 point breaks latency)
    assert pick(camp, "best").arch == "down0:conv1d:1,mid:conv1d:1"
    assert pick(camp, "knee").arch in ARCHS
    assert pick(camp, "mid:conv1d:1").rule == "given"
    assert stored_weights(camp, STORED)[1]["source"] == "campaign"
    assert stored_weights(camp, "mid:conv1d:1") is None


def test_train_from_a_campaign_starts_from_its_stored_weights(campaign, tmp_path, hwnas):
    camp, state = campaign
    out = tmp_path / "best"
    # a learning rate so small that one step leaves the weights where they started
    r = hwnas("train", camp.root, "--pick", "best", "--steps", 1, "--lr", 1e-12, "--ema", 0, "--out", out, "--json")
    assert r.returncode == 0, r.stderr
    rec = json.loads(r.stdout)
    assert rec["arch"] == STORED and rec["init"]["source"] == "campaign" and rec["init"]["rule"] == "best"
    written = torch.load(out / "weights.pt", weights_only=True)["temporal"]
    assert written.keys() == state.keys()
    assert all(torch.allclose(written[k], state[k], atol=1e-6) for k in state)
    meta = json.loads((out / "model.json").read_text())
    assert meta["arch"] == STORED and meta["latents"]["pixel_space"] and meta["text"]["tokens"] == 8


def test_train_an_architecture_without_stored_weights_says_it_starts_from_identity(campaign, tmp_path, hwnas):
    camp, _ = campaign
    r = hwnas("train", camp.root, "--pick", "mid:conv1d:1", "--steps", 1, "--out", tmp_path / "m")
    assert r.returncode == 0, r.stderr
    assert "identity" in r.stderr
    assert json.loads((tmp_path / "m" / "training.json").read_text())["init"]["source"] == "identity"


def test_pick_of_an_architecture_never_evaluated_is_one_line_and_exit_2(campaign, tmp_path, hwnas):
    camp, _ = campaign
    r = hwnas("train", camp.root, "--pick", "up1:conv1d:2", "--steps", 1, "--out", tmp_path / "m")
    assert r.returncode == 2 and "never evaluated" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "m").exists()
    r = hwnas("train", camp.root, "--arch", "mid:conv1d:1")
    assert r.returncode == 2 and "--pick" in r.stderr


def test_a_checkpoint_of_another_config_is_one_line_and_exit_2(model_dir, workdir, tmp_path, hwnas):
    other = write_config(tmp_path / "other.yaml", experiment(workdir, seed=7))
    r = hwnas("train", other, "--arch", "mid:conv1d:1,up1:self_attn1d:1", "--steps", 3, "--out", model_dir,
              "--workdir", workdir)
    assert r.returncode == 2 and "checkpoint of another config" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_sample_writes_gif_png_and_mp4(model_dir, tmp_path, hwnas):
    for ext in ("gif", "png", "mp4"):
        r = hwnas("sample", model_dir, "--prompt", "a red circle moving left fast", "--frames", 4, "--steps", 2,
                  "--seed", 1, "--out", tmp_path / f"s.{ext}", "--json")
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["frames"] == 4 and not json.loads(r.stdout)["warnings"]
    gif = Image.open(tmp_path / "s.gif")
    assert gif.n_frames == 4 and gif.size == (128, 128)  # 16x16 latents upscaled 8x
    assert Image.open(tmp_path / "s.png").size == (4 * 128, 128)
    import av

    with av.open(str(tmp_path / "s.mp4")) as c:
        assert sum(1 for _ in c.decode(video=0)) == 4


def test_sample_is_fixed_by_its_seed_and_follows_the_pixel_transform(model_dir):
    from evaluators.model_dir import load_model
    from evaluators.sample import decode, sample_latents

    trained = load_model(model_dir)
    a = sample_latents(trained, ["a blue square staying still"], steps=2, seed=5)
    b = sample_latents(trained, ["a blue square staying still"], steps=2, seed=5)
    c = sample_latents(trained, ["a blue square staying still"], steps=2, seed=6)
    assert torch.equal(a, b) and not torch.equal(a, c)
    frames = decode(trained, a)
    assert torch.allclose(frames, ((a + 1) / 2).clamp(0, 1))  # latents are 2·rgb − 1


def test_a_prompt_longer_than_the_encoder_is_cut_with_a_warning(model_dir, tmp_path, hwnas):
    long = "a red circle moving left fast over a black floor under the night sky"
    r = hwnas("sample", model_dir, "--prompt", long, "--steps", 1, "--out", tmp_path / "s.png", "--json")
    assert r.returncode == 0
    assert "warning" in r.stderr and "takes 8" in r.stderr
    assert json.loads(r.stdout)["warnings"]
    r = hwnas("sample", model_dir, "--prompt", "x", "--out", tmp_path / "s.webm")
    assert r.returncode == 2 and "allowed: .gif, .mp4, .png" in r.stderr
    r = hwnas("sample", tmp_path, "--prompt", "x", "--out", tmp_path / "s.png")
    assert r.returncode == 2 and "not a model folder" in r.stderr


def test_evaluate_takes_a_model_folder(model_dir, tmp_path, hwnas):
    r = hwnas("evaluate", model_dir, "--workdir", tmp_path, "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["arch"] == "mid:conv1d:1,up1:self_attn1d:1" and out["evaluator"] == "flow_loss"
    assert 0 < out["quality"] < 1 and out["steps"] == 3
    r = hwnas("evaluate", model_dir, "--arch", "mid:conv1d:1")
    assert r.returncode == 2 and "as trained" in r.stderr
