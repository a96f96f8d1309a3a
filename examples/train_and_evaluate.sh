#!/usr/bin/env bash
# Mask a labelled folder, then run the clean-vs-masked experiment and open the report.
# Usage: examples/train_and_evaluate.sh [SRC] [OUT] [MODEL] [EPOCHS]
#   defaults: the shipped examples (tiny: a smoke run), out/train_and_evaluate, deep-emotion, 3
# With real data, e.g.: examples/train_and_evaluate.sh ../shared/data/ckplus48-dev out/ck compact-cnn 30
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
src="${1:-$here/faces}"
out="${2:-out/train_and_evaluate}"
model="${3:-deep-emotion}"
epochs="${4:-3}"
maskgen convert "$src" "$out/masked" --types random --overwrite --quiet
maskgen experiment --clean "$src" --masked "$out/masked" --model "$model" --epochs "$epochs" \
  --split random --out "$out/experiment" --quiet
echo "report: $out/experiment/report.html"
