#!/usr/bin/env bash
# bench/real.sh - the "real clients" section of `make bench`: the example
# servers under the load tools people already trust, beside their Go twins
# and beside redis-server. bench/run.sh calls it; it also runs alone:
#
#   bench/real.sh                      every row
#   BENCH_ONLY=http_wrk_64,kv_p16 bench/real.sh
#
# Rows (ids for BENCH_ONLY; "real" selects them all):
#   http_wrk_64, http_wrk_1000   wrk -t1 -cN --latency for BENCH_REAL_SECS
#       (default 5) against examples/http, bench/go/httpnet (net/http) and
#       bench/go/httpraw (raw net, the same parsing as goro's): req/s, p99
#   kv_p1, kv_p16                redis-benchmark -c 50 -P 1|16 -t
#       ping,set,get,incr,mset (-n 50,000 | 1,000,000 a test) against
#       examples/kv, bench/go/kv and redis-server (persistence off, on a
#       free port): req/s per command
#   kv_p16_2w                    the same -P 16 with 2 workers a server
#       (redis-server stays one thread: that is what it is)
#
# Layout: with two CPUs or more, a 1-worker server runs pinned to CPU 0
# and the load tool to CPU 1 (taskset); 2-worker rows pin nothing (server
# and tool share both CPUs). The layout is printed with the table.
# Sides alternate within each run (goro, Go..., redis-server, goro, ...).
# A side whose binary or tool is missing is FAIL in its column; the rest go on.
#
# Environment (run.sh sets these): BUILD, BENCH_SIDES (goro,go,redis),
# BENCH_RUNS or BENCH (quick: 3 runs, full: 10), REAL_OUT (a directory for
# real.md and real.csv; default bench/out), LOGS.
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 1
BUILD=${BUILD:-build}
case $BUILD in /*) BABS=$BUILD ;; *) BABS=$ROOT/$BUILD ;; esac
OUTDIR=$([ "$BUILD" = build ] && echo "" || echo "$BUILD/")
ONLY=${BENCH_ONLY:-}
SIDES_WANT=${BENCH_SIDES:-goro,go,redis}
MODE=${BENCH:-quick}
case $MODE in full) RUNS=${BENCH_RUNS:-10} ;; *) RUNS=${BENCH_RUNS:-3} ;; esac
SECS=${BENCH_REAL_SECS:-5}
REAL_OUT=${REAL_OUT:-bench/out}
LOGS=${LOGS:-$REAL_OUT/logs}
mkdir -p "$REAL_OUT" "$LOGS" "$BUILD/bench/go"
NCPU=$(nproc)
say() { printf '%s\n' "$*" >&2; }

ROWS_ALL="http_wrk_64 http_wrk_1000 kv_p1 kv_p16 kv_p16_2w"
ROWS=()
for r in $ROWS_ALL; do
    if [ -z "$ONLY" ]; then ROWS+=("$r"); continue; fi
    case ",$ONLY," in *",$r,"* | *",real,"* | *",http,"*) case $r in http_*) ROWS+=("$r") ;; esac ;; esac
    case ",$ONLY," in *",$r,"* | *",real,"* | *",kv,"*) case $r in kv_*) ROWS+=("$r") ;; esac ;; esac
done
[ ${#ROWS[@]} -eq 0 ] && exit 0
has() { case ",$SIDES_WANT," in *",$1,"*) return 0 ;; esac; [ "$1" = goro ]; }

# ---- the servers -----------------------------------------------------------
declare -A WHY # side -> why it cannot run ("" when it can)
GO=$(command -v go || true)
[ -z "$GO" ] && [ -x /usr/lib/go/bin/go ] && GO=/usr/lib/go/bin/go
build_go() { # prog
    if [ -z "$GO" ]; then echo "go is not installed"; return; fi
    if (cd bench/go && GOCACHE="$BABS/go-cache" GOPATH="$BABS/gopath" GOFLAGS=-mod=mod GOPROXY=off \
        GO111MODULE=on GOENV=off GOTOOLCHAIN=local CGO_ENABLED=0 \
        "$GO" build -o "$BABS/bench/go/$1" "./$1") >"$LOGS/build-go-$1.log" 2>&1; then
        echo ""
    else
        echo "does not build (see $LOGS/build-go-$1.log)"
    fi
}
say "real: building the example servers and their Go twins"
make --no-print-directory BUILD="$BUILD" "${OUTDIR}examples/http/http" "${OUTDIR}examples/kv/kv" \
    >"$LOGS/build-examples.log" 2>&1
[ -x "${OUTDIR}examples/http/http" ] && WHY[goro_http]="" || WHY[goro_http]="examples/http does not build"
[ -x "${OUTDIR}examples/kv/kv" ] && WHY[goro_kv]="" || WHY[goro_kv]="examples/kv does not build"
if has go; then
    WHY[go_nethttp]=$(build_go httpnet)
    WHY[go_raw]=$(build_go httpraw)
    WHY[go_kv]=$(build_go kv)
fi
if has redis; then
    command -v redis-server >/dev/null && WHY[redis]="" || WHY[redis]="redis-server is not installed"
fi
command -v wrk >/dev/null && WRK_WHY="" || WRK_WHY="wrk is not installed"
command -v redis-benchmark >/dev/null && RB_WHY="" || RB_WHY="redis-benchmark is not installed"
GOV=$([ -n "$GO" ] && "$GO" version | awk '{print $3}' || echo none)
REDISV=$(redis-server --version 2>/dev/null | sed -n 's/.* v=\([^ ]*\).*/\1/p')
WRKV=$(wrk -v 2>&1 | head -1 | awk '{print $2}')

