"""Real weights end to end: a pipeline saved here (tiny UNet + VAE + CLIP text encoder, random
weights, ``save_pretrained``) -> ``data encode`` of generated videos -> lookup table ->
campaign -> Pareto front, with no synthetic data and no spatial pre-training on the way."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
import yaml

from nas.cli import main

pytest.importorskip("av")
pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def pipe_and_data(tmp_path_factory):
    from evaluators.pipelines import save_pipeline
    from evaluators.video_io import write_video

    root = tmp_path_factory.mktemp("real")
    pipe = save_pipeline(root / "pipe", seed=0)
    (root / "videos").mkdir()
    rows = []
    for i in range(6):  # a bright bar moving right or left over noise
        frames = np.random.default_rng(i).integers(0, 60, (8, 16, 16, 3), dtype=np.uint8)
        for k in range(8):
            x = (2 * k if i % 2 else 14 - 2 * k) % 14
            frames[k, :, x:x + 3] = 230
        write_video(root / "videos" / f"v{i}.mp4", frames, fps=8)
        rows.append({"video": f"v{i}.mp4", "caption": f"a bar moving {'right' if i % 2 else 'left'}"})
    (root / "captions.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    assert main(["data", "encode", str(root / "videos"), "--captions", str(root / "captions.jsonl"), "--vae",
                 str(pipe), "--text-encoder", str(pipe), "--frames", "4", "--size", "16x16", "--fps", "8",
                 "--tokens", "8", "--val-videos", "2", "--out", str(root / "data")]) == 0
    return root, pipe, root / "data"


def experiment(root, pipe, data, **search) -> dict:
    return {"name": "real", "seed": 0,
            "space": {"backbone": {"weights": str(pipe)}, "video": {"frames": 4, "height": 8, "width": 8},
                      "text": {"tokens": 8}, "ops": ["conv1d", "self_attn1d"], "max_layers": 1,
                      "slots": ["down0", "mid"], "op_options": {"head_dim": 16}},
            "lut": {"backend": "torch", "options": {"threads": 1}, "device": "cpu", "warmup": 1, "repeats": 3},
            "data": {"dir": str(data)},
            "train": {"steps": 2, "batch": 2, "threads": 1},
            "evaluator": {"name": "flow_loss", "options": {"t_values": [0.5], "val_clips": 2}},
            "search": {"strategy": "snapgen", "workers": 0, "workdir": str(root / "work"), **search}}


def write(path, cfg) -> str:
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


def test_encode_table_campaign_front_on_saved_pipeline_weights(pipe_and_data, tmp_path, capsys):
    root, pipe, data = pipe_and_data
    cfg = write(tmp_path / "real.yaml", experiment(root, pipe, data, max_train_steps=30))
    capsys.readouterr()
    assert main(["search", "run", cfg, "--out", str(tmp_path / "camp"), "--json"]) == 0, capsys.readouterr().err
    capsys.readouterr()
    assert main(["pareto", "show", str(tmp_path / "camp"), "--json"]) == 0
    front = json.loads(capsys.readouterr().out)["front"]
    assert front and all(np.isfinite(p["quality"]) and p["latency_ms"] > 0 for p in front)
    assert (tmp_path / "camp" / "lut.parquet").is_file()
    assert not (root / "work" / "data").exists() and not (root / "work" / "cache").exists()  # no synthetic set,
    # no pre-training: the data and the backbone are the user's


def test_the_spatial_layers_load_from_the_pipeline_and_stay_frozen(pipe_and_data):
    from diffusers import UNet2DConditionModel

    from evaluators import CandidateRunner
    from nas.config import Experiment

    root, pipe, data = pipe_and_data
    exp = Experiment.from_dict(experiment(root, pipe, data))
    runner = CandidateRunner(exp.space, exp.data, exp.train, exp.evaluator, root / "w2", seed=0)
    result = runner.run("down0:conv1d:1,mid:self_attn1d:1", None, 3, 0)
    assert result.status == "ok", result.reason
    saved = UNet2DConditionModel.from_pretrained(pipe / "unet").state_dict()
    after = runner.unet.state_dict()
    assert set(saved) == set(after) and all(torch.equal(saved[k], after[k]) for k in saved)
    assert not any(p.requires_grad for p in runner.unet.parameters())
    assert result.state and {k.split(".")[0] for k in result.state} == {"down0_conv1d", "mid_self_attn1d"}
    assert runner.info["backbone"] == str(pipe)


def _one_line(capsys) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hwnas: error: "), lines
    return lines[0]


def test_mismatched_pipeline_or_data_fails_before_any_work(pipe_and_data, tmp_path, capsys):
    root, pipe, data = pipe_and_data
    bad = shutil.copytree(pipe, tmp_path / "bad_pipe")
    vae = json.loads((bad / "vae" / "config.json").read_text())
    (bad / "vae" / "config.json").write_text(json.dumps(vae | {"latent_channels": 8}))
    text = json.loads((bad / "text_encoder" / "config.json").read_text())
    (bad / "text_encoder" / "config.json").write_text(json.dumps(text | {"hidden_size": 48}))
    capsys.readouterr()
    cfg = write(tmp_path / "a.yaml", experiment(root, bad, data))
    assert main(["search", "run", cfg, "--out", str(tmp_path / "c1")]) == 2
    line = _one_line(capsys)
    assert "its VAE has 8 latent channels, the UNet's in_channels is 4" in line
    assert "its text encoder is 48 wide, the UNet's cross_attention_dim is 32" in line
    assert not (tmp_path / "c1" / "lut.parquet").exists()
    cfg = experiment(root, pipe, data)
    cfg["space"]["backbone"]["overrides"] = {"in_channels": 3, "out_channels": 3, "cross_attention_dim": 64}
    cfg["space"]["backbone"]["weights"] = None
    cfg["space"]["backbone"]["config"] = str(pipe / "unet" / "config.json")
    assert main(["search", "run", write(tmp_path / "b.yaml", cfg), "--out", str(tmp_path / "c2")]) == 2
    line = _one_line(capsys)
    assert "its latents have 4 channels, the UNet's in_channels is 3" in line
    assert "its text is 32 wide, the UNet's cross_attention_dim is 64" in line
    cfg = experiment(root, pipe, data)
    cfg["space"]["backbone"]["weights"] = str(tmp_path / "nowhere")
    assert main(["search", "run", write(tmp_path / "c.yaml", cfg), "--out", str(tmp_path / "c3")]) == 2
    assert "space.backbone.weights: " in _one_line(capsys)


def test_sd15_webvid_plans_here_and_fails_fast_without_its_folders(tmp_path, capsys):
    assert main(["search", "run", "experiments/sd15_webvid.yaml", "--dry-run", "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["problem"] is None and plan["slots"] == 9 and plan["workers"] == 8 and plan["candidates"] > 1
    if not torch.cuda.is_available():  # here the GPUs are missing first
        assert main(["search", "run", "experiments/sd15_webvid.yaml", "--out", str(tmp_path / "c")]) == 2
        assert "search.gpus_per_worker 1: this machine's Ray cluster has no GPUs" in _one_line(capsys)
    cfg = yaml.safe_load(open("experiments/sd15_webvid.yaml"))
    cfg["train"]["device"], cfg["search"]["gpus_per_worker"] = "cpu", 0
    assert main(["search", "run", write(tmp_path / "cpu.yaml", cfg), "--out", str(tmp_path / "c2")]) == 2
    assert "space.backbone.weights: /data/models/stable-diffusion-v1-5 does not exist" in _one_line(capsys)
