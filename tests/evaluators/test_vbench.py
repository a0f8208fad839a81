"""The VBench adapter: what can be checked without the package and its weights."""
import builtins
import json

import pytest

from core.config import parse
from core.errors import ConfigError
from evaluators.config import EvaluatorConfig
from evaluators.scores import vbench as vb


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
    with pytest.raises(vb.VBenchError, match=r"pip install 'hwnas\[vbench\]'"):
        vb._import_vbench()


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


def test_custom_input_is_used_only_where_vbench_allows_it():
    assert {"object_class", "color"} <= vb.STANDARD_ONLY
    assert "temporal_flickering" not in vb.STANDARD_ONLY and "overall_consistency" not in vb.STANDARD_ONLY
    assert set(vb.WEIGHT_FILES) == set(vb.BOUNDS)
