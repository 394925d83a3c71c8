#!/usr/bin/env bash
# tests/stress.sh - the long runs behind `make stress`.
# The park/ready stress suite 20 times in a row: one failure fails it all.
set -u
cd "$(dirname "$0")/.."
runs=${STRESS_RUNS:-20}
fail=0
for i in $(seq 1 "$runs"); do
    out=$(build/tests/test_stress --jobs 1 2>&1)
    line=$(printf '%s\n' "$out" | grep 'Synthesis' | tail -1)
    echo "stress run $i/$runs: $line"
    if ! printf '%s' "$line" | grep -q 'Failing: 0 | Crashing: 0'; then
        printf '%s\n' "$out" | tail -20
        fail=$((fail + 1))
    fi
done
echo "stress: $((runs - fail)) passed, $fail failed"
[ "$fail" -eq 0 ]
