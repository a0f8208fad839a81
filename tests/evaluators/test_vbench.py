"""The VBench adapter, against the real VBench package (extra ``vbench``; CI installs it):
temporal flickering of videos hwnas samples and writes as mp4, beside the project's own
flicker; missing weights, missing requirements and custom prompts refused in one line."""
import builtins
import json
import subprocess
import sys

import pytest
import torch

from core.config import parse
from core.errors import ConfigError
from evaluators.config import EvaluatorConfig
from evaluators.sample import write_video
from evaluators.scores import vbench as vb
from evaluators.scores.prompt_suite import flicker_score


def test_standard_mode_video_names():
    assert vb.video_name("a cat running", 0) == "a cat running-0.mp4"
    assert vb.video_name("a red car/bus", 4) == "a red car bus-4.mp4"


def test_normalisation_uses_the_published_bounds():
    assert vb.normalise("temporal_flickering", 0.6293) == 0.0
    assert vb.normalise("temporal_flickering", 1.0) == 1.0
    assert vb.normalise("overall_consistency", 0.182) == pytest.approx(0.5)
    assert vb.normalise("motion_smoothness", (0.706 + 0.9975) / 2) == pytest.approx(0.5)


def test_aggregate_quality_semantic_and_total():
    out = vb.aggregate({"temporal_flickering": 0.8, "dynamic_degree": 0.2, "color": 0.6, "object_class": 0.4})
    assert out["quality_score"] == pytest.approx((0.8 + 0.5 * 0.2) / 1.5)
    assert out["semantic_score"] == pytest.approx(0.5)
    assert out["total_score"] == pytest.approx((4 * out["quality_score"] + 0.5) / 5)
    # the paper's search quality: the mean of overall consistency, object class and colour
    paper = vb.aggregate({"overall_consistency": 0.3, "object_class": 0.6, "color": 0.9})
    assert paper["total_score"] == pytest.approx(0.6)


def test_missing_weights_name_the_file_and_the_dimension(tmp_path):
    vb.check_weights(["temporal_flickering"], tmp_path)  # needs none
    with pytest.raises(vb.VBenchError, match=r"dimension object_class needs .*grit_model/grit_b_densecap_objectdet\.pth"):
        vb.check_weights(["temporal_flickering", "object_class"], tmp_path)
    (tmp_path / "grit_model").mkdir()
    (tmp_path / "grit_model" / "grit_b_densecap_objectdet.pth").write_bytes(b"x")
    vb.check_weights(["object_class", "color"], tmp_path)
    with pytest.raises(vb.VBenchError, match=r"overall_consistency needs .*ViClip-InternVid-10M-FLT\.pth"):
        vb.check_weights(["color", "overall_consistency"], tmp_path)


