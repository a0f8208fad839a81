"""The cost of diffusers video UNets on the meta device (issue 11, item 6), with small configs."""
import json
import subprocess
import sys

import pytest

from search_spaces.video_cost import CostError, build_diffusers_unet, classify, default_shapes, diffusers_cost

SVD = {"block_out_channels": [32, 64], "num_attention_heads": [2, 4], "cross_attention_dim": 32,
       "layers_per_block": 1, "addition_time_embed_dim": 8, "projection_class_embeddings_input_dim": 24,
       "down_block_types": ["CrossAttnDownBlockSpatioTemporal", "DownBlockSpatioTemporal"],
       "up_block_types": ["UpBlockSpatioTemporal", "CrossAttnUpBlockSpatioTemporal"]}
UNET3D = {"block_out_channels": [32, 64], "norm_num_groups": 8, "cross_attention_dim": 32, "attention_head_dim": 8,
          "layers_per_block": 1, "down_block_types": ["CrossAttnDownBlock3D", "DownBlock3D"],
          "up_block_types": ["UpBlock3D", "CrossAttnUpBlock3D"]}
UNET2D = {"block_out_channels": [32, 64], "norm_num_groups": 8, "cross_attention_dim": 32, "attention_head_dim": 8,
          "layers_per_block": 1, "down_block_types": ["CrossAttnDownBlock2D", "DownBlock2D"],
          "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D"], "sample_size": 8}
ADAPTER = {"block_out_channels": [32, 64], "motion_layers_per_block": 1, "motion_norm_num_groups": 8,
           "motion_num_attention_heads": 2}
CASES = {"UNetSpatioTemporalConditionModel": SVD, "UNet3DConditionModel": UNET3D,
         "UNetMotionModel": {"unet": UNET2D, "motion_adapter": ADAPTER}}


@pytest.mark.parametrize("name", list(CASES))
def test_video_unets_cost_on_meta_with_a_breakdown_that_adds_up(name):
    r = diffusers_cost(name, CASES[name], frames=4, height=8, width=8)
    assert r.flops > 0 and r.params > 0 and r.activation_peak_bytes > 0
    assert 0 < r.activation_peak_fused_bytes <= r.activation_peak_bytes  # no score matrix held
    assert sum(b["flops"] for b in r.breakdown.values()) == r.flops
    assert sum(b["params"] for b in r.breakdown.values()) == r.params
    for kind in ("spatial_conv", "spatial_attention", "temporal"):
        assert r.breakdown[kind]["flops"] > 0 and r.breakdown[kind]["params"] > 0, kind


def test_inputs_are_shaped_per_class():
    svd = build_diffusers_unet("UNetSpatioTemporalConditionModel", SVD)
    s = default_shapes(svd, "UNetSpatioTemporalConditionModel")
    assert s["sample"] == (1, 14, 8, 72, 128) and s["added_time_ids"] == (1, 3)  # frames first, 8 channels
    assert s["encoder_hidden_states"] == (1, 1, 32)
    m3 = build_diffusers_unet("UNet3DConditionModel", UNET3D)
    assert default_shapes(m3, "UNet3DConditionModel", frames=5)["sample"] == (1, 4, 5, 32, 32)  # channels first


def test_motion_model_temporal_layers_are_the_adapter():
    import diffusers
    import torch

    r = diffusers_cost("UNetMotionModel", {"unet": UNET2D, "motion_adapter": ADAPTER}, frames=4)
    with torch.device("meta"):
        adapter = diffusers.MotionAdapter.from_config(ADAPTER)
    assert r.breakdown["temporal"]["params"] == sum(p.numel() for p in adapter.parameters())


def test_more_frames_cost_more_temporal_flops():
    a = diffusers_cost("UNetSpatioTemporalConditionModel", SVD, frames=2, height=8, width=8)
    b = diffusers_cost("UNetSpatioTemporalConditionModel", SVD, frames=4, height=8, width=8)
    assert b.breakdown["temporal"]["flops"] > 1.9 * a.breakdown["temporal"]["flops"]


