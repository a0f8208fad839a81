#!/usr/bin/env bash
# Lookup tables on a CUDA machine (see lut_cuda.py). Installs what the machine lacks from
# wheels carried in .wheels/ (no network needed), then runs the benchmark; results go to
# $OUT if set, else experiments/benchmarks/results/.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-python3}
if [ -d .wheels ]; then
  for mod in pandas pyarrow diffusers rich yaml; do
    $PY -c "import $mod" 2>/dev/null || NEED=1
  done
  if [ -n "${NEED:-}" ]; then $PY -m pip install -q --no-deps --no-index --find-links .wheels pandas pyarrow diffusers rich pyyaml markdown-it-py mdurl pygments python-dateutil six tzdata; fi
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
$PY -c "import torch, pandas, pyarrow, diffusers; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name() if torch.cuda.is_available() else '', 'pandas', pandas.__version__, 'pyarrow', pyarrow.__version__, 'diffusers', diffusers.__version__)"
$PY experiments/benchmarks/lut_cuda.py "$@"