def test_missing_package_is_one_clear_line(monkeypatch):
    real_import = builtins.__import__

    def no_vbench(name, *args, **kwargs):
        if name == "vbench" or name.startswith("vbench."):
            raise ImportError("No module named 'vbench'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_vbench)
    with pytest.raises(vb.VBenchError, match=r"pip install -c constraints.txt 'hwnas\[vbench\]' && pip install --no-deps"):
        vb.import_vbench()


def test_standard_prompts_come_from_vbench_full_info(tmp_path):
    info = tmp_path / "full_info.json"
    info.write_text(json.dumps([{"prompt_en": "a dog", "dimension": ["object_class"]},
                                {"prompt_en": "a red bike", "dimension": ["color", "object_class"]},
                                {"prompt_en": "a calm lake", "dimension": ["temporal_flickering"]}]))
    assert vb.standard_prompts(info, "object_class", None) == ["a dog", "a red bike"]
    assert vb.standard_prompts(info, "color", 5) == ["a red bike"]
    assert vb.standard_prompts(info, "object_class", 1) == ["a dog"]


def test_config_rejects_unknown_dimensions_and_evaluators():
    with pytest.raises(ConfigError, match="unknown dimension 'sharpness'; allowed: subject_consistency"):
        parse(EvaluatorConfig, {"name": "vbench", "options": {"dimensions": ["sharpness"]}}, "evaluator")
    with pytest.raises(ConfigError, match="unknown evaluator 'clip_score'; allowed: .*flow_loss"):
        parse(EvaluatorConfig, {"name": "clip_score"}, "evaluator")


def test_custom_input_mode_refuses_standard_only_dimensions():
    options = {"dimensions": ["temporal_flickering", "object_class", "color"], "mode": "custom_input"}
    with pytest.raises(ConfigError, match=r"^evaluator.options: mode: custom_input cannot score object_class, color: "
                                          r"they need VBench's standard prompts .*; use mode standard or auto$"):
        parse(EvaluatorConfig, {"name": "vbench", "options": options}, "evaluator")
    with pytest.raises(ConfigError, match="evaluator.options.mode: 'custom' is not allowed"):
        parse(EvaluatorConfig, {"name": "vbench", "options": {"mode": "custom"}}, "evaluator")
    # in code too: switching to custom_input with a standard-only dimension is refused alike
    section = EvaluatorConfig(name="vbench", options={"dimensions": ("temporal_flickering", "color")})
    assert section.options.mode == "auto"
    with pytest.raises(ConfigError, match=r"^evaluator.options: mode: custom_input cannot score color"):
        section.with_options(mode="custom_input")
    assert section.with_options(mode="standard").options.mode == "standard"
    assert vb.uses_standard_prompts("color", "auto") and not vb.uses_standard_prompts("temporal_flickering", "auto")
    assert vb.uses_standard_prompts("temporal_flickering", "standard")


def test_standard_only_dimensions_are_the_ones_the_real_vbench_refuses(tmp_path):
    bench = vb.import_vbench()("cpu", str(vb.full_info_path()), str(tmp_path))
    refused = set()
    for dim in vb.BOUNDS:
        try:
            bench.check_dimension_requires_extra_info([dim])
        except AssertionError:
            refused.add(dim)
    assert refused == vb.STANDARD_ONLY
    assert set(vb.WEIGHT_FILES) == set(vb.BOUNDS) == set(bench.build_full_dimension_list())


def test_vbench_and_torchvision_import_beside_the_cpu_torch():
    """PyPI's torchvision is a CUDA build; importing hwnas first makes it importable, and
    transformers (which imports torchvision when it is installed) still works."""
    code = ("import core, torch, torchvision, vbench, clip\n"
            "from transformers import CLIPTextModel\n"
            "from core import torchvision_cpu\n"
            "print(torch.__version__, torchvision.__version__, torchvision.extension._has_ops(),"
            " torchvision_cpu._library is not None)")
    out = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    torch_version, _, has_ops, declared = out.stdout.split()[-4:]
    assert torch_version == torch.__version__
    assert declared == str(has_ops == "False")  # schemas declared exactly where the extension cannot load


def _vbench_flicker(videos, root, out):
    value, per_video = vb.run_vbench(videos, "temporal_flickering", False, root, out)
    return value, per_video


def test_temporal_flickering_of_hwnas_sampled_videos(make_runner, tmp_path):
    """The real package's temporal_flickering on videos hwnas samples and writes as mp4:
    in range, close to the project's own flicker of the same frames, and ordered like it
    (the sampled clips, the same clips frozen, and made to flicker)."""
    cache = tmp_path / "vbench-cache"  # empty: temporal_flickering needs no weights
    config = EvaluatorConfig().switch("vbench", prompts=8, sample_steps=2, dimensions=("temporal_flickering",),
                                      mode="custom_input", cache_dir=str(cache))
    runner = make_runner(evaluator=config)
    result = runner.run("mid:conv1d:1", steps=2)
    assert result.status == "ok", result.reason
    ours, theirs = result.breakdown["temporal_flickering_hwnas"], result.breakdown["temporal_flickering_raw"]
    assert 0.0 < theirs <= 1.0 and abs(theirs - ours) < 0.02, (theirs, ours)
    assert result.quality == pytest.approx(vb.normalise("temporal_flickering", theirs))

    model = runner.build(runner.space.parse("mid:conv1d:1"), None, 0)
    variants = {"sampled": tmp_path / "sampled"}
    variants["sampled"].mkdir()
    frames = runner.evaluator.write_videos(model, runner.evaluator.captions[:4], variants["sampled"])
    made = {"static": frames[:, :1].expand_as(frames).clone(), "flickering": frames.clone()}
    made["flickering"][:, 1::2] = 1.0 - made["flickering"][:, 1::2]
    for name, clips in made.items():
        variants[name] = tmp_path / name
        variants[name].mkdir()
        for i, clip in enumerate(clips):
            write_video(clip, variants[name] / vb.video_name(f"clip {i}", 0), fps=8, scale=1)
    hwnas = {"sampled": frames, **made}
    scores = {}
    for name, folder in variants.items():
        value, per_video = _vbench_flicker(folder, cache, tmp_path / "results")
        assert len(per_video) == 4 and 0.0 <= value <= 1.0
        scores[name] = (value, flicker_score(hwnas[name]).mean().item())
        assert abs(scores[name][0] - scores[name][1]) < 0.02, (name, scores[name])
    for k in (0, 1):  # VBench's and the project's number order the three alike
        assert scores["static"][k] > scores["sampled"][k] > scores["flickering"][k], scores
    assert scores["static"][0] > 0.99
    assert not (cache / "ViCLIP").exists()  # nothing was fetched


def test_missing_weights_are_refused_before_vbench_downloads(tmp_path):
    """With the real package installed, a missing weight file is one line naming it and the
    dimension, raised before VBench (whose modules fetch files at import) runs."""
    videos = tmp_path / "videos"
    videos.mkdir()
    write_video(torch.rand(4, 3, 16, 16), videos / "a clip-0.mp4", scale=1)
    cache = tmp_path / "cache"
    for dim, missing in [("overall_consistency", "ViCLIP/ViClip-InternVid-10M-FLT.pth"),
                         ("subject_consistency", "dino_model/facebookresearch_dino_main/hubconf.py"),
                         ("dynamic_degree", "raft_model/models/raft-things.pth")]:
        with pytest.raises(vb.VBenchError) as err:
            vb.run_vbench(videos, dim, False, cache, tmp_path / "out")
        assert str(err.value).startswith(f"vbench dimension {dim} needs {cache / missing}, which is missing")
        assert "\n" not in str(err.value)
    assert not cache.exists() or not any(cache.rglob("*"))


def test_dimension_without_its_requirements_is_one_line(tmp_path):
    """GRiT's dimensions need detectron2, which is not on PyPI: weights alone are not enough."""
    weights = tmp_path / "cache" / "grit_model" / "grit_b_densecap_objectdet.pth"
    weights.parent.mkdir(parents=True)
    weights.write_bytes(b"stand-in")
    with pytest.raises(vb.VBenchError, match=r"^vbench dimension object_class cannot be imported here: "
                                             r"ModuleNotFoundError: No module named 'detectron2'$"):
        vb.import_vbench(["object_class"], tmp_path / "cache")


def test_custom_input_is_used_only_where_vbench_allows_it():
    assert {"object_class", "color"} <= vb.STANDARD_ONLY
    assert "temporal_flickering" not in vb.STANDARD_ONLY and "overall_consistency" not in vb.STANDARD_ONLY
    assert set(vb.WEIGHT_FILES) == set(vb.BOUNDS)
