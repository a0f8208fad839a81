#!/usr/bin/env bash
# Issue 11's GPU half in one device call: lut_paired.py on the tiny space and on snapgen_v
# (SD-1.5-sized backbone, 15x64x64 FP16 latents), sized to end inside a 10-minute call on an
# H100 (estimated from lut_cuda.py's timings there: snapgen_v's backbone 48 ms a step, its 118
# calibration networks about 4 min at 6 rounds, its validation 2 more; tiny about 2.5 min at 40). A GPU's paired
# differences are far steadier than this CPU's, so fewer rounds suffice; each run states its
# own noise. Results go to $OUT (else results/): lut_paired_tiny_cuda.json,
# lut_paired_snapgen_v_cuda.json.
#
#     bash experiments/benchmarks/lut_paired_cuda.sh            (device: carry .wheels, see gpu.sh)
set -euo pipefail
here=$(dirname "$0")
out=(); [ -n "${OUT:-}" ] && out=(--out-dir "$OUT")
timeout 200 "$here/gpu.sh" lut_paired.py --device cuda --rounds 40 --calibration-rounds 40 \
  --name lut_paired_tiny_cuda "${out[@]}" || echo "tiny: exit $?"
timeout 370 "$here/gpu.sh" lut_paired.py --device cuda --config experiments/snapgen_v.yaml --samples 10 --actions 16 \
  --rounds 10 --calibration-rounds 6 --calibration-random 4 --name lut_paired_snapgen_v_cuda "${out[@]}" \
  || echo "snapgen_v: exit $?"