label() {
    case $1 in
    goro_http) echo "goro (examples/http)" ;; go_nethttp) echo "Go net/http" ;; go_raw) echo "Go raw net" ;;
    goro_kv) echo "goro (examples/kv)" ;; go_kv) echo "Go twin" ;; redis) echo "redis-server $REDISV" ;;
    esac
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null ||
        echo $((20000 + RANDOM % 30000))
}

# start_server SIDE WORKERS PIN LOG -> sets SPID, SPORT (empty on failure)
start_server() {
    local side=$1 workers=$2 pin=$3 log=$4 bin
    SPID= SPORT=
    local ts=()
    [ -n "$pin" ] && ts=(taskset -c "$pin")
    case $side in
    goro_http) bin=${OUTDIR}examples/http/http ;;
    goro_kv) bin=${OUTDIR}examples/kv/kv ;;
    go_nethttp) bin=$BUILD/bench/go/httpnet ;;
    go_raw) bin=$BUILD/bench/go/httpraw ;;
    go_kv) bin=$BUILD/bench/go/kv ;;
    redis)
        SPORT=$(free_port)
        # exec: $! must be the server itself (its CPU time is read from /proc)
        (exec "${ts[@]}" redis-server --port "$SPORT" --bind 127.0.0.1 --save '' --appendonly no \
            --protected-mode no --daemonize no --logfile "" >"$log" 2>&1) &
        SPID=$!
        for _ in $(seq 100); do
            redis-cli -p "$SPORT" ping >/dev/null 2>&1 && return 0
            sleep 0.05
        done
        kill "$SPID" 2>/dev/null; wait "$SPID" 2>/dev/null; SPID= SPORT=
        return 1 ;;
    esac
    (GORO_PROCS=$workers GOMAXPROCS=$workers exec "${ts[@]}" "$bin" -p 0 >"$log" 2>&1) &
    SPID=$!
    for _ in $(seq 100); do
        SPORT=$(sed -n 's/.*listening on .* port \([0-9]*\).*/\1/p' "$log" | head -1)
        [ -n "$SPORT" ] && return 0
        sleep 0.05
    done
    kill "$SPID" 2>/dev/null; wait "$SPID" 2>/dev/null; SPID= SPORT=
    return 1
}
# CPU time a process has used, all its threads, in clock ticks
TCK=$(getconf CLK_TCK)
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
per_req() { # ticks0 ticks1 requests -> server CPU microseconds per request
    awk -v a="$1" -v b="$2" -v t="$TCK" -v n="$3" 'BEGIN { if (n > 0 && b >= a) printf "%.3f", (b - a) / t * 1e6 / n }'
}

