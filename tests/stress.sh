#!/usr/bin/env bash
# tests/stress.sh - the long runs behind `make stress`:
#  1. the park/ready stress suite 20 times in a row (one failure fails all),
#     and 5 more with GORO_DEBUG=nomembarrier;
#  2. one million goroutines parked at once, stacks guarded;
#  3. tools/stackgrow: 10,000 goroutines on 2 workers growing to 1 MiB for
#     60 s, and 3,000 for 20 s under each of the uffd and mprotect guards,
#     each of which must end with "0 corruptions";
#  4. the window suite (stacks that move while the runtime holds records on
#     them) 10 times;
#  5. two stackgrows at once for 40 s, each on 2 workers: with more worker
#     threads than CPUs, threads are preempted at any instruction, which is
#     what exposed the derived-pointer bug in the fault handler (issue 3);
#  6. the spawn suite (spawn stacks, stolen from and aged) 10 times, and 5
#     more with two copies at once (oversubscribed);
#  7. the switch suite (errno and pending actions carried by every switch,
#     goro_yield's fast path) 10 times, and 5 more two at once;
#  8. the stale suite (bytes written over stale stack pointers survive the
#     stack's moves) 10 times, each with other random values and other stack
#     addresses, and 3 more two at once.
#  8b. the compaction suite (stacks compacted while parked, restored by
#     whoever touches them) 10 times and 3 more two at once, and stackgrow
#     with every parked stack compacted at once (GORO_COMPACT_AFTER=0),
#     and with 3,000 sleepers (clusters of compacted stacks put to sleep
#     and woken: --sleepers) on 2 workers and on 1, and on 2 under a
#     seccomp filter like Docker's default profile;
#  9. the suites of Go's wider vocabulary (Once, RWMutex, Cond, semaphores,
#     ...) 10 times each, and 3 more two at once.
set -u
cd "$(dirname "$0")/.."
runs=${STRESS_RUNS:-20}
pass=0 fail=0

# count: one pass or fail, by whether file holds the pattern
count() {
    if grep -q "$2" "$1"; then
        pass=$((pass + 1))
    else
        fail=$((fail + 1))
    fi
}

# suite_runs LABEL N CMD...: run a Criterion suite N times, one line each;
# a failing run also shows the end of its output
suite_runs() {
    local label=$1 n=$2 i out line
    shift 2
    for i in $(seq 1 "$n"); do
        out=$("$@" --jobs 1 2>&1)
        line=$(printf '%s\n' "$out" | grep 'Synthesis' | tail -1)
        echo "$label run $i/$n: $line"
        if printf '%s' "$line" | grep -q 'Failing: 0 | Crashing: 0'; then
            pass=$((pass + 1))
        else
            printf '%s\n' "$out" | tail -20
            fail=$((fail + 1))
        fi
    done
}

# suite_pairs LABEL N SUITE: run two copies of a suite at once, N times
# (more worker threads than CPUs: threads preempted anywhere)
suite_pairs() {
    local label=$1 n=$2 suite=$3 i other
    echo "$label, two at once:"
    for i in $(seq 1 "$n"); do
        "$suite" --jobs 1 >"$log2" 2>&1 &
        other=$!
        "$suite" --jobs 1 >"$log" 2>&1
        wait "$other"
        grep -h Synthesis "$log" "$log2"
        # a failing copy also shows what failed (assertion and test name)
        grep -h -B6 '^\[FAIL\]' "$log" "$log2" | grep -v '^\[----\] *$' | tail -20
        count "$log" 'Failing: 0 | Crashing: 0'
        count "$log2" 'Failing: 0 | Crashing: 0'
    done
}

log=$(mktemp)
log2=$(mktemp)
trap 'rm -f "$log" "$log2"' EXIT

suite_runs "park/ready stress" "$runs" build/tests/test_stress
# the same suite with runnext claimed by CAS on both sides (as on kernels
# without membarrier)
suite_runs "park/ready stress, GORO_DEBUG=nomembarrier," 5 \
    env GORO_DEBUG=nomembarrier build/tests/test_stress

