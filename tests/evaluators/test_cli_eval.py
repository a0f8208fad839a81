"""`hwnas data synth|show` and `hwnas evaluate`: the JSON contract and bad input (exit code 2)."""
import json
import subprocess
import sys

import pytest
import yaml

from nas.cli import main


@pytest.fixture(scope="module")
def small_config(tmp_path_factory, tiny_config_path):
    """The tiny experiment with a small dataset and a short spatial pre-training."""
    cfg = yaml.safe_load(open(tiny_config_path))
    cfg["data"] = {"videos": 96, "val_videos": 16}
    cfg["train"] = {"steps": 3, "batch": 2, "pretrain": {"steps": 5, "batch": 8}}
    cfg["evaluator"] = {"name": "flow_loss", "options": {"val_clips": 4}}
    path = tmp_path_factory.mktemp("cfg") / "small.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _with(path, tmp_path, **sections):
    cfg = yaml.safe_load(open(path))
    for key, value in sections.items():
        cfg[key] = {**cfg.get(key, {}), **value}
    out = tmp_path / "changed.yaml"
    out.write_text(yaml.safe_dump(cfg))
    return str(out)


def test_data_synth_and_show_json(tmp_path, capsys):
    assert main(["data", "synth", "--out", str(tmp_path / "d"), "--videos", "40", "--val-videos", "8", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["train_videos"] == 32 and info["val_videos"] == 8 and info["latent_shape"] == [8, 3, 16, 16]
    assert main(["data", "show", str(tmp_path / "d"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["text_shape"] == [8, 32]


def test_evaluate_json_contract(small_config, tmp_path, capsys):
    args = ["evaluate", str(small_config), "--arch", "mid:conv1d:1", "--workdir", str(tmp_path), "--json"]
    assert main(args + ["--steps", "2", "--seed", "3"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {"arch", "quality", "breakdown", "seconds"} <= set(out)
    assert out["arch"] == "mid:conv1d:1" and out["steps"] == 2 and out["seed"] == 3
    assert 0 < out["quality"] < 1 and "loss_t0.7" in out["breakdown"]
    assert out["prepare"]["pretrained"] == "now"
    assert main(args + ["--evaluator", "prompt_suite"]) == 0  # backbone cached this time
    out = json.loads(capsys.readouterr().out)
    assert out["prepare"]["pretrained"] == "cached" and {"colour", "object", "motion", "flicker"} <= set(out["breakdown"])


@pytest.mark.parametrize("args, message", [
    (["--arch", "mid:conv3d:1"], "operator 'conv3d' is not allowed at slot mid"),
    (["--arch", "mid:conv1d:1", "--evaluator", "nope"], "unknown evaluator 'nope'; allowed: "),
    (["--arch", "mid:conv1d:1", "--steps", "-1"], "--steps -1"),
])
def test_evaluate_bad_arguments(small_config, tmp_path, capsys, args, message):
    assert main(["evaluate", str(small_config), "--workdir", str(tmp_path)] + args) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_evaluate_bad_data_directories(small_config, tmp_path, capsys):
    cases = {"missing": "does not exist", "empty": "is empty"}
    (tmp_path / "empty").mkdir()
    for name, message in cases.items():
        cfg = _with(small_config, tmp_path, data={"dir": str(tmp_path / name)})
        assert main(["evaluate", cfg, "--arch", "empty", "--workdir", str(tmp_path / "w")]) == 2
        err = capsys.readouterr().err
        assert message in err and str(tmp_path / name) in err
    # a dataset of another shape than the experiment's space
    assert main(["data", "synth", "--out", str(tmp_path / "small"), "--videos", "10", "--val-videos", "2"]) == 0
    capsys.readouterr()
    cfg = _with(small_config, tmp_path, data={"dir": str(tmp_path / "small")},
                space={"video": {"frames": 4, "height": 16, "width": 16}})
    assert main(["evaluate", cfg, "--arch", "empty", "--workdir", str(tmp_path / "w")]) == 2
    assert "do not match the space's video" in capsys.readouterr().err


def test_corrupt_shard_and_bad_config_exit_2_from_the_command_line(small_config, tmp_path):
    hwnas = [sys.executable, "-m", "nas.cli"]
    assert subprocess.run(hwnas + ["data", "synth", "--out", str(tmp_path / "d"), "--videos", "10",
                                   "--val-videos", "2"], capture_output=True).returncode == 0
    (tmp_path / "d" / "val-00000.pt").write_bytes(b"\x00garbage")
    out = subprocess.run(hwnas + ["data", "show", str(tmp_path / "d")], capture_output=True, text=True)
    assert out.returncode == 2 and "val-00000.pt: corrupt shard" in out.stderr and "Traceback" not in out.stderr
    cfg = _with(small_config, tmp_path, evaluator={"name": "vbench", "options": {"dimensions": ["colour"]}})
    out = subprocess.run(hwnas + ["evaluate", cfg, "--arch", "empty"], capture_output=True, text=True)
    assert out.returncode == 2 and "evaluator.options: dimensions: unknown dimension 'colour'" in out.stderr


def test_missing_vbench_weights_exit_2(small_config, tmp_path, capsys):
    cfg = _with(small_config, tmp_path, evaluator={"name": "vbench", "options": {
        "dimensions": ["temporal_flickering", "color"], "cache_dir": str(tmp_path / "weights")}})
    assert main(["evaluate", cfg, "--arch", "empty", "--workdir", str(tmp_path / "w")]) == 2
    err = capsys.readouterr().err
    assert "vbench dimension color needs" in err and "grit_b_densecap_objectdet.pth" in err


def test_standard_only_vbench_dimension_in_custom_input_mode_exit_2(small_config, tmp_path, capsys):
    cfg = _with(small_config, tmp_path, evaluator={"name": "vbench", "options": {
        "dimensions": ["temporal_flickering", "color"], "mode": "custom_input"}})
    assert main(["evaluate", cfg, "--arch", "empty", "--workdir", str(tmp_path / "w")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "error: evaluator.options: mode: custom_input cannot score color: they need VBench's standard prompts" in err
    assert err.endswith("use mode standard or auto")
