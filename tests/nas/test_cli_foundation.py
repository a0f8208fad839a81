"""The CLI contract of the foundation: `hwnas space show` and `hwnas cost`, and bad input."""
import json
import os
import subprocess
import sys

import pytest

from nas.cli import main
from search_spaces.ops import list_ops

HWNAS = [sys.executable, "-m", "nas.cli"]


def hwnas(*args, cwd=None):
    return subprocess.run(HWNAS + list(args), capture_output=True, text=True, cwd=cwd, timeout=300)


def test_space_show_json_contract(tiny_config_path):
    out = hwnas("space", "show", tiny_config_path, "--json")
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    assert {"slots", "size", "examples"} <= set(info)
    assert [s["name"] for s in info["slots"]] == ["down0", "mid", "up1"]
    assert all({"name", "shape", "ops", "max_layers"} <= set(s) for s in info["slots"])
    assert info["size"] == 343
    assert info["examples"]["empty"] == "empty"
    assert info["examples"]["full"] == "down0:conv1d:2,mid:conv1d:2,up1:conv1d:2"


def test_space_show_table(tiny_config_path):
    out = hwnas("space", "show", tiny_config_path)
    assert out.returncode == 0 and "343" in out.stdout and "self_attn1d" in out.stdout


def test_cost_of_an_experiment_architecture(tiny_config_path):
    empty = json.loads(hwnas("cost", tiny_config_path, "--json").stdout)
    full = hwnas("cost", tiny_config_path, "--arch", "full", "--json")
    assert full.returncode == 0, full.stderr
    full = json.loads(full.stdout)
    assert set(full) >= {"flops", "params", "activation_peak_bytes"}
    assert full["flops"] > empty["flops"] > 0 and full["params"] > empty["params"]


def test_cost_of_a_diffusers_class_from_a_config_file(tmp_path):
    cfg = tmp_path / "unet.json"
    cfg.write_text(json.dumps({"block_out_channels": [32, 64], "norm_num_groups": 8, "cross_attention_dim": 32,
                               "down_block_types": ["CrossAttnDownBlock2D", "DownBlock2D"],
                               "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D"], "sample_size": 16}))
    small = json.loads(hwnas("cost", "diffusers:UNet2DConditionModel", "--config", str(cfg), "--json").stdout)
    big = hwnas("cost", "diffusers:UNet2DConditionModel", "--config", str(cfg), "--input", "sample=1x4x32x32",
                "--input", "encoder_hidden_states=1x77x32", "--input", "timestep=", "--json")
    assert big.returncode == 0, big.stderr
    big = json.loads(big.stdout)
    assert big["params"] == small["params"]
    # 4x the pixels: convolution FLOPs scale linearly, attention super-linearly
    assert big["flops"] > 3.9 * small["flops"]


def test_sd15_sized_unet_is_costed_on_meta_in_seconds():
    out = hwnas("cost", "diffusers:UNet2DConditionModel", "--json")
    assert out.returncode == 0, out.stderr
    cost = json.loads(out.stdout)
    assert cost["params"] > 8e8 and cost["flops"] > 5e11  # SD-1.5-sized defaults, 64x64 latents


@pytest.mark.parametrize("args, message", [
    (["cost", "diffusers:UNet2DConditionModel", "--input", "sample=1x4xq"], "--input 'sample=1x4xq' does not parse"),
    (["cost", "diffusers:NoSuchModel"], "diffusers has no model class 'NoSuchModel'"),
    (["cost", "diffusers:UNet2DConditionModel", "--input", "smaple=1x4x8x8"], "has no such argument"),
    (["cost", "diffusers:UNet2DConditionModel", "--config", "{not json"], "neither a JSON file nor inline JSON"),
    (["cost", "TINY", "--arch", "mid:conv9d:1"], "unknown operator 'conv9d'"),
    (["cost", "TINY", "--arch", "down1:conv1d:1"], "unknown slot 'down1'"),
    (["cost", "TINY", "--arch", "mid:conv1d:3"], "exceed its maximum of 2"),
    (["cost", "TINY", "--arch", "mid:conv1d:1,mid:self_attn1d:1"], "one operator type per slot"),
    (["space", "show", "BADKEY"], "spcae: unknown key; allowed: space"),
    (["space", "show", "BADVALUE"], "space.max_layers: expected an integer"),
    (["space", "show", "missing.yaml"], "no such config file"),
    (["space", "shwo", "x.yaml"], "invalid choice"),
])
def test_bad_input_is_one_line_and_exit_code_2(tmp_path, monkeypatch, capsys, tiny_config_path, args, message):
    (tmp_path / "BADKEY").write_text("spcae: {}\n")
    (tmp_path / "BADVALUE").write_text(open(tiny_config_path).read().replace("max_layers: 2", "max_layers: two"))
    args = [os.path.abspath(tiny_config_path) if a == "TINY" else a for a in args]
    monkeypatch.chdir(tmp_path)
    try:
        code = main(args)
    except SystemExit as exc:  # argparse usage errors
        code = exc.code
    out = capsys.readouterr()
    assert code == 2
    lines = out.err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], out.err
    assert out.out == ""


def test_bad_input_from_a_real_process_has_no_traceback(tiny_config_path):
    out = hwnas("cost", tiny_config_path, "--arch", "mid:conv9d:1")
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.strip() == "hwnas: error: unknown operator 'conv9d' at slot mid; allowed: " + ", ".join(list_ops())


def test_the_front_states_how_a_weighted_quality_is_made():
    """The main job's quality (1.45) is not its flow_loss quality (0.95): pareto show says how,
    and what it says is what the weighted evaluator computes."""
    import re

    from evaluators.scores.base import Score
    from evaluators.scores.weighted import WeightedEvaluator
    from nas.cli.pareto import quality_formula
    from nas.config import Experiment

    formula = quality_formula(Experiment.load("experiments/tiny.yaml"))
    assert formula == "quality = (1 x flow_loss/quality + 0.05 x caption_discrimination/quality) / 1.05"
    weights = {name: float(w) for w, name in re.findall(r"([\d.]+) x (\w+)/quality", formula)}
    divisor = float(formula.rsplit("/ ", 1)[1])

    class Fixed:
        def __init__(self, quality):
            self.quality = quality

        def score(self, model):
            return Score(self.quality, {})

    parts = {"flow_loss": 0.9516, "caption_discrimination": 11.448}
    ev = WeightedEvaluator.__new__(WeightedEvaluator)  # its components' scores fixed, nothing trained
    ev.weights, ev.parts = weights, {n: Fixed(q) for n, q in parts.items()}
    assert ev.score(None).quality == pytest.approx(sum(weights[n] * q for n, q in parts.items()) / divisor)
    assert quality_formula(Experiment.load("experiments/snapgen_v.yaml")) is None  # one evaluator: no formula
