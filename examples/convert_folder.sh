#!/usr/bin/env bash
# Convert a labelled folder into a masked dataset, make a leak-free split, and look at it.
# Usage: examples/convert_folder.sh [SRC] [OUT]   (defaults: the shipped examples, out/convert_folder)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
src="${1:-$here/faces}"
out="${2:-out/convert_folder}"
maskgen convert "$src" "$out/masked" --types random --color random --occlusion --overwrite --quiet
maskgen split "$out/masked" --by subject --ratios 0.5,0.5
maskgen stats "$out/masked" --chart "$out/stats.png"
maskgen preview "$src" -o "$out/preview.png" --strategy all -n 6
echo "masked dataset: $out/masked   chart: $out/stats.png   contact sheet: $out/preview.png"
