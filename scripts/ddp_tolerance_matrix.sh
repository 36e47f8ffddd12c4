#!/usr/bin/env bash
# Run the DDP equivalence tests under every thread count and CPU vector unit this machine offers, and print the
# worst update mismatch of each (the figures in docs/testing.md). Usage: bash scripts/ddp_tolerance_matrix.sh
set -uo pipefail
cd "$(dirname "$0")/.."
caps="default avx2"
grep -q avx512f /proc/cpuinfo && caps="$caps avx512"
for threads in 1 2; do
  for cap in $caps; do
    out=$(OMP_NUM_THREADS=$threads ATEN_CPU_CAPABILITY=$cap QT_QPA_PLATFORM=offscreen .venv/bin/python -m pytest \
          -q -s -p no:cacheprovider tests/training/test_distributed_training.py 2>&1)
    echo "OMP_NUM_THREADS=$threads ATEN_CPU_CAPABILITY=$cap: $(grep -o 'worst update mismatch.*' <<<"$out" | head -1);" \
         "$(tail -1 <<<"$out")"
  done
done
