"""Why a layer's cost is not additive on this CPU (issue 11's action target): each temporal
layer timed inside the network, one by one, beside the same layer timed alone in a loop (the
table's row).

Each network runs ``--rounds`` times (every timed call led in by an untimed one, as
``lookup_tables.paired``), on one thread, with the thread clock; a forward hook around every
temporal layer records its time. Two sizes: the tiny space as the search sees it (8x8
latents, layers of 4-64 pixels, a few ATen calls each) and the same space at 32x32 latents,
where the layers are 16x larger and compute dominates. Per layer: its median in the network,
its row, the ratio, and for a stack the first layer over the next.

    .venv/bin/python experiments/benchmarks/layer_context.py [--rounds 300] [--large-rounds 40]

Writes results/layer_context.json (about 5 min on 2 cores).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import machine, write  # noqa: E402

from core.config import load_yaml  # noqa: E402
from lookup_tables import LutConfig, create_profiler  # noqa: E402
from lookup_tables.build import op_options  # noqa: E402
from search_spaces.ops import TemporalOp  # noqa: E402
from search_spaces.space import SearchSpace  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
NETWORKS = ["up1:conv1d:2", "down0:conv1d:2", "down0:self_attn1d:2,mid:conv1d:2,up1:conv1d:2",
            "down0:conv1d:2,mid:self_attn1d:2,up1:cross_attn1d:2"]


def layer_times(space: SearchSpace, archs: list[str], rounds: int) -> dict:
    prof = create_profiler(LutConfig(device="cpu", options={"clock": "thread"}), space.config.dtype,
                           op_options(space))
    nets = {}
    for a in archs:
        fn = prof.network_call(space, space.parse(a))
        times: dict[str, list[float]] = {}
        start: dict[str, float] = {}
        for name, m in fn.module.model.temporal.named_modules():
            if isinstance(m, TemporalOp):
                times[name] = []
                m.register_forward_pre_hook(lambda mod, args, n=name, s=start: s.__setitem__(n, time.thread_time()))
                m.register_forward_hook(
                    lambda mod, args, out, n=name, s=start, t=times: t[n].append((time.thread_time() - s[n]) * 1e3))
        nets[a] = (fn, times)
    with torch.no_grad():
        for _ in range(3):
            for fn, _ in nets.values():
                fn()
        for fn, times in nets.values():
            for v in times.values():
                v.clear()
        for _ in range(rounds):
            for fn, times in nets.values():
                n = {k: len(v) for k, v in times.items()}
                fn()  # lead-in: its layer times are dropped
                for k, v in times.items():
                    del v[n[k]:]
                fn()
    rows = {}
    out = {}
    for a, (_, times) in nets.items():
        layers = []
        for name, v in times.items():
            stack, index = name.rsplit(".", 1)
            slot, op = stack.split("_", 1)
            if (slot, op) not in rows:
                rows[(slot, op)] = prof.measure_op(space.slot(slot).shape(op)).latency_ms
            ms = statistics.median(v)
            layers.append({"layer": f"{slot}:{op}#{int(index) + 1}", "in_network_ms": ms,
                           "alone_ms": rows[(slot, op)], "ratio": ms / rows[(slot, op)]})
        for prev, cur in zip(layers, layers[1:]):
            if prev["layer"].split("#")[0] == cur["layer"].split("#")[0]:
                cur["previous_over_this"] = prev["in_network_ms"] / cur["in_network_ms"]
        out[a] = layers
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=300)
    ap.add_argument("--large-rounds", type=int, default=40)
    args = ap.parse_args()
    torch.set_num_threads(1)
    data = load_yaml(ROOT / "experiments" / "tiny.yaml")["space"]
    result = {"machine": machine(), "command": " ".join(["layer_context.py"] + sys.argv[1:]), "sizes": {}}
    for size, rounds in ((8, args.rounds), (32, args.large_rounds)):
        space = SearchSpace.from_dict({**data, "video": {**data["video"], "height": size, "width": size}})
        nets = layer_times(space, NETWORKS, rounds)
        layers = [x for v in nets.values() for x in v]
        firsts = [x["previous_over_this"] for x in layers if "previous_over_this" in x]
        result["sizes"][f"{size}x{size}"] = {
            "rounds": rounds, "networks": nets,
            "ratio_in_network_over_alone": {"median": statistics.median(x["ratio"] for x in layers),
                                            "min": min(x["ratio"] for x in layers),
                                            "max": max(x["ratio"] for x in layers)},
            "first_of_stack_over_second": {"median": statistics.median(firsts), "min": min(firsts),
                                           "max": max(firsts)}}
    print(write("layer_context", result))
    for size, r in result["sizes"].items():
        for a, layers in r["networks"].items():
            print(f"{size} {a}")
            for x in layers:
                print(f"   {x['layer']:22s} in network {x['in_network_ms']:.3f} ms, alone {x['alone_ms']:.3f} "
                      f"(x{x['ratio']:.2f})" + (f", the layer before it x{x['previous_over_this']:.2f}"
                                               if "previous_over_this" in x else ""))
        q, f = r["ratio_in_network_over_alone"], r["first_of_stack_over_second"]
        print(f"{size}: in network / alone median x{q['median']:.2f} ({q['min']:.2f}-{q['max']:.2f}); "
              f"first of a stack / second x{f['median']:.2f} ({f['min']:.2f}-{f['max']:.2f})")


if __name__ == "__main__":
    main()