stop_server() {
    [ -n "$SPID" ] || return 0
    kill -TERM "$SPID" 2>/dev/null
    for _ in $(seq 100); do kill -0 "$SPID" 2>/dev/null || break; sleep 0.05; done
    kill -KILL "$SPID" 2>/dev/null
    wait "$SPID" 2>/dev/null
    SPID=
}

# ---- the rows -----------------------------------------------------------------
CSV=$REAL_OUT/real.csv
echo "row,metric,side,run,value,unit,status,detail" >"$CSV"
declare -A VALS ERR
RB_TESTS="PING_INLINE PING_MBULK SET GET INCR MSET"

if [ "$NCPU" -ge 2 ]; then
    PIN_SRV=0 PIN_TOOL=1
    LAYOUT1="1 worker: the server pinned to CPU 0 (taskset -c 0), the load tool to CPU 1"
else
    PIN_SRV= PIN_TOOL=
    LAYOUT1="one CPU: server and load tool share it (nothing pinned)"
fi
LAYOUT2="2 workers: nothing pinned, the server and the load tool share all $NCPU CPUs"

run_row() { # row
    local row=$1 sides workers=1 pin_s=$PIN_SRV pin_t=$PIN_TOOL tool conns=0 pipe=1
    case $row in
    http_wrk_64) sides="goro_http go_nethttp go_raw" conns=64 tool=wrk ;;
    http_wrk_1000) sides="goro_http go_nethttp go_raw" conns=1000 tool=wrk ;;
    kv_p1) sides="goro_kv go_kv redis" pipe=1 tool=rb ;;
    kv_p16) sides="goro_kv go_kv redis" pipe=16 tool=rb ;;
    kv_p16_2w) sides="goro_kv go_kv redis" pipe=16 workers=2 pin_s= pin_t= tool=rb ;;
    esac
    local active=()
    for s in $sides; do
        case $s in go_*) has go || continue ;; redis) has redis || continue ;; esac
        active+=("$s")
        local why=${WHY[$s]:-}
        [ $tool = wrk ] && [ -n "$WRK_WHY" ] && why=$WRK_WHY
        [ $tool = rb ] && [ -n "$RB_WHY" ] && why=$RB_WHY
        ERR[$row.$s]=$why
    done
    ACTIVE[$row]="${active[*]}"
    # requests per redis-benchmark test: a second or two each on this kind
    # of machine (P1 is round-trip bound, P16 is not)
    local n=50000
    [ "$pipe" -gt 1 ] && n=1000000
    for run in $(seq 1 "$RUNS"); do
        local msg
        msg=$(printf '[real] %-14s run %d/%d' "$row" "$run" "$RUNS")
        for s in "${active[@]}"; do
            [ -n "${ERR[$row.$s]}" ] && { msg="$msg  $s FAIL"; continue; }
            local log=$LOGS/real.$row.$s.$run
            local pinned=()
            [ -n "$pin_t" ] && pinned=(taskset -c "$pin_t")
            if ! start_server "$s" "$workers" "$pin_s" "$log.server" ||
                ! grep -qE 'kv|http|redis' "/proc/$SPID/comm" 2>/dev/null; then
                stop_server
                ERR[$row.$s]="run $run: the server did not start (see $log.server)"
                msg="$msg  $s FAIL"
                continue
            fi
            local c0 c1
            c0=$(cpu_ticks "$SPID")
            if [ $tool = wrk ]; then
                timeout -k 5 $((SECS + 30)) "${pinned[@]}" wrk -t1 -c"$conns" -d"${SECS}s" --latency \
                    "http://127.0.0.1:$SPORT/" >"$log.out" 2>&1
                local rps p99 errs
                c1=$(cpu_ticks "$SPID")
                rps=$(awk '/^Requests\/sec:/ { print $2 }' "$log.out")
                p99=$(awk '$1 == "99%" { v = $2; u = v; gsub(/[0-9.]/, "", u); sub(/[a-z]+$/, "", v);
                    if (u == "us") v /= 1000; else if (u == "s") v *= 1000; print v }' "$log.out")
                errs=$(grep -E 'Non-2xx|Socket errors' "$log.out" | tr -s ' ' | tr '\n' ' ')
                if [ -z "$rps" ] || [ -z "$p99" ]; then
                    ERR[$row.$s]="run $run: no figures from wrk (see $log.out)"
                    msg="$msg  $s FAIL"
                elif grep -q 'Non-2xx' "$log.out"; then
                    ERR[$row.$s]="run $run: $errs"
                    msg="$msg  $s FAIL"
                else
                    VALS[$row.rps.$s]="${VALS[$row.rps.$s]:-} $rps"
                    VALS[$row.p99.$s]="${VALS[$row.p99.$s]:-} $p99"
                    local cpu
                    cpu=$(per_req "$c0" "$c1" "$(awk '/ requests in / { print $1; exit }' "$log.out")")
                    [ -n "$cpu" ] && VALS[$row.cpu.$s]="${VALS[$row.cpu.$s]:-} $cpu" &&
                        echo "$row,cpu,$s,$run,$cpu,us/req,ok," >>"$CSV"
                    echo "$row,rps,$s,$run,$rps,req/s,ok,\"$errs\"" >>"$CSV"
                    echo "$row,p99,$s,$run,$p99,ms,ok," >>"$CSV"
                    msg="$msg  $s $(printf '%.0f' "$rps") req/s p99 ${p99}ms"
                fi
            else
                timeout -k 5 300 "${pinned[@]}" redis-benchmark -p "$SPORT" -c 50 -P "$pipe" -n "$n" \
                    -t ping,set,get,incr,mset --csv >"$log.out" 2>"$log.err"
                c1=$(cpu_ticks "$SPID")
                local t v got="" cpu
                # six tests of n requests each (an MSET of 10 keys is one request)
                cpu=$(per_req "$c0" "$c1" $((n * 6)))
                [ -n "$cpu" ] && grep -q MSET "$log.out" && VALS[$row.cpu.$s]="${VALS[$row.cpu.$s]:-} $cpu" &&
                    echo "$row,cpu,$s,$run,$cpu,us/req,ok," >>"$CSV"
                for t in $RB_TESTS; do
                    v=$(awk -F'"' -v t="$t" '$2 == t || ($2 ~ "^" t " ") { print $4; exit }' "$log.out")
                    if [ -z "$v" ]; then
                        ERR[$row.$s]="run $run: no $t figure from redis-benchmark (see $log.out)"
                        continue
                    fi
                    VALS[$row.$t.$s]="${VALS[$row.$t.$s]:-} $v"
                    echo "$row,$t,$s,$run,$v,req/s,ok," >>"$CSV"
                    got="$got $t=$(printf '%.0f' "$v")"
                done
                msg="$msg  $s$got"
            fi
            stop_server
        done
        say "$msg"
    done
}

