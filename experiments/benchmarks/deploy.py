"""From a chosen architecture to the device, measured: the long training (steps/s), a sample
to look at, the Core ML and ONNX exports (sizes per part, ONNX Runtime vs torch error,
export time) and the exported network's latency in ONNX Runtime against torch (one thread).

    .venv/bin/python experiments/benchmarks/deploy.py [--steps 300] [--arch ARCH] [--work DIR]

Uses experiments/tiny.yaml as it is (its data and its 250-step pre-trained backbone, cached
in --work). Writes results/deploy_cpu.json and, to look at, results/deploy_sample.png/.gif.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from _machine import RESULTS, machine, write  # noqa: E402

from evaluators.longtrain import LongTrainConfig, train_model  # noqa: E402
from evaluators.model_dir import load_model  # noqa: E402
from evaluators.sample import sample_to_file  # noqa: E402
from nas.config import Experiment  # noqa: E402
from nas.export import export_model  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
PROMPT = "a red circle moving right fast"


def time_torch(model, sample, t, text, repeats=30):
    with torch.no_grad():
        for _ in range(5):
            model(sample, t, text)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            model(sample, t, text)
            times.append((time.perf_counter() - t0) * 1e3)
    return times


def time_ort(path, feed, repeats=30):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = 1, 1
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    feed = {i.name: v for i, v in zip(sess.get_inputs(), feed)}
    for _ in range(5):
        sess.run(None, feed)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        sess.run(None, feed)
        times.append((time.perf_counter() - t0) * 1e3)
    return times


def stats(times):
    s = sorted(times)
    return {"median_ms": statistics.median(s), "p10_ms": s[len(s) // 10], "p90_ms": s[(9 * len(s)) // 10]}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--arch", default="down0:conv1d:2,mid:self_attn1d:1,up1:conv1d:2")
    p.add_argument("--work", default=str(ROOT / ".cache" / "hwnas" / "deploy-bench"))
    args = p.parse_args()
    torch.set_num_threads(1)
    work = Path(args.work)
    exp = Experiment.load(ROOT / "experiments" / "tiny.yaml").to_dict()
    result = {"machine": machine(), "arch": args.arch, "config": "experiments/tiny.yaml"}

    model_dir = work / "model"
    t0 = time.perf_counter()
    rec = train_model(exp, args.arch, model_dir, LongTrainConfig(steps=args.steps, batch=4, lr=1e-3,
                                                                  checkpoint_every=100), seed=0,
                      workdir=work / "cache", threads=1)
    result["train"] = {"steps": rec["steps"], "seconds_incl_pretrain": time.perf_counter() - t0,
                       "train_seconds": rec["seconds"], "steps_per_s": rec["steps"] / rec["seconds"],
                       "loss_log": rec["log"], "resumed_from": rec["resumed_from"]}
    trained = load_model(model_dir)
    for ext in ("png", "gif"):
        sample_to_file(trained, PROMPT, RESULTS / f"deploy_sample.{ext}", steps=16, seed=0)
    result["sample"] = {"prompt": PROMPT, "steps": 16, "seed": 0, "files": ["deploy_sample.png", "deploy_sample.gif"]}

    exports = {}
    for fmt in ("onnx", "coreml"):
        for parts in (1, 2):
            t0 = time.perf_counter()
            rep = export_model(model_dir, fmt, work / f"{fmt}-{parts}", parts=parts, steps=4)
            exports[f"{fmt}_parts{parts}"] = {
                "seconds": time.perf_counter() - t0, "total_bytes": rep["total_bytes"],
                "parts": [{k: p.get(k) for k in ("name", "stages", "bytes", "weights_bytes", "exporter")}
                          for p in rep["parts"]],
                "onnxruntime_max_abs_error": rep.get("onnxruntime_max_abs_error"),
                "staged_vs_model_max_abs": rep["staged_vs_model_max_abs"],
                "op_check": {k: rep["op_check"][k] for k in ("ok", "signature_ops", "missing", "unsupported",
                                                             "opset_checked")} if "op_check" in rep else None,
                "macos_check": [p.get("macos_check") for p in rep["parts"]] if fmt == "coreml" else None}
    result["exports"] = exports

    # latency of one denoising step: torch (the model) vs ONNX Runtime (the exported whole network)
    import numpy as np

    g = torch.Generator().manual_seed(0)
    sample = torch.randn((1, *trained.latent_shape()), generator=g)
    text = trained.encoder([PROMPT])
    embs = np.load(work / "onnx-1" / "timestep_embeddings.npy")
    pairs = {"torch": [], "onnxruntime": []}
    for _ in range(3):  # interleaved: drift on a shared machine cancels
        pairs["torch"] += time_torch(trained.model, sample, torch.full((1,), 1000.0), text)
        pairs["onnxruntime"] += time_ort(work / "onnx-1" / "unet.onnx", [sample.numpy(), embs[:1], text.numpy()])
    result["latency_one_step_1thread"] = {k: stats(v) for k, v in pairs.items()}
    print(write("deploy_cpu", result))


if __name__ == "__main__":
    main()
