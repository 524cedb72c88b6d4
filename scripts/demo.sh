#!/bin/sh
# `make demo`: the main job on the default data (Fashion-MNIST from Debian's
# dataset-fashion-mnist). Until the paper's experiment scripts land, this
# trains the small BN CNN for one epoch and shows where its results are.
set -eu
cd "$(dirname "$0")/.."
out=results/demo
if [ -f experiments/divergence.lua ]; then
    ./bnlab experiments/divergence.lua --scale quick --out "$out"
else
    ./bnlab examples/train_fashion.lua --model cnn --epochs 1 --out "$out"
fi
echo
echo "demo: results are in $out/"
ls -1 "$out"