declare -A ACTIVE
for row in "${ROWS[@]}"; do run_row "$row"; done

# ---- the table --------------------------------------------------------------
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) exit;
    print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
spread() { printf '%s\n' "$@" | sort -g | awk 'NR == 1 { a = $1 } { b = $1 } END { if (NR) printf "%.0f-%.0f", a, b }'; }
cell() { # row metric side
    local k=$1.$2.$3
    if [ -n "${ERR[$1.$3]:-}" ] && [ -z "${VALS[$k]:-}" ]; then echo "FAIL"; return; fi
    # shellcheck disable=SC2086
    [ -n "${VALS[$k]:-}" ] && median ${VALS[$k]} || echo "FAIL"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a + 0 > 0 && b + 0 > 0) printf "%.2fx", a / b; else print "-" }'; }
fmtn() { awk -v v="$1" 'BEGIN { if (v + 0 == v) printf (v >= 1000 ? "%.0f" : "%.2f"), v; else print v }'; }

MD=$REAL_OUT/real.md
{
    echo "## Real clients: wrk and redis-benchmark against the example servers"
    echo
    echo "$(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD 2>/dev/null); $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo), $NCPU CPUs; wrk $WRKV, redis-benchmark and redis-server $REDISV, Go $GOV; median of $RUNS runs a side, alternating; load average $(cut -d' ' -f1-3 /proc/loadavg) at the end."
    echo
    echo "Layout: $LAYOUT1. $LAYOUT2."
    echo
    echo "Ratios are goro's advantage (above 1: goro better): goro's requests/s over the peer's; for p99 and CPU, the peer's over goro's. \"Server CPU per request\" is the server process's user + system time (all its threads, from /proc/PID/stat) over the requests in the run: less noisy than the rates on a shared machine, and it shows what a request costs rather than how much CPU the server could get."
    echo
    for row in "${ROWS[@]}"; do
        read -r -a act <<<"${ACTIVE[$row]}"
        case $row in
        http_wrk_*)
            echo "### $row: \`wrk -t1 -c${row#http_wrk_} -d${SECS}s --latency\`, 1 worker a server"
            echo
            printf '| figure |'; for s in "${act[@]}"; do printf ' %s |' "$(label "$s")"; done
            has go && printf ' goro / net/http | goro / raw net |'
            echo
            printf '|---|'; for _ in "${act[@]}"; do printf -- '---:|'; done; has go && printf -- '---:|---:|'; echo
            for m in rps p99 cpu; do
                case $m in rps) printf '| requests/s |' ;; p99) printf '| p99 latency, ms |' ;;
                cpu) printf '| server CPU per request, us |' ;; esac
                for s in "${act[@]}"; do printf ' %s |' "$(fmtn "$(cell "$row" $m "$s")")"; done
                if has go; then
                    g=$(cell "$row" $m goro_http)
                    if [ $m = rps ]; then
                        printf ' **%s** | **%s** |' "$(ratio "$g" "$(cell "$row" $m go_nethttp)")" "$(ratio "$g" "$(cell "$row" $m go_raw)")"
                    else # lower is better: the peer's over goro's
                        printf ' %s | %s |' "$(ratio "$(cell "$row" $m go_nethttp)" "$g")" "$(ratio "$(cell "$row" $m go_raw)" "$g")"
                    fi
                fi
                echo
            done
            printf '| requests/s min-max |'; for s in "${act[@]}"; do
                # shellcheck disable=SC2086
                printf ' %s |' "$(spread ${VALS[$row.rps.$s]:-})"; done
            has go && printf ' | |'
            echo
            ;;
        kv_*)
            w=1; [ $row = kv_p16_2w ] && w=2
            p=1; case $row in kv_p16*) p=16 ;; esac
            echo "### $row: \`redis-benchmark -c 50 -P $p -t ping,set,get,incr,mset\`, $w worker$([ $w = 2 ] && echo s) a server (redis-server: its one thread)"
            echo
            printf '| command, requests/s |'; for s in "${act[@]}"; do printf ' %s |' "$(label "$s")"; done
            has go && printf ' goro / Go |'
            has redis && printf ' goro / redis-server |'
            echo
            printf '|---|'; for _ in "${act[@]}"; do printf -- '---:|'; done
            has go && printf -- '---:|'; has redis && printf -- '---:|'; echo
            for t in $RB_TESTS; do
                printf '| %s |' "$t"
                for s in "${act[@]}"; do printf ' %s |' "$(fmtn "$(cell "$row" "$t" "$s")")"; done
                g=$(cell "$row" "$t" goro_kv)
                has go && printf ' **%s** |' "$(ratio "$g" "$(cell "$row" "$t" go_kv)")"
                has redis && printf ' **%s** |' "$(ratio "$g" "$(cell "$row" "$t" redis)")"
                echo
            done
            printf '| server CPU per request, us (all six) |'
            for s in "${act[@]}"; do printf ' %s |' "$(fmtn "$(cell "$row" cpu "$s")")"; done
            g=$(cell "$row" cpu goro_kv)
            has go && printf ' %s |' "$(ratio "$(cell "$row" cpu go_kv)" "$g")"
            has redis && printf ' %s |' "$(ratio "$(cell "$row" cpu redis)" "$g")"
            echo
            ;;
        esac
        for s in "${act[@]}"; do
            [ -n "${ERR[$row.$s]:-}" ] && echo && echo "FAIL $row, $(label "$s"): ${ERR[$row.$s]}"
        done
        echo
    done
} >"$MD"
cat "$MD"
say "real: wrote $MD and $CSV"
exit 0
