#!/usr/bin/env bash
# bench/run.sh - run every benchmark on goro and on each peer (Go, Tokio,
# Boost.Fiber), side by side, and compare. `make bench` calls it after
# installing the peers' toolchains and gnuplot (tools/deps.sh bench).
#
#   BENCH=quick        3 alternating runs of each side (the default)
#   BENCH=full         10 alternating runs of each side
#   BENCH_ONLY=a,b     only these benchmarks (ids from the list below, or a
#                      program name such as pingpong, or "switch" for the
#                      switch-cost table); results then go to bench/out/ so
#                      the committed ones stay whole
#   BENCH_SIDES=a,b    the sides to run, from goro,go,tokio,boost_fiber,redis
#                      (the default: all); goro always runs. BENCH_SIDES=goro,go
#                      skips the peers that need Rust and Boost, and
#                      redis-server in the real-clients rows
#   BENCH_RUNS=n       override the number of runs
#   GORO_PROCS=n       worker threads (default: online CPUs); every side gets
#                      the same number (Go: GOMAXPROCS; Tokio: worker_threads;
#                      Boost.Fiber: one work_stealing thread each)
#   BENCH_TIMEOUT=s    kill a run after s seconds (default 120)
#
# Each benchmark is bench/<prog>.c on goro, bench/go/<prog>/main.go in Go,
# bench/rust/src/bin/<prog>.rs on Tokio and bench/boost/<prog>.cpp on
# Boost.Fiber, given the same key=value arguments. Each prints
# "name value unit" and exits 0, or prints "FAIL: why" and exits 1 when its
# own check of the result fails. The sides run goro, Go, Tokio, Boost.Fiber,
# goro, Go, ...; the table shows medians, the ratio of goro to the best of
# the peers (goro's advantage: >1 means goro is better, whichever the unit's
# direction) and which peer that is, the bar from DESIGN.md and the min-max
# spreads. A side that does not build, crashes, hangs or checks wrong is
# FAIL in its column; a side with no twin for a row (Tokio has no stacks to
# grow) is n/a with the reason; the rest carry on.
#
# The real-clients rows (wrk and redis-benchmark against examples/http and
# examples/kv, their Go twins and redis-server) are bench/real.sh's; their
# ids (http_wrk_64, http_wrk_1000, kv_p1, kv_p16, kv_p16_2w, or "real" for
# all) work in BENCH_ONLY too. Their section goes into RESULTS.md and their
# runs into real.csv.
#
# Outputs: the table on stdout and in RESULTS.md, every run in results.csv,
# the ratios and bars in ratios.png (gnuplot), logs in bench/out/logs/.
set -u

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 1
BUILD=${BUILD:-build}
case $BUILD in /*) BABS=$BUILD ;; *) BABS=$ROOT/$BUILD ;; esac
MAKE=${MAKE:-make}
MODE=${BENCH:-quick}
ONLY=${BENCH_ONLY:-}
TMO=${BENCH_TIMEOUT:-120}
NCPU=$(nproc 2>/dev/null || getconf _NPROCESSORS_ONLN)
PROCS=${GORO_PROCS:-$NCPU}
case $MODE in
quick) RUNS=${BENCH_RUNS:-3} ;;
full) RUNS=${BENCH_RUNS:-10} ;;
*) echo "bench: BENCH must be quick or full, not '$MODE'" >&2; exit 2 ;;
esac
# The sides: goro always, then the peers BENCH_SIDES keeps, in this order.
ALL_SIDES="goro go tokio boost_fiber redis"
WANT_SIDES=${BENCH_SIDES:-goro,go,tokio,boost_fiber}
for s in ${WANT_SIDES//,/ }; do
    case " $ALL_SIDES " in *" $s "*) ;; *)
        echo "bench: BENCH_SIDES: unknown side '$s' (sides: ${ALL_SIDES// /,})" >&2; exit 2 ;;
    esac
done
SIDES=(goro)
for s in go tokio boost_fiber; do
    case ",$WANT_SIDES," in *",$s,"*) SIDES+=("$s") ;; esac
done
PEERS=("${SIDES[@]:1}")
label() {
    case $1 in
    goro) echo goro ;; go) echo Go ;; tokio) echo Tokio ;; boost_fiber) echo Boost.Fiber ;; *) echo "$1" ;;
    esac
}
has_side() { case " ${SIDES[*]} " in *" $1 "*) return 0 ;; esac; return 1; }

WORK=bench/out
OUT=bench
[ -n "$ONLY" ] && OUT=$WORK
LOGS=$WORK/logs
rm -rf "$LOGS"
mkdir -p "$LOGS" "$BUILD/bench/go" "$BUILD/bench/boost" || exit 1

# ---------------------------------------------------------------------------
# The benchmarks: id | program | workers | arguments (every side) | bar
# [| runs in quick mode [| peers with no twin: side:reason,...]]. workers: a
# number, or P for $PROCS. bar: the ratio of goro to the best peer DESIGN.md
# asks for ("-": none), or "abs:BYTES" for an absolute ceiling on goro's
# figure. parked_1m runs once per side in quick mode: it takes the longest
# by far, and its figure (bytes per goroutine) is the same to the byte from
# run to run. A peer listed last is n/a on that row, with the reason.
# ---------------------------------------------------------------------------
PAGE=$(getconf PAGESIZE)
BENCHES=(
"yield|yield|1|n=1000000|10"
"pingpong_1w|pingpong|1|n=1000000|3"
"pingpong_2w|pingpong|2|n=500000|3"
"spawn_join_1m|spawn|P|n=1000000|2"
"skynet_1m|skynet|P|size=1000000 div=10|2"
"chan_buffered_4x4|chanbuf|P|n=4000000 producers=4 consumers=4 cap=128|-"
"mutex_contended|mutex|P|n=8000000 goroutines=8|-"
"mutex_uncontended|mutex|P|n=20000000 goroutines=1|-"
"parked_100k|parked|P|n=100000|abs:1536"
"parked_1m|parked|P|n=1000000|abs:1536|1"
"stack_64m|stackgrow|P|goroutines=1 target=67108864 reps=5|1|1|tokio:stackless,boost_fiber:fixed stacks"
"stack_10k_256k|stackgrow|P|goroutines=10000 target=262144 reps=3|1|1|tokio:stackless,boost_fiber:fixed stacks"
"stack_shrink|stackshrink|P|n=10000 depth=1048576|1|1|tokio:stackless,boost_fiber:fixed stacks"
"idle_conns_mem|idleconns|P|conns=100000 what=mem|-|1|boost_fiber:no netpoller"
"idle_conns_wake|idleconns|P|conns=100000 what=wake|-|1|boost_fiber:no netpoller"
"tcp_echo_64|tcpecho|P|conns=64 rts=2000 msg=64 secs=10|1|1|boost_fiber:no netpoller"
"rwmutex_read_heavy|rwmutex|2|n=4000000 goroutines=8 write_pct=10|-"
"ticker_10k_1ms|ticker|2|tickers=10000 period_ms=1 ticks=20|-"
"timer_reset_1m|timer|P|n=1000000 resets=1000000|-"
"timer_reset_1m_bare|timer|P|n=1000000 resets=1000000 kind=bare|-"
"local_get|local|1|n=100000000|-"
)

selected=()
for b in "${BENCHES[@]}"; do
    IFS='|' read -r id prog _ <<<"$b"
    if [ -n "$ONLY" ]; then
        case ",$ONLY," in *",$id,"* | *",$prog,"*) ;; *) continue ;; esac
    fi
    selected+=("$b")
done
# the switch-cost table (bench/switch.c and the yield rows)
DO_SWITCH=0
if [ -z "$ONLY" ]; then DO_SWITCH=1; else case ",$ONLY," in *",switch,"*) DO_SWITCH=1 ;; esac; fi
# the switch table takes the user-space switches from the yield row's runs
if [ $DO_SWITCH = 1 ]; then
    case " ${selected[*]%%|*} " in *" yield "*) ;; *) selected=("${BENCHES[0]}" "${selected[@]}") ;; esac
fi
# the real-clients rows (bench/real.sh)
DO_REAL=0
if [ -z "$ONLY" ]; then DO_REAL=1; else
    for r in real http kv http_wrk_64 http_wrk_1000 kv_p1 kv_p16 kv_p16_2w; do
        case ",$ONLY," in *",$r,"*) DO_REAL=1 ;; esac
    done
fi
if [ ${#selected[@]} -eq 0 ] && [ $DO_SWITCH = 0 ] && [ $DO_REAL = 0 ]; then
    echo "bench: BENCH_ONLY=$ONLY matches nothing; benchmarks are:" >&2
    for b in "${BENCHES[@]}"; do echo "  ${b%%|*}" >&2; done
    echo "  switch" >&2
    echo "  real (http_wrk_64 http_wrk_1000 kv_p1 kv_p16 kv_p16_2w)" >&2
    exit 2
fi

# lower or higher is better, from the unit
direction() {
    case $1 in
    */s | ops/* | rt/*) echo higher ;;
    *) echo lower ;;
    esac
}

say() { printf '%s\n' "$*" >&2; }

# The reason a side has no twin for a row ("" when it has one): the row's
# own list, else a missing source file.
na_reason() { # side prog nalist
    local side=$1 prog=$2 nalist=$3 item
    local IFS=,
    for item in $nalist; do
        [ "${item%%:*}" = "$side" ] && { echo "${item#*:}"; return; }
    done
    case $side in
    tokio) [ -f "bench/rust/src/bin/$prog.rs" ] || echo "no twin" ;;
    boost_fiber) [ -f "bench/boost/$prog.cpp" ] || echo "no twin" ;;
    esac
}

# ---------------------------------------------------------------------------
# Build. The C side through the Makefile (the library's normal flags), one
# program at a time, so one that does not build is a FAIL, not a stop. The Go
# side with go build, offline, caches under $BUILD. Tokio: one cargo build of
# bench/rust. Boost.Fiber: one g++ per program. BUILT[side.prog] is "ok" or
# why not.
# ---------------------------------------------------------------------------
declare -A BUILT
progs=()
for b in "${selected[@]}"; do
    IFS='|' read -r _ prog _ <<<"$b"
    case " ${progs[*]} " in *" $prog "*) ;; *) progs+=("$prog") ;; esac
done
[ $DO_SWITCH = 1 ] && cprogs=("${progs[@]}" switch) || cprogs=("${progs[@]}")

say "bench: building the library and ${#cprogs[@]} C programs (logs in $LOGS/)"
if $MAKE --no-print-directory BUILD="$BUILD" "$BUILD/libgoro.a" >"$LOGS/build-libgoro.log" 2>&1; then
    libok=1
else
    libok=0
    libwhy=$(grep -v '^cc \|^gcc \|^clang \|^make' "$LOGS/build-libgoro.log" | grep -m1 'error' | cut -c1-100)
    say "bench: the library does not build: every C side is FAIL (see $LOGS/build-libgoro.log)"
    [ -n "$libwhy" ] && say "  $libwhy"
fi
for prog in "${cprogs[@]}"; do
    # the Makefile's pattern rule does not know about bench.h
    [ bench/bench.h -nt "$BUILD/bench/$prog" ] && rm -f "$BUILD/bench/$prog"
    if [ $libok = 0 ]; then
        BUILT[goro.$prog]="libgoro.a does not build${libwhy:+: $libwhy}"
    elif $MAKE --no-print-directory BUILD="$BUILD" "$BUILD/bench/$prog" >"$LOGS/build-c-$prog.log" 2>&1; then
        BUILT[goro.$prog]=ok
    else
        why=$(grep -o "undefined reference to \`[a-z_0-9]*'" "$LOGS/build-c-$prog.log" |
            sed "s/.*\`//; s/'//" | sort -u | tr '\n' ' ' | sed 's/ $//')
        if [ -n "$why" ]; then
            why="undefined: $why"
        else
            why=$(grep -m1 -E 'error:' "$LOGS/build-c-$prog.log" | cut -c1-100)
        fi
        BUILT[goro.$prog]="does not build (${why:-see $LOGS/build-c-$prog.log})"
        say "bench: C $prog does not build: ${why:-see $LOGS/build-c-$prog.log}"
    fi
done

GOVERSION=none
if has_side go; then
    GO=$(command -v go || true)
    [ -z "$GO" ] && [ -x /usr/lib/go/bin/go ] && GO=/usr/lib/go/bin/go
    export GOCACHE="$BABS/go-cache" GOPATH="$BABS/gopath" GOFLAGS=-mod=mod \
        GOPROXY=off GO111MODULE=on GOENV=off GOTOOLCHAIN=local CGO_ENABLED=0
    GOVERSION=$([ -n "$GO" ] && "$GO" version | awk '{print $3}' || echo none)
    say "bench: building ${#progs[@]} Go programs with ${GOVERSION}"
    for prog in "${progs[@]}"; do
        if [ -z "$GO" ]; then
            BUILT[go.$prog]="go is not installed"
        elif (cd bench/go && "$GO" build -o "$BABS/bench/go/$prog" "./$prog") >"$LOGS/build-go-$prog.log" 2>&1; then
            BUILT[go.$prog]=ok
        else
            BUILT[go.$prog]="does not build: $(head -c 70 "$LOGS/build-go-$prog.log" | head -1)"
            say "bench: Go $prog does not build (see $LOGS/build-go-$prog.log)"
        fi
    done
fi

# Tokio: the machine's cargo (rustup's, else Debian's). First the committed
# Cargo.lock, from the registry (or cargo's cache); when that fails (offline,
# or a cargo too old for the lock file or for the registry's Tokio), a copy
# of the workspace without the lock, built offline against Debian's
# librust-tokio-dev as a directory source.
RUSTCV=none TOKIOV=none RUSTBIN= TOKIO_OK= TOKIO_SRC=
build_tokio() { # sets TOKIO_OK (ok, or why not), RUSTBIN, RUSTCV, TOKIOV
    local cargo rustc why src lock
    # rustup's cargo when there is one (make may run without ~/.cargo/bin
    # on PATH; Debian's is too old for the registry's Tokio), else PATH's
    cargo=$(command -v cargo || true)
    case $cargo in "" | /usr/bin/cargo)
        [ -x "${HOME:-/nonexistent}/.cargo/bin/cargo" ] && cargo=$HOME/.cargo/bin/cargo ;;
    esac
    if [ -z "$cargo" ]; then TOKIO_OK="cargo is not installed"; return; fi
    rustc=$(dirname "$cargo")/rustc
    [ -x "$rustc" ] || rustc=$(command -v rustc || echo rustc)
    RUSTCV=$("$rustc" --version 2>/dev/null | awk '{print $2}')
    RUSTCV=${RUSTCV:-none}
    say "bench: building the Tokio twins with cargo $("$cargo" --version | awk '{print $2}'), rustc $RUSTCV"
    if (cd bench/rust && RUSTC=$rustc CARGO_TARGET_DIR="$BABS/rust" timeout 600 "$cargo" build --release --locked) \
        >"$LOGS/build-tokio.log" 2>&1; then
        RUSTBIN=$BABS/rust/release lock=bench/rust/Cargo.lock TOKIO_SRC="the crate registry, bench/rust/Cargo.lock"
    elif ls -d /usr/share/cargo/registry/tokio-1.* >/dev/null 2>&1; then
        say "bench: Tokio from the registry failed (see $LOGS/build-tokio.log); trying Debian's librust-tokio-dev"
        src=$BABS/rust-debian
        rm -rf "$src" && mkdir -p "$src" && cp -r bench/rust/Cargo.toml bench/rust/src "$src/"
        if (cd "$src" && RUSTC=$rustc CARGO_TARGET_DIR="$src/target" timeout 600 "$cargo" build --release --offline \
            --config 'source.crates-io.replace-with="debian"' \
            --config 'source.debian.directory="/usr/share/cargo/registry"') >"$LOGS/build-tokio-debian.log" 2>&1; then
            RUSTBIN=$src/target/release lock=$src/Cargo.lock TOKIO_SRC="Debian's librust-tokio-dev, offline"
        else
            why=$(grep -m1 -E '^error' "$LOGS/build-tokio-debian.log" | cut -c1-90)
            TOKIO_OK="does not build (${why:-see $LOGS/build-tokio-debian.log})"
            return
        fi
    else
        why=$(grep -m1 -E '^error' "$LOGS/build-tokio.log" | cut -c1-90)
        TOKIO_OK="does not build (${why:-see $LOGS/build-tokio.log}; no librust-tokio-dev to fall back on)"
        return
    fi
    TOKIOV=$(awk '/^name = "tokio"$/ { getline; gsub(/"/, "", $3); print $3; exit }' "$lock")
    TOKIOV=${TOKIOV:-?}
    TOKIO_OK=ok
}
if has_side tokio && [ ${#progs[@]} -gt 0 ]; then
    build_tokio
    [ "$TOKIO_OK" = ok ] || say "bench: Tokio: $TOKIO_OK"
    for prog in "${progs[@]}"; do
        if [ "$TOKIO_OK" != ok ]; then BUILT[tokio.$prog]="Tokio: $TOKIO_OK"
        elif [ -x "$RUSTBIN/$prog" ]; then BUILT[tokio.$prog]=ok
        else BUILT[tokio.$prog]="no binary $RUSTBIN/$prog"; fi
    done
fi

# Boost.Fiber: g++ per program against Debian's libboost-fiber-dev.
BOOSTV=none CXXV=none
if has_side boost_fiber; then
    CXX=${CXX:-g++}
    CXXV=$($CXX --version 2>/dev/null | head -1)
    BOOSTV=$(awk '/define BOOST_LIB_VERSION/ { gsub(/"/, "", $3); sub(/_/, ".", $3); print $3 }' \
        /usr/include/boost/version.hpp 2>/dev/null)
    BOOSTV=${BOOSTV:-none}
    say "bench: building the Boost.Fiber twins with ${CXXV:-no C++ compiler}, Boost $BOOSTV"
    for prog in "${progs[@]}"; do
        [ -f "bench/boost/$prog.cpp" ] || continue
        bin=$BUILD/bench/boost/$prog
        if [ "$bin" -nt "bench/boost/$prog.cpp" ] && [ "$bin" -nt bench/boost/bench.hpp ]; then
            BUILT[boost_fiber.$prog]=ok # built by an earlier run, sources unchanged
        elif ! command -v "$CXX" >/dev/null 2>&1; then
            BUILT[boost_fiber.$prog]="$CXX is not installed"
        elif [ ! -f /usr/include/boost/fiber/all.hpp ]; then
            BUILT[boost_fiber.$prog]="libboost-fiber-dev is not installed"
        elif $CXX -std=c++17 -O2 -DNDEBUG -pthread -Ibench/boost -o "$BUILD/bench/boost/$prog" "bench/boost/$prog.cpp" \
            -lboost_fiber -lboost_context >"$LOGS/build-boost-$prog.log" 2>&1; then
            BUILT[boost_fiber.$prog]=ok
        else
            BUILT[boost_fiber.$prog]="does not build ($(grep -m1 'error' "$LOGS/build-boost-$prog.log" | cut -c1-80))"
            say "bench: Boost.Fiber $prog does not build (see $LOGS/build-boost-$prog.log)"
        fi
    done
fi

bin_of() { # side prog
    case $1 in
    goro) echo "$BUILD/bench/$2" ;;
    go) echo "$BUILD/bench/go/$2" ;;
    tokio) echo "$RUSTBIN/$2" ;;
    boost_fiber) echo "$BUILD/bench/boost/$2" ;;
    esac
}

# ---------------------------------------------------------------------------
# Run. run_one SIDE ID PROG WORKERS ARGS RUN -> sets R_VAL R_UNIT R_ERR
# ---------------------------------------------------------------------------
CSV=$WORK/results.csv.tmp
echo "benchmark,side,run,value,unit,status,detail" >"$CSV"

run_one() {
    local side=$1 id=$2 prog=$3 workers=$4 args=$5 run=$6
    local log=$LOGS/$id.$side.$run rc line
    R_VAL= R_UNIT= R_ERR= R_BARE=
    # every side gets the worker count as procs=N; goro and Go also in
    # their environment variable
    # shellcheck disable=SC2086
    GORO_PROCS=$workers GOMAXPROCS=$workers timeout -k 5 "$TMO" "$(bin_of "$side" "$prog")" \
        name="$id" procs="$workers" $args >"$log.out" 2>"$log.err"
    rc=$?
    line=$(grep -m1 "^$id " "$log.out")
    if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
        R_ERR="timed out after ${TMO}s"
    elif [ $rc -gt 128 ]; then
        R_ERR="killed by signal $((rc - 128)) ($(kill -l $((rc - 128)) 2>/dev/null || echo '?'))"
        local f; f=$(grep -m1 'goro: fatal' "$log.err" | cut -c1-80)
        [ -n "$f" ] && R_ERR="$R_ERR: $f"
    elif [ $rc -ne 0 ]; then
        R_ERR=$(grep -m1 -E '^FAIL:|goro: fatal' "$log.err" | sed 's/^FAIL: //' | cut -c1-100)
        R_ERR="exit $rc${R_ERR:+: $R_ERR}"
    elif [ -z "$line" ]; then
        R_ERR="no \"$id\" line in its output"
    else
        R_VAL=$(awk '{print $2}' <<<"$line")
        R_UNIT=$(awk '{print $3}' <<<"$line")
        # yield's goro side also times a bare register switch (the bar's
        # "within 2x" half)
        [ "$side" = goro ] && R_BARE=$(awk '$1 == "bare_switch" { print $2; exit }' "$log.out")
        if ! awk -v v="$R_VAL" 'BEGIN { exit !(v + 0 == v && v > 0) }'; then
            R_ERR="bad value '$R_VAL'"
        fi
    fi
    if [ -n "$R_ERR" ]; then
        echo "$id,$side,$run,,,FAIL,\"${R_ERR//\"/\'}\"" >>"$CSV"
    else
        echo "$id,$side,$run,$R_VAL,$R_UNIT,ok," >>"$CSV"
    fi
}

# results per benchmark and side: space-separated values, unit, failure,
# reason for n/a
declare -A VALS UNIT ERR NRUNS NA
total=${#selected[@]}
i=0
T0=$(date +%s)
LOAD0=$(cut -d' ' -f1 /proc/loadavg)
SIDELIST=$(for s in "${SIDES[@]}"; do label "$s"; done | paste -sd, - | sed 's/,/, /g')
say "bench: $MODE, $RUNS runs per side, sides $SIDELIST, $PROCS workers, timeout ${TMO}s"
for b in "${selected[@]}"; do
    IFS='|' read -r id prog workers args bar qruns nalist <<<"$b"
    i=$((i + 1))
    [ "$workers" = P ] && workers=$PROCS
    runs=$RUNS
    [ "$MODE" = quick ] && [ -n "$qruns" ] && [ -z "${BENCH_RUNS:-}" ] && runs=$qruns
    NRUNS[$id]=$runs
    UNIT[$id]=
    for side in "${SIDES[@]}"; do
        VALS[$id.$side]= ERR[$id.$side]= NA[$id.$side]=
        [ "$side" != goro ] && NA[$id.$side]=$(na_reason "$side" "$prog" "$nalist")
        if [ -n "${NA[$id.$side]}" ]; then
            echo "$id,$side,,,,n/a,\"${NA[$id.$side]}\"" >>"$CSV"
        elif [ "${BUILT[$side.$prog]:-}" != ok ]; then
            ERR[$id.$side]="${BUILT[$side.$prog]:-not built}"
            [ "$side" = goro ] && ERR[$id.$side]="C ${ERR[$id.$side]}"
            [ "$side" = go ] && ERR[$id.$side]="Go ${ERR[$id.$side]}"
        fi
    done
    for run in $(seq 1 "$runs"); do
        msg=$(printf '[%2d/%d] %-18s run %d/%d ' "$i" "$total" "$id" "$run" "$runs")
        for side in "${SIDES[@]}"; do
            lab=$(label "$side")
            [ -n "${NA[$id.$side]}" ] && continue
            if [ -n "${ERR[$id.$side]}" ]; then
                msg="$msg  $lab FAIL"
                continue
            fi
            run_one "$side" "$id" "$prog" "$workers" "$args" "$run"
            if [ -n "$R_ERR" ]; then
                ERR[$id.$side]="run $run: $R_ERR"
                msg="$msg  $lab FAIL ($R_ERR)"
            else
                VALS[$id.$side]="${VALS[$id.$side]} $R_VAL"
                UNIT[$id]=$R_UNIT
                [ -n "$R_BARE" ] && VALS[$id.bare]="${VALS[$id.bare]:-} $R_BARE"
                msg="$msg  $lab $(printf '%.4g' "$R_VAL") $R_UNIT"
            fi
        done
        say "$msg   ($(($(date +%s) - T0))s)"
    done
done

# The switch-cost table's reference rows: bench/switch.c (processes over a
# pipe, threads over a futex, swapcontext; all on one CPU), as many runs as
# the other rows. The user-space rows come from the yield row's runs.
SW_FIGS="process thread ucontext"
if [ $DO_SWITCH = 1 ]; then
    for f in $SW_FIGS; do VALS[switch.$f]=; done
    SW_ERR=
    [ "${BUILT[goro.switch]:-}" = ok ] || SW_ERR="C switch ${BUILT[goro.switch]:-not built}"
    for run in $(seq 1 "$RUNS"); do
        [ -n "$SW_ERR" ] && break
        log=$LOGS/switch.$run
        timeout -k 5 "$TMO" "$BUILD/bench/switch" >"$log.out" 2>"$log.err"
        rc=$?
        if [ $rc -ne 0 ]; then
            SW_ERR="run $run: exit $rc $(grep -m1 '^FAIL:' "$log.err" | sed 's/^FAIL: //' | cut -c1-80)"
            for f in $SW_FIGS; do echo "switch,$f,$run,,,FAIL,\"${SW_ERR//\"/\'}\"" >>"$CSV"; done
            break
        fi
        msg=$(printf '[switch] %-22s run %d/%d ' "" "$run" "$RUNS")
        for f in $SW_FIGS; do
            v=$(awk -v k="${f}_switch" '$1 == k { print $2; exit }' "$log.out")
            if [ -z "$v" ]; then
                SW_ERR="run $run: no ${f}_switch line"
                echo "switch,$f,$run,,,FAIL,\"$SW_ERR\"" >>"$CSV"
                continue
            fi
            VALS[switch.$f]="${VALS[switch.$f]} $v"
            echo "switch,$f,$run,$v,ns/op,ok," >>"$CSV"
            msg="$msg  $f $(printf '%.4g' "$v") ns"
        done
        say "$msg   ($(($(date +%s) - T0))s)"
    done
    [ -n "$SW_ERR" ] && say "bench: switch: $SW_ERR"
    # the bare register switch, timed by the goro side of the yield row
    k=0
    for v in ${VALS[yield.bare]:-}; do k=$((k + 1)); echo "switch,goro_bare,$k,$v,ns/op,ok," >>"$CSV"; done
fi

ELAPSED=$(($(date +%s) - T0))
LOAD1=$(cut -d" " -f1 /proc/loadavg)

# The real-clients rows, after the others (they print their own table).
rm -f "$WORK/real.md"
if [ $DO_REAL = 1 ]; then
    echo >&2
    BUILD="$BUILD" BENCH="$MODE" REAL_OUT="$WORK" LOGS="$LOGS" bench/real.sh ||
        say "bench: bench/real.sh failed"
fi

# ---------------------------------------------------------------------------
# Summarise: median, min, max; ratio as goro's advantage over the best peer.
# ---------------------------------------------------------------------------
stats() { # values... -> "median min max"
    printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END {
        if (NR == 0) exit
        m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
        print m, v[1], v[NR] }'
}
fmt() { awk -v v="$1" 'BEGIN {
    a = (v < 0) ? -v : v
    if (a >= 100000) printf "%.0f", v; else if (a >= 100) printf "%.1f", v
    else if (a >= 10) printf "%.2f", v; else printf "%.3g", v }'; }

# rows.tsv: id, unit, ratio, verdict, bar, bar met, best peer, then for each
# side in SIDES its median and its min-max
ROWS=$WORK/rows.tsv
CHART=$WORK/chart.dat
: >"$ROWS"
FAILS=$WORK/fails.tsv # id, side, why
: >"$FAILS"
: >"$CHART"
declare -A MED
n=0
for b in "${selected[@]}"; do
    IFS='|' read -r id prog workers args bar _ <<<"$b"
    n=$((n + 1))
    unit=${UNIT[$id]:-}
    dir=$(direction "${unit:-ns/op}")
    cells=()
    best= bestmed=
    for side in "${SIDES[@]}"; do
        med= cell=FAIL spread=-
        if [ -n "${NA[$id.$side]}" ]; then
            cell="n/a (${NA[$id.$side]})"
        elif [ -z "${ERR[$id.$side]}" ] && [ -n "${VALS[$id.$side]}" ]; then
            # shellcheck disable=SC2086
            read -r med vmin vmax <<<"$(stats ${VALS[$id.$side]})"
            cell="$(fmt "$med") $unit"; spread="$(fmt "$vmin")-$(fmt "$vmax")"
            [ "${NRUNS[$id]}" != "$RUNS" ] &&
                spread="$spread (${NRUNS[$id]} run$([ "${NRUNS[$id]}" = 1 ] || echo s))"
        else
            printf '%s\t%s\t%s\n' "$id" "$(label "$side")" "${ERR[$id.$side]:-no result}" >>"$FAILS"
        fi
        MED[$id.$side]=$med
        cells+=("$cell" "$spread")
        if [ "$side" != goro ] && [ -n "$med" ]; then
            if [ -z "$bestmed" ] || awk -v m="$med" -v b="$bestmed" -v d="$dir" \
                'BEGIN { exit !((d == "lower") ? m < b : m > b) }'; then
                best=$side bestmed=$med
            fi
        fi
    done
    cmed=${MED[$id.goro]}
    case $unit in bytes/*) better=smaller worse=larger ;; *) better=faster worse=slower ;; esac
    ratio=
    if [ -n "$cmed" ] && [ -n "$bestmed" ]; then
        ratio=$(awk -v c="$cmed" -v g="$bestmed" -v d="$dir" 'BEGIN { printf "%.4f", (d == "lower") ? g / c : c / g }')
        verdict=$(awk -v r="$ratio" -v b="$better" -v w="$worse" -v p="$(label "$best")" 'BEGIN {
            if (r >= 1) printf "goro %.2fx %s than %s", r, b, p; else printf "goro %.2fx %s than %s", 1 / r, w, p }')
    elif [ -z "$cmed" ]; then
        verdict="FAIL: goro"
    else
        # goro ran; no peer has a figure: each is n/a or FAIL
        verdict="no peer figure"
        for side in "${PEERS[@]}"; do [ -z "${NA[$id.$side]}" ] && verdict="FAIL: every peer"; done
        [ ${#PEERS[@]} -eq 0 ] && verdict="no peer run"
    fi
    # the bar, and whether it is met
    barmark=NaN
    case $bar in
    -) bartxt="-" met="" ;;
    abs:*)
        lim=${bar#abs:}
        bartxt="<= $lim B"
        if [ -n "$cmed" ]; then
            met=$(awk -v c="$cmed" -v l="$lim" 'BEGIN { print (c <= l) ? "met" : "MISSED" }')
            [ -n "$bestmed" ] && barmark=$(awk -v g="$bestmed" -v l="$lim" 'BEGIN { printf "%.4f", g / l }')
        else met=""; fi ;;
    *)
        bartxt="${bar}x"
        barmark=$bar
        if [ -n "$ratio" ]; then
            met=$(awk -v r="$ratio" -v b="$bar" 'BEGIN { print (r >= b) ? "met" : "MISSED" }')
        else met=""; fi ;;
    esac
    (IFS=$'\t'; printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$id" "$unit" "${ratio:-}" "$verdict" "$bartxt" "$met" \
        "$([ -n "$best" ] && label "$best")" "${cells[*]}") >>"$ROWS"
    status=ok
    [ -z "$ratio" ] && status=n/a
    case $verdict in FAIL*) status=FAIL ;; esac
    ctext=
    [ -n "$best" ] && ctext="vs $(label "$best")"
    [ "$bartxt" != - ] && ctext="${ctext:+$ctext, }bar $bartxt"
    printf '%d\t"%s"\t%s\t%s\t%s\t"%s"\n' "$n" "$id" "${ratio:-NaN}" "$barmark" "$status" "$ctext" >>"$CHART"
done

# yield against the bare register switch, each goro run timing both: the
# median yield over the median switch, bar 2x (DESIGN.md).
BARE_LINE=
if [ -n "${VALS[yield.bare]:-}" ] && [ -n "${VALS[yield.goro]:-}" ]; then
    # shellcheck disable=SC2086
    read -r ymed _ <<<"$(stats ${VALS[yield.goro]})"
    # shellcheck disable=SC2086
    read -r bmed bmin bmax <<<"$(stats ${VALS[yield.bare]})"
    BARE_LINE=$(awk -v y="$ymed" -v b="$bmed" -v lo="$bmin" -v hi="$bmax" 'BEGIN {
        r = y / b
        printf "yield vs a bare register switch (the register switch alone, same runs): %.2f ns vs %.2f ns (min-max %.2f-%.2f): %.2fx, bar within 2x %s", y, b, lo, hi, r, (r <= 2) ? "met" : "MISSED" }')
fi

# The switch-cost table: ns per switch, medians, and each as a multiple of
# goro_yield. sw.tsv: what, how, median, min-max
SWROWS=$WORK/sw.tsv
: >"$SWROWS"
sw_row() { # what how values...
    local what=$1 how=$2 med lo hi
    shift 2
    if [ $# -eq 0 ]; then
        printf '%s\t%s\t\t-\n' "$what" "$how" >>"$SWROWS"
        return
    fi
    read -r med lo hi <<<"$(stats "$@")"
    printf '%s\t%s\t%s\t%s-%s\n' "$what" "$how" "$med" "$(fmt "$lo")" "$(fmt "$hi")" >>"$SWROWS"
}
if [ $DO_SWITCH = 1 ]; then
    # shellcheck disable=SC2086
    {
        sw_row "process switch" "two processes bounce a byte over two pipes, one CPU (bench/switch.c)" ${VALS[switch.process]:-}
        sw_row "thread switch" "two threads take turns on a futex word, one CPU (bench/switch.c)" ${VALS[switch.thread]:-}
        sw_row "swapcontext" "glibc ucontext, two contexts, one thread (bench/switch.c)" ${VALS[switch.ucontext]:-}
        sw_row "goro bare register switch" "callee-saved registers and rsp, no scheduler (bench/yield.c)" ${VALS[yield.bare]:-}
        sw_row "goro_yield" "two goroutines, one worker (the yield row)" $([ -z "${ERR[yield.goro]:-}" ] && echo ${VALS[yield.goro]:-})
        has_side go && sw_row "Go runtime.Gosched" "two goroutines, GOMAXPROCS=1 (the yield row)" $([ -z "${ERR[yield.go]:-}" ] && [ -z "${NA[yield.go]:-}" ] && echo ${VALS[yield.go]:-})
        has_side tokio && sw_row "Tokio yield_now" "two tasks, worker_threads=1 (the yield row)" $([ -z "${ERR[yield.tokio]:-}" ] && [ -z "${NA[yield.tokio]:-}" ] && echo ${VALS[yield.tokio]:-})
        has_side boost_fiber && sw_row "Boost.Fiber this_fiber::yield" "two fibers, one work_stealing thread (the yield row)" $([ -z "${ERR[yield.boost_fiber]:-}" ] && [ -z "${NA[yield.boost_fiber]:-}" ] && echo ${VALS[yield.boost_fiber]:-})
    }
fi
GY=$(awk -F'\t' '$1 == "goro_yield" { print $3 }' "$SWROWS")
switch_text() {
    [ -s "$SWROWS" ] || return 0
    echo "What a switch costs (ns per switch, median of $RUNS runs; the same machine, the same run):"
    echo
    awk -F'\t' -v gy="$GY" '{
        med = ($3 == "") ? "FAIL" : sprintf("%.2f ns", $3)
        x = ($3 != "" && gy != "") ? sprintf("%.1fx", $3 / gy) : "-"
        printf "  %-30s %12s  %8s  %-17s %s\n", $1, med, x, $4, $2
    }' "$SWROWS" | sed 's/ *$//'
    echo "  (the third column: the cost as a multiple of goro_yield's; then the min-max)"
}
switch_md() {
    [ -s "$SWROWS" ] || return 0
    echo "## What a switch costs"
    echo
    echo "ns per switch, median of $RUNS runs in this run, on this machine; \"x goro_yield\" is the"
    echo "cost as a multiple of goro_yield's. The kernel rows include the system calls a switch"
    echo "needs there (pipe write and read; FUTEX_WAKE and FUTEX_WAIT; swapcontext's sigprocmask)."
    echo
    echo "| switch | ns per switch | x goro_yield | min-max | how |"
    echo "|---|---:|---:|---:|---|"
    awk -F'\t' -v gy="$GY" '{
        med = ($3 == "") ? "FAIL" : sprintf("%.2f", $3)
        x = ($3 != "" && gy != "") ? sprintf("%.1fx", $3 / gy) : "-"
        printf "| %s | %s | %s | %s | %s |\n", $1, med, x, $4, $2
    }' "$SWROWS"
    [ -n "${SW_ERR:-}" ] && echo && echo "bench/switch.c failed: $SW_ERR"
    echo
    return 0
}

# What stands in for what, where a peer's twin is not the same thing.
notes() {
    local have=0
    for b in "${selected[@]}"; do
        case ${b%%|*} in chan_buffered_4x4 | pingpong_1w | pingpong_2w | skynet_1m) have=1 ;; esac
    done
    [ $have = 1 ] || return 0
    has_side tokio && echo "Tokio's channels: tokio::sync::mpsc of capacity 1 for the unbuffered ones (pingpong, skynet: Tokio has no unbuffered channel); for chan_buffered_4x4, Go's many-to-many channel is one tokio::sync::mpsc of capacity 128 (many producers) whose single receiver the 4 consumers share behind a tokio::sync::Mutex."
    has_side boost_fiber && echo "Boost.Fiber's channels: unbuffered_channel for pingpong and skynet; buffered_channel of capacity 128 (many-to-many, holds 127) for chan_buffered_4x4."
    return 0
}

# The table, for the terminal and for RESULTS.md.
HDR_SIDES=$(for s in "${SIDES[@]}"; do label "$s"; done | paste -sd'\t' -)
table_text() {
    awk -F'\t' -v sides="$HDR_SIDES" 'BEGIN {
        ns = split(sides, S, "\t")
        printf "%-18s", "benchmark"
        for (k = 1; k <= ns; k++) printf " %22s", S[k] " median"
        printf "  %-38s %-15s", "goro vs the best peer", "bar"
        for (k = 1; k <= ns; k++) printf " %-22s", S[k] " min-max"
        printf "\n%-18s", "---------"
        for (k = 1; k <= ns; k++) printf " %22s", "------"
        printf "  %-38s %-15s", "---------------------", "---"
        for (k = 1; k <= ns; k++) printf " %-22s", "-------"
        printf "\n"
    } {
        bar = $5; if ($6 != "") bar = bar " " $6
        printf "%-18s", $1
        for (k = 1; k <= ns; k++) printf " %22s", $(8 + 2 * (k - 1))
        printf "  %-38s %-15s", $4, bar
        for (k = 1; k <= ns; k++) printf " %-22s", $(9 + 2 * (k - 1))
        printf "\n"
    }' "$ROWS" | sed 's/ *$//'
    [ -n "$BARE_LINE" ] && echo && echo "$BARE_LINE"
    notes | sed 's/^/\n/'
    [ -s "$FAILS" ] && echo && awk -F'\t' '{ printf "FAIL %s (%s): %s\n", $1, $2, $3 }' "$FAILS"
    return 0
}
table_md() {
    awk -F'\t' -v sides="$HDR_SIDES" 'BEGIN {
        ns = split(sides, S, "\t")
        printf "| benchmark |"
        for (k = 1; k <= ns; k++) printf " %s median |", S[k]
        printf " goro vs the best peer | bar (DESIGN.md) |"
        for (k = 1; k <= ns; k++) printf " %s min-max |", S[k]
        printf "\n|---|"
        for (k = 1; k <= ns; k++) printf "---:|"
        printf "---|---|"
        for (k = 1; k <= ns; k++) printf "---:|"
        printf "\n"
    } {
        v = $4
        # bold a win only: a row a peer leads reads plainly
        if ($3 != "") v = ($3 + 0 >= 1 ? "**" v "**" : v) " (" sprintf("%.2f", $3) ")"
        bar = $5; if ($6 == "met") bar = bar " met"; else if ($6 == "MISSED") bar = bar " **missed**"
        printf "| %s |", $1
        for (k = 1; k <= ns; k++) printf " %s |", $(8 + 2 * (k - 1))
        printf " %s | %s |", v, bar
        for (k = 1; k <= ns; k++) printf " %s |", $(9 + 2 * (k - 1))
        printf "\n"
    }' "$ROWS"
    [ -n "$BARE_LINE" ] && echo && echo "$BARE_LINE" | sed 's/MISSED$/**missed**/'
    notes | sed 's/^/\n/'
    if [ -s "$FAILS" ]; then
        echo
        echo "Failures:"
        echo
        awk -F'\t' '{ gsub(/\|/, "\\|", $3); printf "- %s, %s side: %s\n", $1, $2, $3 }' "$FAILS"
    fi
    return 0
}

