#!/usr/bin/env bash
# The cheap gate before evaluate.sh (about 10 minutes on one core): a training run's checkpoint exported, then LFW
# verification (6,000 pairs), the region-swap diagnosis (120 swaps of 40 pairs of fold 2) and the hiding game on 60
# fold-1 pairs with ours, Gradient and the two floors, and deletion (the same game, most salient pixels first) on
# the same pairs (paired intervals in the JSON).
# Usage: bash training/dlib_affine/gate.sh RUN_DIR OUT_DIR [verify] [swap] [hiding] [deletion]   (default: all four)
# OUT_DIR/candidate.pt, once exported, is reused: one OUT_DIR per checkpoint.
set -euo pipefail
cd "$(dirname "$0")/../.."
USAGE="usage: bash training/dlib_affine/gate.sh RUN_DIR OUT_DIR [verify] [swap] [hiding] [deletion]"
RUN=${1:?$USAGE} OUT=${2:?$USAGE}; shift 2
STEPS=${*:-verify swap hiding deletion}
L=${LFW:-../shared/data/lfw}
export OMP_WAIT_POLICY=PASSIVE OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
for step in $STEPS; do
  case $step in
    verify|swap|hiding|deletion) ;;
    *) echo "unknown step $step (verify, swap, hiding, deletion)" >&2; exit 2 ;;
  esac
done
M="$OUT/candidate.pt"
[ -f "$M" ] || [ -f "$RUN/checkpoint.pt" ] || { echo "no checkpoint.pt in $RUN (and no $M)" >&2; exit 2; }
mkdir -p "$OUT"
[ -f "$M" ] || .venv/bin/python training/dlib_affine/train_images.py --run-dir "$RUN" --export "$M"
for step in $STEPS; do
  echo "== $(date -u +%T) $step"
  case $step in
    verify) .venv/bin/xfr evaluate verify --pairs $L/pairs.txt --root $L/lfw-deepfunneled --model "$M" \
              --out "$OUT/lfw" -q ;;
    swap) .venv/bin/python training/dlib_affine/diagnose_swap.py --model "$M" --pairs 40 --out "$OUT/swap" ;;
    hiding|deletion) .venv/bin/xfr evaluate hiding-game --pairs $L/pairs.txt --root $L/lfw-deepfunneled --folds 1 \
              --limit 60 --methods ours,gradient,centre,random --model "$M" --out "$OUT/hiding60" --no-progress \
              $([ $step = deletion ] && echo --order most) ;;
  esac
done
