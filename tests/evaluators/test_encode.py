"""``hwnas data encode``: videos written here (mp4, gif, webm, a frame folder) through a tiny
randomly initialised AutoencoderKL and CLIP text model saved with ``save_pretrained``."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml

from evaluators.data import LatentDataset
from evaluators.encode import EncodeSettings, encode_dataset
from evaluators.pipelines import save_pipeline
from evaluators.video_io import ClipError, find_clips, match_captions, read_captions, read_clip, write_video
from nas.cli import main

pytest.importorskip("av")
pytest.importorskip("transformers")


def gray_clip(n: int, h: int = 24, w: int = 32, step: int = 20) -> np.ndarray:
    """Frame k is uniformly grey at level k·step: which frame was sampled reads off any pixel."""
    return np.stack([np.full((h, w, 3), k * step, np.uint8) for k in range(n)])


def level(frames: torch.Tensor, step: int = 20) -> list[int]:
    return [round(float(f.mean()) * 255 / step) for f in frames]


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    return save_pipeline(tmp_path_factory.mktemp("pipe") / "pipe", seed=0)


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    """7 captioned clips (5 usable, 1 corrupt, 1 too short) and one without a caption."""
    root = tmp_path_factory.mktemp("videos") / "v"
    (root / "sub").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i, ext in enumerate(["mp4", "gif", "webm", "mp4"]):
        frames = rng.integers(0, 255, (10, 24, 32, 3), dtype=np.uint8)
        write_video(root / ("sub" if i == 3 else "") / f"clip{i}.{ext}", frames, fps=8)
    from PIL import Image

    (root / "clip4").mkdir()
    for k in range(6):
        Image.fromarray(rng.integers(0, 255, (24, 32, 3), dtype=np.uint8)).save(root / "clip4" / f"{k}.png")
    (root / "broken.mp4").write_bytes(b"not a video at all" * 20)
    write_video(root / "short.mp4", gray_clip(2), fps=8)
    write_video(root / "extra.gif", gray_clip(8), fps=8)
    rows = [("clip0", "a red car"), ("clip1.gif", "a blue bird"), ("clip2", "waves"), ("sub/clip3.mp4", "trees"),
            ("clip4", "a dog"), ("broken", "nothing"), ("short", "too brief")]
    (root.parent / "captions.csv").write_text("video,caption\n" + "\n".join(f"{v},{c}" for v, c in rows) + "\n")
    return root


def test_sampling_at_a_rate_picks_the_frames_shown_then(tmp_path):
    write_video(tmp_path / "a.gif", gray_clip(12), fps=8)
    write_video(tmp_path / "b.mp4", gray_clip(12), fps=8)
    clips = {c.id: c for c in find_clips(tmp_path)}
    assert level(read_clip(clips["a.gif"], 4, 16, 16, fps=4)) == [0, 2, 4, 6]
    assert level(read_clip(clips["b.mp4"], 4, 16, 16, fps=4)) == [0, 2, 4, 6]
    assert level(read_clip(clips["b.mp4"], 3, 16, 16)) == [0, 1, 2]  # no rate: the first T frames
    assert level(read_clip(clips["b.mp4"], 6, 16, 16, fps=4)) == [0, 2, 4, 6, 8, 10]  # 1.25 s of 1.5 s
    with pytest.raises(ClipError, match="too short: 12 frames lasting 1.50 s; 7 frames at 4 fps"):
        read_clip(clips["b.mp4"], 7, 16, 16, fps=4)


def test_resize_covers_then_centre_crops(tmp_path):
    frame = np.zeros((1, 20, 40, 3), np.uint8)
    frame[:, :, 8:32] = 255  # the centre 60 % is white, the sides black
    from PIL import Image

    (tmp_path / "f").mkdir()
    Image.fromarray(frame[0]).save(tmp_path / "f" / "0.png")
    out = read_clip(find_clips(tmp_path)[0], 1, 10, 10)  # 20x40 -> 10x20 -> centre 10x10: all white
    assert out.shape == (1, 3, 10, 10) and float(out.min()) > 0.99


def test_captions_csv_webvid_and_jsonl(tmp_path):
    (tmp_path / "w.csv").write_text("videoid,contentUrl,duration,page_dir,name\n1066,http://x,PT11S,p,A girl\n")
    assert read_captions(tmp_path / "w.csv") == [("1066", "A girl")]
    (tmp_path / "c.jsonl").write_text('{"path": "a/1066.mp4", "text": "x"}\n\n{"path": "b.gif", "text": "y"}\n')
    assert read_captions(tmp_path / "c.jsonl") == [("a/1066.mp4", "x"), ("b.gif", "y")]
    (tmp_path / "v" / "a").mkdir(parents=True)
    write_video(tmp_path / "v" / "a" / "1066.mp4", gray_clip(2), fps=8)
    found, missing = match_captions(find_clips(tmp_path / "v"), [("1066", "x"), ("a/1066.mp4", "y"), ("nope", "z")])
    assert found == {"a/1066.mp4": "y"} and missing == ["nope"]


def test_encode_writes_the_vae_latents_and_clip_states_and_reports_skips(pipeline, videos, tmp_path, capsys):
    out = tmp_path / "ds"
    assert main(["data", "encode", str(videos), "--captions", str(videos.parent / "captions.csv"), "--vae",
                 str(pipeline), "--text-encoder", str(pipeline), "--frames", "4", "--size", "16x16", "--fps", "4",
                 "--out", str(out), "--val-videos", "1", "--shard-size", "2", "--batch", "3", "--tokens", "8"]) == 0
    assert "encoding ds: 8/8" in capsys.readouterr().err  # progress on stderr
    data = LatentDataset(out)
    assert data.latent_shape == (4, 4, 8, 8) and data.text_shape == (8, 32)
    assert (data.count("train"), data.count("val")) == (4, 1)
    report = data.meta["report"]
    reasons = {s["video"]: s["reason"] for s in report["skipped"]}
    assert set(reasons) == {"broken.mp4", "short.mp4", "extra.gif"}
    assert reasons["broken.mp4"].startswith("cannot open") and reasons["short.mp4"].startswith("too short")
    assert reasons["extra.gif"] == "no caption in captions.csv"
    assert report["scaling_factor"] == pytest.approx(0.18215)
    # the stored latents are the VAE's mean times its scaling factor, the text CLIP's token states
    from diffusers import AutoencoderKL
    from transformers import CLIPTextModel, CLIPTokenizer

    batch = data.load("train") if "trees" in data.load("train").captions else data.load("val")
    i = batch.captions.index("trees")
    frames = read_clip(find_clips(videos)[[c.id for c in find_clips(videos)].index("sub/clip3.mp4")], 4, 16, 16, 4)
    vae = AutoencoderKL.from_pretrained(pipeline / "vae")
    with torch.no_grad():
        want = vae.encode(frames * 2 - 1).latent_dist.mean * 0.18215
        ids = CLIPTokenizer.from_pretrained(pipeline / "tokenizer")(["trees"], padding="max_length", max_length=8,
                                                                    return_tensors="pt").input_ids
        text = CLIPTextModel.from_pretrained(pipeline / "text_encoder")(input_ids=ids).last_hidden_state
    torch.testing.assert_close(batch.latents[i], want, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(batch.text[i], text[0], atol=1e-5, rtol=1e-4)
    assert main(["data", "show", str(out), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["clips"] == 5 and shown["frames"] == 4 and shown["latent_shape"] == [4, 4, 8, 8]
    assert shown["text_width"] == 32 and shown["skipped_clips"] == 3
    assert any(s.startswith("broken.mp4: cannot open") for s in shown["skipped"])


def test_a_killed_encode_resumes_keeping_its_finished_shards(pipeline, videos, tmp_path, monkeypatch):
    import evaluators.encode as enc

    settings = EncodeSettings(4, 16, 16, fps=4.0, val_videos=1, shard_size=1, batch=1, tokens=8)
    args = (videos, videos.parent / "captions.csv", pipeline, str(pipeline))
    calls: list[str] = []
    real = enc.read_clip

    def dies_at_the_fourth(clip, *a, **k):
        calls.append(clip.id)
        if len(calls) == 4:
            raise KeyboardInterrupt  # the kill
        return real(clip, *a, **k)

    monkeypatch.setattr(enc, "read_clip", dies_at_the_fourth)
    with pytest.raises(KeyboardInterrupt):
        encode_dataset(*args, tmp_path / "ds", settings)
    partial = tmp_path / "ds.partial"
    progress = json.loads((partial / "progress.json").read_text())
    kept = {s["file"]: (partial / s["file"]).read_bytes() for s in progress["shards"]}
    done_before = {c for s in progress["shards"] for c in s["clips"]} | {s["video"] for s in progress["skipped"]}
    assert kept and not (tmp_path / "ds").exists()
    calls.clear()
    monkeypatch.setattr(enc, "read_clip", lambda clip, *a, **k: calls.append(clip.id) or real(clip, *a, **k))
    encode_dataset(*args, tmp_path / "ds", settings)
    assert not set(calls) & done_before  # finished work is not redone
    assert all((tmp_path / "ds" / f).read_bytes() == b for f, b in kept.items())
    resumed = LatentDataset(tmp_path / "ds")
    whole = encode_dataset(*args, tmp_path / "whole", settings)
    for split in ("train", "val"):
        a, b = resumed.load(split), LatentDataset(whole).load(split)
        assert a.captions == b.captions
        torch.testing.assert_close(a.latents, b.latents)
    (tmp_path / "x.partial").mkdir()
    (tmp_path / "x.partial" / "progress.json").write_text(json.dumps({"plan": {}, "shards": [], "skipped": []}))
    with pytest.raises(Exception, match="other settings"):
        encode_dataset(*args, tmp_path / "x", settings)


def test_the_vae_and_text_encoder_subfolders_work_as_well_as_the_pipeline(pipeline, videos, tmp_path):
    settings = EncodeSettings(4, 16, 16, fps=4.0, val_videos=1, tokens=8)
    a = encode_dataset(videos, videos.parent / "captions.csv", pipeline, str(pipeline), tmp_path / "a", settings)
    b = encode_dataset(videos, videos.parent / "captions.csv", pipeline / "vae", str(pipeline / "text_encoder"),
                       tmp_path / "b", settings)
    for split in ("train", "val"):
        torch.testing.assert_close(LatentDataset(a).load(split).latents, LatentDataset(b).load(split).latents)
        torch.testing.assert_close(LatentDataset(a).load(split).text, LatentDataset(b).load(split).text)


def _encode(videos, pipeline, out, *extra):
    return main(["data", "encode", str(videos), "--captions", str(videos.parent / "captions.csv"), "--vae",
                 str(pipeline), "--text-encoder", str(pipeline), "--frames", "4", "--size", "16x16", "--out", str(out),
                 *extra])


def test_bad_input_is_one_line_and_exit_2(pipeline, videos, tmp_path, capsys, tiny_config_path):
    def err():
        lines = capsys.readouterr().err.strip().splitlines()  # progress lines, then the error
        assert [x for x in lines if "error" in x] == lines[-1:] and lines[-1].startswith("hwnas: error: ")
        return lines[-1]

    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "a.mp4").write_bytes(b"x" * 100)
    (junk / "b.gif").write_bytes(b"y" * 100)
    (tmp_path / "captions.csv").write_text("video,caption\na,one\nb,two\n")
    assert _encode(junk, pipeline, tmp_path / "o1") == 2
    assert "no readable clip among 2 (a.mp4: cannot open" in err()
    (tmp_path / "captions.csv").write_text("video,caption\na,one\nb,two\nghost1,x\nghost2,y\n")
    assert _encode(junk, pipeline, tmp_path / "o2") == 2
    assert "2 of its videos are not in" in (e := err()) and "ghost1, ghost2" in e
    assert _encode(videos, pipeline, tmp_path / "o3", "--size", "15x16") == 2
    assert "--size 15x16: this VAE downsamples by 2" in err()
    assert _encode(videos, pipeline, tmp_path / "o3", "--frames", "0") == 2
    assert "--frames 0" in err()
    if not torch.cuda.is_available():
        assert _encode(videos, pipeline, tmp_path / "o3", "--device", "cuda") == 2
        assert "--device cuda: this machine has no CUDA GPU" in err()
    assert _encode(videos, pipeline, tmp_path / "o4", "--config", tiny_config_path, "--size", "16x16",
                   "--frames", "8") == 2  # tiny: 3-channel UNet, cross_attention_dim 32
    assert "the VAE's latent channels (4) differ from the UNet's in_channels (3)" in err()
    cfg = yaml.safe_load(open(tiny_config_path))
    cfg["space"]["backbone"] = {"preset": "tiny", "overrides": {"in_channels": 4, "out_channels": 4,
                                                               "cross_attention_dim": 64}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    assert _encode(videos, pipeline, tmp_path / "o5", "--config", str(tmp_path / "c.yaml"), "--size", "16x16",
                   "--frames", "8") == 2
    assert "the text encoder's width (32) differs from the UNet's cross_attention_dim (64)" in err()
    assert not any((tmp_path / f"o{i}").exists() for i in range(1, 6))