def test_module_kinds():
    assert classify("down_blocks.0.attentions.0.temporal_transformer_blocks.0.attn1.to_q") == "temporal"
    assert classify("down_blocks.0.motion_modules.0.proj_in") == "temporal"
    assert classify("down_blocks.0.attentions.0.transformer_blocks.0.attn1") == "spatial_attention"
    assert classify("down_blocks.0.resnets.0.spatial_res_block.conv1") == "spatial_conv"
    assert classify("time_embedding.linear_1") == "other"


def test_not_a_unet_and_a_rejected_shape_are_named():
    with pytest.raises(CostError, match="diffusers:AutoencoderKL is not a UNet"):
        diffusers_cost("AutoencoderKL")
    with pytest.raises(CostError, match=r"--input sample=1x4x3x8x8: UNetSpatioTemporalConditionModel rejects"):
        diffusers_cost("UNetSpatioTemporalConditionModel", SVD, {"sample": (1, 4, 3, 8, 8)})
    with pytest.raises(CostError, match=r"--input encoder_hidden_states=1x1x7"):
        diffusers_cost("UNet3DConditionModel", UNET3D, {"encoder_hidden_states": (1, 1, 7)}, frames=2)


def _hwnas(*args):
    return subprocess.run([sys.executable, "-m", "nas.cli", *args], capture_output=True, text=True, timeout=300)


def test_cli_costs_svd_with_the_issue_inputs_and_bad_input_is_one_line():
    cfg = json.dumps({**SVD, "cross_attention_dim": 1024})
    out = _hwnas("cost", "diffusers:UNetSpatioTemporalConditionModel", "--config", cfg,
                 "--input", "sample=1x14x8x32x64", "--input", "timestep=1",
                 "--input", "encoder_hidden_states=1x1x1024", "--input", "added_time_ids=1x3", "--json")
    assert out.returncode == 0, out.stderr
    r = json.loads(out.stdout)
    assert {"flops", "params", "activation_peak_bytes", "breakdown"} <= set(r)
    assert r["inputs"]["sample"] == [1, 14, 8, 32, 64]
    bad = _hwnas("cost", "diffusers:UNetSpatioTemporalConditionModel", "--config", cfg,
                 "--input", "sample=1x14x5x32x64")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "Traceback" not in bad.stderr
    assert "--input sample=1x14x5x32x64" in bad.stderr
    bad = _hwnas("cost", "diffusers:AutoencoderKL")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "is not a UNet" in bad.stderr


def test_a_config_key_no_class_takes_is_refused_not_ignored():
    with pytest.raises(CostError, match=r"config: 'block_out_channel' is not a setting of UNet3DConditionModel"):
        build_diffusers_unet("UNet3DConditionModel", {**UNET3D, "block_out_channel": [32, 64]})
    with pytest.raises(CostError, match=r"config\['motion_adapter'\]: 'layers' is not a setting of MotionAdapter"):
        build_diffusers_unet("UNetMotionModel", {"unet": UNET2D, "motion_adapter": {**ADAPTER, "layers": 1}})
    with pytest.raises(CostError, match=r"takes 'unet' and 'motion_adapter', not 'adapter'"):
        build_diffusers_unet("UNetMotionModel", {"unet": UNET2D, "adapter": ADAPTER})
    assert list(build_diffusers_unet("UNet3DConditionModel", UNET3D).config.block_out_channels) == [32, 64]
    with pytest.raises(CostError, match="frames 0: a count of frames"):
        diffusers_cost("UNet3DConditionModel", UNET3D, frames=0)


@pytest.mark.parametrize("args, says", [
    (["--frames", "0"], "--frames 0: a count of frames, 1 or more"),
    (["--arch", "full"], "--arch applies to an experiment's search space"),
    (["--frames", "4", "--input", "sample=1x4x4x8x8"], "with --input sample=... give them there"),
    (["--config", json.dumps({**SVD, "bogus": 1})], "'bogus' is not a setting of UNetSpatioTemporalConditionModel"),
])
def test_cli_options_that_would_be_ignored_are_one_line_errors(args, says):
    bad = _hwnas("cost", "diffusers:UNetSpatioTemporalConditionModel", *args)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and says in bad.stderr, bad.stderr
