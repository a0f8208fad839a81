"""The Core ML bundle round trip: export (real coremltools conversion), run the manifest
through the torch backend as a Mac would through Core ML, import the results."""
import json

import torch

from lookup_tables import LookupTable, LutConfig, create_profiler
from lookup_tables.bundle import import_results, load_manifest, run_manifest
from search_spaces.ops import OPS, OpCost, TemporalOp
from tests.lookup_tables.conftest import tiny_space_dict, write_experiment


class _ErfinvProbe(TemporalOp):
    """A temporal layer Core ML cannot convert (coremltools has no erfinv): one failing op."""

    def __init__(self, channels, heads=1, text_dim=1, qk_norm=True, rope=True):
        super().__init__(channels, heads, text_dim, qk_norm, rope)
        self.proj_out = torch.nn.Linear(channels, channels)
        self.zero_init_output()

    def residual(self, x, context=None):
        return self.proj_out(torch.special.erfinv(x.tanh() * 0.5).transpose(2, 4)).transpose(2, 4)

    @classmethod
    def cost(cls, shape):
        n = shape.batch * shape.tokens * shape.channels
        return OpCost(2 * n * shape.channels, shape.channels ** 2 + shape.channels, 3 * n * shape.dtype_bytes)


def test_bundle_round_trip_keeps_a_failing_operator_as_an_error_row(tmp_path, hwnas):
    OPS.register("erfinv_probe")(_ErfinvProbe)
    try:
        space_dict = tiny_space_dict(slots=["mid"], ops=["conv1d", "erfinv_probe"])
        bundle = tmp_path / "bundle"
        out = hwnas("lut", "export-bundle", write_experiment(tmp_path / "e.yaml", space_dict), "--out", bundle,
                    "--no-progress", "--json")
        # One operator that Core ML cannot take: one line, exit code 2, the rest exported.
        assert out.returncode == 2 and out.stderr.count("\n") == 1 and "erfinv_probe" in out.stderr
        manifest = json.loads(out.stdout)
        status = {e["key"].split("|")[0]: e for e in manifest["entries"]}
        assert status["backbone"]["status"] == "ok" and status["conv1d"]["status"] == "ok"
        assert status["erfinv_probe"]["status"] == "error" and "erfinv" in status["erfinv_probe"]["reason"]
        assert (bundle / status["conv1d"]["file"] / "Manifest.json").is_file()  # a real .mlpackage
        assert (bundle / "run_coreml.py").is_file() and load_manifest(bundle)["entries"] == manifest["entries"]
        profiler = create_profiler(LutConfig(warmup=1, repeats=3), "float32", {"qk_norm": True, "rope": True})
        results = run_manifest(bundle, profiler, bundle / "results_cpu.json")
        assert len(results["rows"]) == 3
        table = import_results(bundle / "results_cpu.json", tmp_path / "lut.parquet")
        again = LookupTable.load(tmp_path / "lut.parquet")
        assert again.records() == table.records() and len(again) == 3
        by_op = {r["op"]: r for r in again.records()}
        assert by_op["erfinv_probe"]["status"] == "error" and "erfinv" in by_op["erfinv_probe"]["reason"]
        assert by_op["conv1d"]["status"] == "ok" and by_op["conv1d"]["latency_ms"] > 0
        assert again.fingerprint["device"] == "cpu" and again.fingerprint["precision"] == "float16"
        # A second import of the same device merges (no duplicate rows).
        assert len(import_results(bundle / "results_cpu.json", tmp_path / "lut.parquet")) == 3
    finally:
        OPS._entries.pop("erfinv_probe", None)


def test_the_runner_script_is_valid_python_and_import_rejects_bad_files(tmp_path, hwnas):
    from lookup_tables.bundle import RUNNER

    compile(RUNNER.read_text(), str(RUNNER), "exec")
    bad = tmp_path / "results.json"
    bad.write_text(json.dumps({"format": 1, "rows": []}))
    out = hwnas("lut", "import-results", bad, "--out", tmp_path / "x.parquet")
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "'manifest' is missing" in out.stderr
