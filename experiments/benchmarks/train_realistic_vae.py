"""Rebuild the realistic set's small VAE (evaluators/assets/realistic_vae) from scratch.

    PYTHONPATH=. python experiments/benchmarks/train_realistic_vae.py [--out DIR]

Deterministic (seeded, one thread; ``evaluators.realistic.VAE_CONFIG`` / ``VAE_TRAIN``):
600 steps of 16 random 32×32 crops of the bundled photos, L1 + L2 reconstruction + 1e-6 KL;
the scaling factor is set so latents have unit standard deviation. Minutes on one core.
Bit-identical weights need the same torch build and CPU kernels; any rebuild serves.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from evaluators.realistic import train_small_vae  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=str(Path(__file__).resolve().parents[2] / "evaluators" / "assets" / "realistic_vae"))
    args = ap.parse_args()
    t0 = time.perf_counter()

    def progress(step, total, loss):
        if step == 1 or step % 50 == 0 or step == total:
            print(f"step {step}/{total} loss {loss:.4f} ({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)

    out = train_small_vae(args.out, progress=progress)
    print(f"wrote {out} in {time.perf_counter() - t0:.0f} s: {(Path(out) / 'training.json').read_text()}")


if __name__ == "__main__":
    main()
