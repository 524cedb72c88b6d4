#!/bin/sh
# Regenerates the seed corpora of the file fuzzers (tests/fuzz/corpus/<reader>/seed-*).
# Usage: tests/fuzz/make_corpus.sh [BNLAB_BINARY]   (default ./bnlab)
# Regression inputs kept next to the seeds (names not starting "seed-") stay.
set -eu
bnlab=${1:-./bnlab}
dir=tests/fuzz/corpus
for r in idx idx_gz cifar npy safetensors checkpoint; do
    mkdir -p "$dir/$r"
    rm -f "$dir/$r"/seed-*
done
"$bnlab" tests/fuzz/make_corpus.lua "$dir"
# The raw IDX seeds also as the gzip files the data sets ship as.
for f in "$dir"/idx/seed-images_2x3x3 "$dir"/idx/seed-labels_5; do
    gzip -n -9 -c "$f" > "$f.gz"
done
echo "fuzz corpus: $(find "$dir" -type f | wc -l) files, $(du -sk "$dir" | cut -f1) KB in $dir"
