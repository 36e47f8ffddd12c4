#!/usr/bin/env bash
# Step 3 of the recipe: every figure of the model card for a trained model (default: the bundled affine model).
# Usage: bash training/dlib_affine/evaluate.sh [MODEL.pt] [OUT_DIR]    (52 min on 2 shared CPU cores beside a training job)
set -euo pipefail
cd "$(dirname "$0")/../.."
M=${1:-models/xfr-dlib-affine-joint.pt}
OUT=${2:-training/dlib_affine/eval}
L=${LFW:-../shared/data/lfw}
export OMP_WAIT_POLICY=PASSIVE OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
X=.venv/bin/xfr
mkdir -p "$OUT"
echo "== $(date -u +%T) LFW 10-fold verification (6,000 pairs)"
$X evaluate verify --pairs $L/pairs.txt --root $L/lfw-deepfunneled --model "$M" --out "$OUT/lfw" -q
echo "== $(date -u +%T) likelihood-ratio calibration from the same scores (written next to the model)"
$X calibrate --pairs $L/pairs.txt --root $L/lfw-deepfunneled --model "$M" --scores "$OUT/lfw/scores.npz" \
    --tippett "$OUT/tippett.png" -q
echo "== $(date -u +%T) explanation quality, LFW fold 1, 100 pairs"
$X evaluate explanations --pairs $L/pairs.txt --root $L/lfw-deepfunneled --folds 1 --limit 100 --model "$M" \
    --out "$OUT/explanations_fold1_100" --no-progress
echo "== $(date -u +%T) reconstruction PSNR on 500 LFW chips"
.venv/bin/python training/dlib_joint/figures.py --lfw $L/lfw-deepfunneled --model "$M" --n 500 \
    --grid "$OUT/reconstructions.png" > "$OUT/reconstructions.json"
echo "== $(date -u +%T) hiding game, LFW fold 1"
$X evaluate hiding-game --pairs $L/pairs.txt --root $L/lfw-deepfunneled --folds 1 --model "$M" \
    --methods ours,ours-neg,gradient,gradcampp,stylianou,centre,random --out "$OUT/hiding_fold1" --no-progress
echo "== $(date -u +%T) deletion, LFW fold 1 (same maps)"
$X evaluate hiding-game --pairs $L/pairs.txt --root $L/lfw-deepfunneled --folds 1 --model "$M" \
    --methods ours,ours-neg,gradient,gradcampp,stylianou,centre,random --out "$OUT/hiding_fold1" --order most \
    --no-progress
echo "== $(date -u +%T) done"
