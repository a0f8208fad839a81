"""hwnas export: ONNX (checked with ONNX Runtime) and Core ML (op listing vs the architecture),
split into parts, timestep embeddings precomputed; an operator that does not convert is named."""
import json
import platform

import numpy as np
import pytest
import torch

from tests.nas.deploy_helpers import experiment, shared_workdir, write_config

ARCH = "mid:conv1d:1,up1:self_attn1d:1"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    from nas.cli import main

    workdir = shared_workdir(tmp_path_factory)
    out = tmp_path_factory.mktemp("xmodel") / "m"
    cfg = write_config(out.parent / "c.yaml", experiment(workdir))
    assert main(["train", str(cfg), "--arch", ARCH, "--steps", "2", "--out", str(out), "--workdir", str(workdir),
                 "--json"]) == 0
    return out


def test_staged_network_is_the_model_and_splits_by_size(model_dir):
    from evaluators.model_dir import load_model
    from nas.export import StagedVideoUNet, split_points

    trained = load_model(model_dir)
    staged = StagedVideoUNet(trained.model)
    assert staged.names == ["in", "down0", "down1", "mid", "up0", "up1", "out"]
    sizes = staged.stage_bytes()
    bounds = split_points(sizes, 3)
    assert len(bounds) == 3 and bounds[0][0] == 0 and bounds[-1][1] == len(sizes)
    assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))
    with pytest.raises(Exception, match="--parts 9"):
        split_points(sizes, 9)


def test_onnx_export_in_two_parts_matches_torch_in_onnx_runtime(model_dir, tmp_path, hwnas):
    import onnx

    r = hwnas("export", model_dir, "--format", "onnx", "--out", tmp_path / "x", "--parts", 2, "--steps", 4, "--json")
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    assert rep["arch"] == ARCH and len(rep["parts"]) == 2
    assert rep["staged_vs_model_max_abs"] < 1e-5
    assert rep["onnxruntime_max_abs_error"] < 1e-4  # FP32 both sides
    assert rep["parts"][1]["stages"][-1] == "out" and rep["parts"][0]["stages"][0] == "in"
    for part in rep["parts"]:
        model = onnx.load(str(tmp_path / "x" / part["path"]))
        assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= 17
        assert part["bytes"] > 0 and [i.name for i in model.graph.input][:3] in (
            ["sample", "temb", "text"], ["hidden", "temb", "text"])
    emb = np.load(tmp_path / "x" / "timestep_embeddings.npy")
    assert emb.shape == (4, rep["sampler"]["embedding_dim"]) and rep["sampler"]["t"][0] == 1.0
    assert not np.allclose(emb[0], emb[1])  # one embedding per step
    assert json.loads((tmp_path / "x" / "export.json").read_text())["total_bytes"] == rep["total_bytes"]


def test_coreml_export_lists_every_temporal_layer_and_skips_the_macos_check_here(model_dir, tmp_path, hwnas):
    r = hwnas("export", model_dir, "--format", "coreml", "--out", tmp_path / "x", "--json")
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    part = rep["parts"][0]
    assert (tmp_path / "x" / "unet.mlpackage").is_dir() and part["bytes"] > 0
    check = rep["op_check"]
    # one conv1d (a conv) and one self-attention (an SDPA) beyond the backbone's own program
    assert check["ok"] and check["signature_ops"] == {"conv": 1, "scaled_dot_product_attention": 1}
    assert check["ops"]["scaled_dot_product_attention"] > check["backbone_ops"].get("scaled_dot_product_attention", 0)
    assert check["unsupported"] == [] and check["opset_checked"]
    if platform.system() != "Darwin":
        assert part["macos_check"]["status"] == "skipped" and "macOS" in part["macos_check"]["reason"]


def test_an_operator_that_does_not_convert_is_named_with_the_reason(model_dir, tmp_path, hwnas, monkeypatch):
    from search_spaces.ops.conv import Conv1d

    def residual(self, x, context=None):  # an SVD: no ONNX operator exists for it
        u, s, v = torch.linalg.svd(x.flatten(2))
        return x * 0 + (s.sum() * 0)

    monkeypatch.setattr(Conv1d, "residual", residual)
    r = hwnas("export", model_dir, "--format", "onnx", "--out", tmp_path / "x", "--no-check")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    assert "operator conv1d (slot mid) does not convert to onnx" in r.stderr and "svd" in r.stderr.lower()
