#!/usr/bin/env bash
# tests/run.sh - run every Criterion suite given, then one summary line.
# Each suite runs its tests in separate processes (Criterion's default);
# --jobs 2 keeps the two-core machines from thrashing. Each suite also runs
# under timeout(1) (GORO_SUITE_TIMEOUT seconds, 900 by default): Criterion's
# own per-test .timeout once failed to fire for a test spinning on a freed
# lock (2026-12-03; 20 minutes until killed by hand), and a hang must end
# as a failed suite, not as a CI run that never finishes. A failing
# suite's whole output follows its summary, assertion messages included.
set -u
jobs=${GORO_TEST_JOBS:-2}
limit=${GORO_SUITE_TIMEOUT:-900}
pass=0 fail=0 bad=()
for t in "$@"; do
    name=$(basename "$t")
    echo "== $name"
    out=$(timeout -k 10 "$limit" "$t" --jobs "$jobs" 2>&1)
    rc=$?
    [ "$rc" = 124 ] && echo "   $name: killed after ${limit}s (GORO_SUITE_TIMEOUT)"
    printf '%s\n' "$out" | grep -vE '^\[----\]|^$' | grep -E 'FAIL|Crash|Timeout|Synthesis|Warning|NOTE|Assertion' | head -40
    line=$(printf '%s\n' "$out" | grep -E 'Synthesis: Tested:' | tail -1)
    p=$(sed -nE 's/.*Passing: ([0-9]+).*/\1/p' <<<"$line")
    f=$(sed -nE 's/.*Failing: ([0-9]+).*/\1/p' <<<"$line")
    c=$(sed -nE 's/.*Crashing: ([0-9]+).*/\1/p' <<<"$line")
    p=${p:-0}; f=${f:-0}; c=${c:-0}
    if [ -z "$line" ]; then f=$((f + 1)); echo "   $name: no Criterion summary (exit $rc)"; fi
    pass=$((pass + p)); fail=$((fail + f + c))
    if [ "$rc" -ne 0 ] || [ $((f + c)) -ne 0 ] || [ -z "$line" ]; then
        bad+=("$name")
        # the failing suite's own words: Criterion puts an assertion's
        # message on its [----] lines, which the summary above leaves out
        echo "   --- $name, its output (the first 200 lines):"
        printf '%s\n' "$out" | grep -v '^$' | head -200 | sed 's/^/   /'
    fi
done
echo
[ ${#bad[@]} -ne 0 ] && echo "failing suites: ${bad[*]}"
echo "tests: $pass passed, $fail failed"
[ ${#bad[@]} -eq 0 ]