CPU=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
KERNEL=$(uname -sr)
DATE=$(date -u '+%Y-%m-%d %H:%M UTC')
COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo none)
[ -n "$(git status --porcelain -- runtime netpoll include 2>/dev/null)" ] && COMMIT="$COMMIT (+ uncommitted changes)"
CCV=$(${CC:-cc} --version 2>/dev/null | head -1)
VERSIONS="$CCV"
has_side go && VERSIONS="$VERSIONS; Go $GOVERSION"
has_side tokio && VERSIONS="$VERSIONS; rustc $RUSTCV, Tokio $TOKIOV"
has_side boost_fiber && VERSIONS="$VERSIONS; Boost $BOOSTV"
MACHINE="${CPU:-unknown CPU}, $NCPU cores, $KERNEL"
TITLE="goro vs $(printf '%s\n' "${PEERS[@]}" | while read -r s; do label "$s"; done | paste -sd, - | sed 's/,/, /g')"
[ ${#PEERS[@]} -eq 0 ] && TITLE="goro alone"

echo
if [ ${#selected[@]} -gt 0 ]; then
    echo "$TITLE: $MODE, $RUNS runs per side, $PROCS workers; $MACHINE; $VERSIONS; $DATE; load $LOAD0 -> $LOAD1"
    echo
    table_text
    echo
fi
if [ -s "$SWROWS" ]; then
    switch_text
    echo
fi
# The chart.
PNG=$OUT/ratios.png
if [ $n -eq 0 ]; then
    PNG=
elif command -v gnuplot >/dev/null 2>&1; then
    ymax=$(awk -F'\t' 'BEGIN { m = 2 } { if ($3 != "NaN" && $3 * 1.6 > m) m = $3 * 1.6; if ($4 != "NaN" && $4 * 1.6 > m) m = $4 * 1.6 } END { print m }' "$CHART")
    ymin=$(awk -F'\t' 'BEGIN { m = 0.5 } { if ($3 != "NaN" && $3 / 1.6 < m) m = $3 / 1.6; if ($4 != "NaN" && $4 / 1.6 < m) m = $4 / 1.6 } END { print m }' "$CHART")
    h=$((180 + 42 * n)); [ $h -lt 400 ] && h=400
    term="pngcairo size 1280,$h font 'Sans,11'"
    gnuplot -e "set terminal pngcairo" >/dev/null 2>&1 || term="png size 1280,$h"
    # gnuplot 5.4 crashes on a "with labels" clause none of whose points is
    # defined, so only the clauses that have something to draw are plotted.
    read -r nge nlt nbar nfail <<<"$(awk -F'\t' '
        $3 != "NaN" && $3 >= 1 { ge++ } $3 != "NaN" && $3 < 1 { lt++ }
        $4 != "NaN" { bar++ } $5 == "FAIL" { fail++ }
        END { print ge + 0, lt + 0, bar + 0, fail + 0 }' "$CHART")"
    PLOT="plot '$CHART' using (1):1:ytic(strcol(2) . \"  \" . strcol(6)) with points ps 0 notitle"
    [ "$nge" -gt 0 ] && PLOT="$PLOT, '' using (\$3 >= 1 ? \$3 : 1/0):1:(1):3:(\$1-0.35):(\$1+0.35) with boxxyerror lc rgb '#2e8b57' title 'goro better'"
    [ "$nlt" -gt 0 ] && PLOT="$PLOT, '' using (\$3 < 1 ? \$3 : 1/0):1:3:(1):(\$1-0.35):(\$1+0.35) with boxxyerror lc rgb '#cd5c5c' title 'the best peer better'"
    [ "$nbar" -gt 0 ] && PLOT="$PLOT, '' using 4:(\$1-0.42):(0):(0.84) with vectors nohead lw 5 lc rgb '#1f3fbf' title 'bar from DESIGN.md'"
    # a value label goes past its bar's mark when the mark is just beyond the box
    [ "$nge" -gt 0 ] && PLOT="$PLOT, '' using (\$3 >= 1 ? ((strcol(4) ne 'NaN' && \$4 > \$3 && \$4 < \$3 * 1.4) ? \$4 : \$3) * 1.04 : 1/0):1:(sprintf('%.2fx', \$3)) with labels left font ',10' notitle"
    [ "$nlt" -gt 0 ] && PLOT="$PLOT, '' using (\$3 < 1 ? ((strcol(4) ne 'NaN' && \$4 < \$3 && \$4 > \$3 / 1.4) ? \$4 : \$3) / 1.04 : 1/0):1:(sprintf('%.2fx', \$3)) with labels right font ',10' notitle"
    [ "$nfail" -gt 0 ] && PLOT="$PLOT, '' using (strcol(5) eq 'FAIL' ? 1.04 : 1/0):1:('FAIL') with labels left font ',11' tc rgb '#cc0000' notitle"
    cat >"$WORK/chart.gp" <<EOF
set terminal $term
set output '$PNG'
set datafile separator '\t'
set title "$TITLE: how many times better goro is than the best peer  (its time / goro's; for a rate, goro's / its)\n{/*0.8 $MODE: median of $RUNS runs, $PROCS workers; $MACHINE; $DATE}\n{/*0.8 $VERSIONS}"
set logscale x 2
set xrange [$ymin:$ymax]
set xtics ("0.125x" 0.125, "0.25x" 0.25, "0.5x" 0.5, "1x" 1, "2x" 2, "3x" 3, "5x" 5, "10x" 10, "20x" 20, "50x" 50, "100x" 100)
set xlabel "goro's advantage over the best peer (log scale): right of 1x goro is better, left of it that peer is"
set yrange [$n.6:0.4]
set ytics nomirror noenhanced
set grid xtics lc rgb "#dddddd"
set key above horizontal
set style fill solid 0.85 border lc rgb "#333333"
set arrow 1 from first 1, graph 0 to first 1, graph 1 nohead lw 2 lc rgb "#000000"
set lmargin 40
$PLOT
EOF
    if ! gnuplot "$WORK/chart.gp" >"$LOGS/gnuplot.log" 2>&1; then
        say "bench: gnuplot failed (see $LOGS/gnuplot.log)"
        PNG=
    fi
else
    say "bench: gnuplot is not installed: no chart"
    PNG=
fi

# RESULTS.md and the CSV.
mv "$CSV" "$OUT/results.csv"
[ "$OUT" != "$WORK" ] && [ -f "$WORK/real.csv" ] && [ $DO_REAL = 1 ] && cp "$WORK/real.csv" "$OUT/real.csv"
{
    echo "# $TITLE: benchmark results"
    echo
    echo "Written by \`make bench\` (\`bench/run.sh\`); do not edit by hand."
    echo
    echo "- Machine: ${CPU:-unknown CPU}, $NCPU cores; $KERNEL; load average $LOAD0 when the runs began, $LOAD1 when they ended (above the core count, other work shared the CPUs and the figures are noisier)"
    echo "- C: $CCV, the library's own flags"
    has_side go && echo "- Go: $GOVERSION (GOMAXPROCS = goro's worker count)"
    has_side tokio && echo "- Tokio: $TOKIOV${TOKIO_SRC:+ (from $TOKIO_SRC)}, rustc $RUSTCV, release profile; multi-thread runtime, worker_threads = goro's worker count"
    has_side boost_fiber && echo "- Boost.Fiber: Boost $BOOSTV, ${CXXV}, -O2; the work_stealing scheduler on each of goro's worker count of threads, default fixedsize_stack"
    echo "- Date: $DATE; goro commit $COMMIT"
    echo "- Mode: BENCH=$MODE${ONLY:+, BENCH_ONLY=$ONLY}${BENCH_SIDES:+, BENCH_SIDES=$BENCH_SIDES}: $RUNS runs per side, alternating $SIDELIST, ...; $PROCS workers unless the benchmark says 1 or 2; ${ELAPSED}s in all"
    echo
    echo "The ratio is goro's advantage over the best peer on that row (named in the column):"
    echo "the peer's time divided by goro's (or goro's rate divided by the peer's), so above 1"
    echo "goro is better and below 1 that peer is better, whatever the unit."
    echo "A bar is the ratio DESIGN.md asks for (for parked memory: an absolute ceiling)."
    echo "FAIL means that side did not build, crashed, hung, or its own check of the result failed;"
    echo "n/a means the peer has no twin of that benchmark, for the reason given."
    if [ ${#selected[@]} -gt 0 ]; then
        echo
        table_md
    fi
    echo
    [ -n "$PNG" ] && echo "![ratios](ratios.png)" && echo
    echo "Every run: [results.csv](results.csv)."
    echo
    switch_md
    [ -s "$WORK/real.md" ] && cat "$WORK/real.md" && echo "Every run: [real.csv](real.csv)." && echo
    cat <<'EOF'
## What each benchmark does (the same on every side)

| benchmark | work | figure | checked |
|---|---|---|---|
| yield | 2 goroutines on 1 worker, 1,000,000 yields each (`goro_yield` / `runtime.Gosched`); the goro side also times 2,000,000 bare register switches (the core of `goro__ctx_switch`, without its errno and pending-action epilogue) between two contexts, for the bar's "within 2x" | ns per yield | all yields ran and the two alternated; every bare switch ran |
| pingpong_1w, _2w | a counter bounced over two unbuffered channels, on 1 and on 2 workers | ns per round trip | every reply is request+1 |
| spawn_join_1m | spawn 1,000,000 goroutines that bump a counter, join with a WaitGroup | ns per goroutine | counter = 1,000,000 |
| skynet_1m | the skynet tree: 1,111,111 goroutines, sums up unbuffered channels | ms | sum = 499999500000 |
| chan_buffered_4x4 | 4 producers, 4 consumers, one channel of capacity 128, 4,000,000 messages | ns per message | count and sum of all messages |
| mutex_contended | 8 goroutines, 8,000,000 lock/increment/unlock in all | ns per lock+unlock | counter |
| mutex_uncontended | 1 goroutine, 20,000,000 lock/increment/unlock | ns per lock+unlock | counter |
| parked_100k, _1m | goroutines parked on a WaitGroup; RSS growth (/proc/self/statm) / n | bytes per goroutine | all parked, then all released and joined |
| stack_64m | 1 goroutine recursing through 1 KiB frames to 52 MiB of stack (its stack grows to 64 MiB), 5 times | ms per recursion | checksum of every frame |
| stack_10k_256k | 10,000 goroutines, each recursing to 208 KiB (stack grows to 256 KiB), 3 times | ms per 10,000 | checksum of every recursion |
| stack_shrink | 10,000 goroutines recurse to 1 MiB once, then park 1.5 s (Go: then runtime.GC twice); RSS plus page tables growth / n | bytes per goroutine | checksum of every recursion, all parked and joined |
| idle_conns_mem, _wake | 100,000 loopback TCP connections (fewer when RLIMIT_NOFILE's hard limit cannot be raised: the program says how many), both ends a goroutine blocked in a read, idle 1.5 s; _mem: RSS plus page tables growth / connections; _wake: a round trip through 1,000 random idle connections | bytes per connection; us per round trip | every connection accepted and parked, every echo checked, all joined |
| tcp_echo_64 | echo server and 64 clients in one process on 127.0.0.1, 2,000 round trips of 64 bytes each (10 s cap) | round trips per second | every echo equals what was sent; server bytes = client bytes |
| rwmutex_read_heavy | 8 goroutines on 2 workers, 4,000,000 operations on one RWMutex, 10% writes (the same xorshift choice on both sides) | ns per operation | counter = number of writes |
| ticker_10k_1ms | 10,000 goroutines, each with a 1 ms ticker, each receiving 20 ticks (10 million ticks a second asked: slow receivers' ticks are dropped) | process CPU ns per tick received | no ticker got its ticks faster than the period (none queued) |
| local_get | goroutine-local get (`goro_local_get`) n times; Go, which has none, reads a `context.Context` value instead | ns per get | sum of the values read |

The peers' twins do the same work with their own primitives. Tokio
(`bench/rust/src/bin/`): `tokio::spawn`ed tasks, `yield_now`, `tokio::sync::mpsc`
(capacity 1 where Go's channel is unbuffered), an atomic count and a `Notify` where
goro waits on a WaitGroup, `tokio::sync::Mutex`, a `Semaphore` with no permits to
park on, `tokio::net`; stack growth is n/a (tasks are stackless state machines).
Boost.Fiber (`bench/boost/`): detached or joined `fibers::fiber`s on a
`work_stealing` thread per worker, `this_fiber::yield`, `unbuffered_channel`,
`buffered_channel`, `fibers::mutex`, a `promise` the last fiber fulfils where goro
waits on a WaitGroup, a `condition_variable` to park on; stack growth is n/a
(Boost's default `fixedsize_stack` is 128 KiB and never grows), TCP echo is n/a
(Boost.Fiber has no netpoller).
EOF
    echo
    echo "## Parameters of this run (every side gets the same key=value arguments)"
    echo
    echo "| benchmark | program | workers | arguments | runs per side |"
    echo "|---|---|---|---|---|"
    for b in "${selected[@]}"; do
        IFS='|' read -r id prog workers args _ <<<"$b"
        [ "$workers" = P ] && workers=$PROCS
        files="\`bench/$prog.c\`"
        for side in "${PEERS[@]}"; do
            [ -n "${NA[$id.$side]}" ] && continue
            case $side in
            go) files="$files, \`bench/go/$prog/main.go\`" ;;
            tokio) files="$files, \`bench/rust/src/bin/$prog.rs\`" ;;
            boost_fiber) files="$files, \`bench/boost/$prog.cpp\`" ;;
            esac
        done
        echo "| $id | $files | $workers | \`$args\` | ${NRUNS[$id]} |"
    done
} >"$OUT/RESULTS.md"

say "bench: wrote $OUT/RESULTS.md, $OUT/results.csv${PNG:+, $PNG} (${ELAPSED}s)"
exit 0