echo "one million parked goroutines:"
GORO_TEST_PARKED=1000000 build/tests/test_stack --filter 'stack/parked_200k_madvise' 2>&1 | tee "$log"
count "$log" 'Failing: 0 | Crashing: 0'

echo "stackgrow, 60 s:"
tools/stackgrow/stackgrow --goroutines 10000 --workers 2 --max-stack 1M --duration 60 2>&1 | tee "$log"
count "$log" '^ *0 corruptions'

# each other guard mechanism too (uffd: a stack across two of the region's
# chunks once failed to fill, "out of memory growing ..."; mprotect: two
# mappings a stack, so fewer goroutines)
for g in uffd mprotect; do
    echo "stackgrow under GORO_GUARD=$g, 20 s:"
    GORO_GUARD=$g tools/stackgrow/stackgrow --goroutines 3000 --workers 2 --max-stack 1M \
        --duration 20 -q 2>&1 | tee "$log"
    count "$log" '^ *0 corruptions'
done

# stacks compacted as soon as their goroutine parks, and shrunk when it
# runs again: every park a chance to lose a byte
echo "stackgrow with GORO_COMPACT_AFTER=0, 30 s:"
GORO_COMPACT_AFTER=0 tools/stackgrow/stackgrow --goroutines 3000 --workers 2 --max-stack 1M \
    --duration 30 2>&1 | tee "$log"
count "$log" '^ *0 corruptions'

# goroutines parked for seconds at home beside the divers: their clusters
# of compacted stacks put to sleep (runtime/stack_doze.c) and woken by
# writes into the parked stacks, or left by goroutines the poller wakes
for w in 2 1; do
    echo "stackgrow with 3,000 sleepers on $w worker(s), 20 s:"
    GORO_DEBUG=stackinfo tools/stackgrow/stackgrow --goroutines 300 --sleepers 3000 \
        --workers $w --max-stack 1M --duration 20 -q 2>&1 | tee "$log"
    count "$log" '^ *0 corruptions'
done

# the same under a seccomp filter like Docker's default profile
# (tests/docker_seccomp.c): lending reads through /proc/self/mem, stacks
# are carved one at a time (no process_madvise)
echo "stackgrow with 3,000 sleepers under a Docker-like seccomp filter, 20 s:"
GORO_DEBUG=stackinfo build/tests/docker_seccomp tools/stackgrow/stackgrow --goroutines 300 \
    --sleepers 3000 --workers 2 --max-stack 1M --duration 20 -q 2>&1 | tee "$log"
count "$log" '^ *0 corruptions'
count "$log" 'memory read by /proc/self/mem'

suite_runs "window suite" 10 build/tests/test_window

echo "two stackgrows at once, 40 s:"
tools/stackgrow/stackgrow --goroutines 10000 --workers 2 --max-stack 1M --duration 40 \
    --seed 1 >"$log2" 2>&1 &
other=$!
tools/stackgrow/stackgrow --goroutines 10000 --workers 2 --max-stack 1M --duration 40 \
    --seed 2 2>&1 | tee "$log"
wait "$other"
echo "(the other one:)"
tail -3 "$log2"
count "$log" '^ *0 corruptions'
count "$log2" '^ *0 corruptions'
suite_runs "spawn suite" 10 build/tests/test_spawn
suite_pairs "spawn suite" 5 build/tests/test_spawn
suite_runs "switch suite" 10 build/tests/test_switch
suite_pairs "switch suite" 5 build/tests/test_switch
suite_runs "compact suite" 10 build/tests/test_compact
suite_pairs "compact suite" 3 build/tests/test_compact
suite_runs "stale suite" 10 build/tests/test_stale
suite_pairs "stale suite" 3 build/tests/test_stale
for v in once rwmutex cond sem local timerchan ctx waits; do
    suite_runs "$v suite" 10 build/tests/test_$v
    suite_pairs "$v suite" 3 build/tests/test_$v
done
echo "stress: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
