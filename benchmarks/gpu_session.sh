#!/usr/bin/env bash
# One GPU session's checks, prepared to run as they are on a machine with a CUDA GPU:
#   bash benchmarks/gpu_session.sh            # from the repository root; results under $OUT (default ./out/gpu)
# 1. benchmarks/gpu_check_explain.py: Algorithm 1 on the current engine (per image, per pair and its stages, both
#    faces as one batch vs face by face, host synchronisations, error vs a float64 reference, the bundled model);
# 2. benchmarks/ddp_smoke.py: `xfr train` in 2 processes on the GPU(s) vs 1 (NCCL with 2+ GPUs, gloo on one);
# 3. tests/training/test_distributed_training.py on this machine's CPUs (the exact 2-process check).
# Each step has a time limit, so a hung process group ends the script instead of the session.
set -uo pipefail
cd "$(dirname "$0")/.."
export OUT="${OUT:-$PWD/out/gpu}" PYTHONPATH="$PWD" OMP_WAIT_POLICY=PASSIVE XFR_DIST_TIMEOUT_S=120
mkdir -p "$OUT"
PY="${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/gpu.csv" 2>&1
"$PY" -c "import torch; print(torch.__version__, torch.cuda.is_available(), torch.cuda.device_count())" | tee "$OUT/torch.txt"
status=0
timeout 300 "$PY" benchmarks/gpu_check_explain.py > "$OUT/gpu_check_explain.log" 2>&1 || { status=1; echo "gpu_check_explain failed"; }
tail -n 60 "$OUT/gpu_check_explain.log"
timeout 240 "$PY" benchmarks/ddp_smoke.py --device cuda > "$OUT/ddp_smoke.log" 2>&1 || { status=1; echo "ddp_smoke failed"; }
tail -n 25 "$OUT/ddp_smoke.log"
OMP_NUM_THREADS=2 timeout 300 "$PY" -m pytest -q -p no:cacheprovider tests/training/test_distributed_training.py \
  > "$OUT/ddp_cpu_tests.log" 2>&1 || { status=1; echo "CPU DDP tests failed"; }
tail -n 3 "$OUT/ddp_cpu_tests.log"
exit $status
