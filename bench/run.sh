#!/bin/sh
# Runs the core benchmark (build/bench/core, made by `make bench`) and records
# its Markdown tables with the machine, date, commit and BLAS into
# bench/results/core-<date>.md and bench/results/latest-core.md.
# Usage: bench/run.sh [build-dir]   (BENCH_REPS=n: repetitions per number, >= 5)
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-build}
case $build in /*) ;; *) build=$root/$build ;; esac
bin=$build/bench/core
if [ ! -x "$bin" ]; then
    echo "bench/run.sh: $bin not found; build it with 'make bench' (or make BUILD=... $build/bench/core)" >&2
    exit 1
fi

day=$(date +%Y-%m-%d)
load=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo unknown)
stamp=$(date '+%Y-%m-%d %H:%M:%S %Z')
model=$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -1)
cpus=$(nproc 2>/dev/null || echo '?')
cores=$(lscpu 2>/dev/null | awk -F: '/^Core\(s\) per socket/ {c=$2} /^Socket\(s\)/ {s=$2} END {if (c && s) print c * s}')
tpc=$(lscpu 2>/dev/null | sed -n 's/^Thread(s) per core: *//p' | head -1)
commit=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ -n "$(git -C "$root" status --porcelain -- src bench 2>/dev/null)" ]; then commit="$commit (with uncommitted changes in src/ or bench/)"; fi

out=$root/bench/results
mkdir -p "$out"
tmp=$(mktemp)
trap 'rm -f "$tmp" "$tmp.rc"' EXIT
# Rows show on the terminal as they finish; the file is written only when the
# benchmark succeeded (a pipeline's status is tee's, hence the .rc file).
{ st=0; "$bin" || st=$?; echo "$st" > "$tmp.rc"; } | tee "$tmp"
rc=$(cat "$tmp.rc")
if [ "$rc" -ne 0 ]; then
    echo "bench/run.sh: $bin failed (exit $rc); nothing written" >&2
    exit 1
fi

file=$out/core-$day.md
{
    echo "# bnlab core benchmark, $day"
    echo
    echo "- Machine: ${model:-unknown CPU}, ${cores:-?} cores (${tpc:-?} thread(s) per core), $cpus CPUs online"
    echo "- Date: $stamp"
    echo "- Commit: $commit"
    echo "- Load average at start (1, 5, 15 min): $load (other work on the machine skews the numbers)"
    echo "- Command: \`bench/run.sh $(basename "$build")\` (what \`make bench\` runs for BUILD=$(basename "$build"))"
    echo "- Threads set with bn_set_num_threads (OpenMP and OpenBLAS together)."
    echo
    cat "$tmp"
} > "$file"
cp "$file" "$out/latest-core.md"
echo "wrote $file and $out/latest-core.md"
