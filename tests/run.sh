#!/bin/sh
# Usage: tests/run.sh BNLAB_BINARY TEST_BINARY...
# Runs the C test binaries, then the Lua tests with the given bnlab binary
# (so the sanitizer build tests its own program); prints each suite's result
# and one closing line "N passed, N failed" over everything.
bnlab=$1; shift
# OpenMP threads that spin-wait between parallel regions starve the working
# thread when anything else runs on the machine (test_conv took 86 s instead
# of 0.2 s under load): tests sleep-wait instead. See bench/NOTES.md.
OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
export OMP_WAIT_POLICY
passed=0; failed=0; status=0
for t in "$@"; do
    out=$("$t" 2>&1); rc=$?
    p=$(printf '%s\n' "$out" | sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' | tail -1)
    f=$(printf '%s\n' "$out" | sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' | tail -1)
    p=${p:-0}; f=${f:-0}
    if [ $rc -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi   # crashed before reporting
    passed=$((passed + p)); failed=$((failed + f))
    if [ $rc -ne 0 ]; then
        status=1
        printf '%s\n' "$out" | grep -v '^\[ \(RUN\|       OK\) ' | tail -40
        echo "FAIL $(basename "$t"): $p passed, $f failed (exit $rc)"
    else
        echo "ok   $(basename "$t"): $p passed"
    fi
done
if [ -x "$bnlab" ] && [ -f tests/lua/run.lua ]; then
    out=$(BNLAB="$bnlab" "$bnlab" tests/lua/run.lua 2>&1); rc=$?
    printf '%s\n' "$out" | tail -30
    p=$(printf '%s\n' "$out" | sed -n 's/^lua: \([0-9]*\) passed, \([0-9]*\) failed.*/\1/p' | tail -1)
    f=$(printf '%s\n' "$out" | sed -n 's/^lua: \([0-9]*\) passed, \([0-9]*\) failed.*/\2/p' | tail -1)
    p=${p:-0}; f=${f:-0}
    if [ $rc -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
    passed=$((passed + p)); failed=$((failed + f))
    [ $rc -ne 0 ] && status=1
fi
echo "$passed passed, $failed failed"
exit $status
