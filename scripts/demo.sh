#!/bin/sh
# `make demo`: the main job on the default data (Fashion-MNIST from Debian's
# dataset-fashion-mnist): experiment E2 (divergence.lua) at quick scale —
# the relative loss of one gradient step against the step size, with and
# without BN — ending with where its figures and numbers are.
set -eu
cd "$(dirname "$0")/.."
out=results/demo
./bnlab run experiments/divergence.lua --scale quick --out "$out"
echo
echo "demo: results are in $out/"
ls -1 "$out"
