#!/usr/bin/env bash
# Runs one benchmark of this folder on a CUDA machine that reaches no registry: installs what
# the machine lacks from wheels carried in .wheels/ (here: `pip download --no-deps -d .wheels
# diffusers==0.42.1`, and .wheels/ in .git/info/exclude), prints the versions, then runs
#
#     experiments/benchmarks/gpu.sh SCRIPT.py [ARGS ...]      e.g. gpu.sh lut_cuda.py
#
# Results go where the script writes them ($OUT if the script takes it, else results/).
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-python3}
if [ -d .wheels ]; then
  for mod in pandas pyarrow diffusers rich yaml; do
    $PY -c "import $mod" 2>/dev/null || NEED=1
  done
  if [ -n "${NEED:-}" ]; then $PY -m pip install -q --no-deps --no-index --find-links .wheels pandas pyarrow diffusers rich pyyaml markdown-it-py mdurl pygments python-dateutil six tzdata; fi
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
$PY -c "import torch, pandas, pyarrow, diffusers; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name() if torch.cuda.is_available() else '', 'pandas', pandas.__version__, 'pyarrow', pyarrow.__version__, 'diffusers', diffusers.__version__)"
script=$1; shift
$PY "experiments/benchmarks/$script" "$@"
