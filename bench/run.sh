#!/usr/bin/env bash
# bench/run.sh - run every benchmark on goro and on Go, side by side, and
# compare. `make bench` calls it after installing Go and gnuplot.
#
#   BENCH=quick        3 alternating runs of each pair (the default, < 5 min)
#   BENCH=full         10 alternating runs of each pair
#   BENCH_ONLY=a,b     only these benchmarks (ids from the list below, or a
#                      program name such as pingpong); results then go to
#                      bench/out/ so the committed ones stay whole
#   BENCH_RUNS=n       override the number of runs
#   GORO_PROCS=n       worker threads (default: online CPUs); Go gets the
#                      same number as GOMAXPROCS
#   BENCH_TIMEOUT=s    kill a run after s seconds (default 120)
#
# Each benchmark is bench/<prog>.c on goro and bench/go/<prog>/main.go in Go,
# given the same key=value arguments. Each prints "name value unit" and exits
# 0, or prints "FAIL: why" and exits 1 when its own check of the result fails.
# A pair runs goro, Go, goro, Go, ...; the table shows medians, the ratio
# (goro's advantage: >1 means goro is better, whichever the unit's direction),
# the bar from DESIGN.md and the min-max spread. A benchmark whose C side does
# not build, crashes, hangs or checks wrong is FAIL; the rest carry on.
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
WORK=bench/out
OUT=bench
[ -n "$ONLY" ] && OUT=$WORK
LOGS=$WORK/logs
rm -rf "$LOGS"
mkdir -p "$LOGS" "$BUILD/bench/go" || exit 1

# ---------------------------------------------------------------------------
# The benchmarks: id | program | workers | arguments (both sides) | bar
# [| runs in quick mode]. workers: a number, or P for $PROCS. bar: the goro/Go
# ratio DESIGN.md asks for ("-": none), or "abs:BYTES" for an absolute ceiling
# on goro's figure. parked_1m runs once per side in quick mode: it takes the
# longest by far, and its figure (bytes per goroutine) is the same to the
# byte from run to run.
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
"parked_100k|parked|P|n=100000|abs:$((PAGE + 256))"
"parked_1m|parked|P|n=1000000|abs:$((PAGE + 256))|1"
"stack_64m|stackgrow|P|goroutines=1 target=67108864 reps=5|1"
"stack_10k_256k|stackgrow|P|goroutines=10000 target=262144 reps=3|1"
"tcp_echo_64|tcpecho|P|conns=64 rts=2000 msg=64 secs=10|1"
"rwmutex_read_heavy|rwmutex|2|n=4000000 goroutines=8 write_pct=10|-"
"ticker_10k_1ms|ticker|2|tickers=10000 period_ms=1 ticks=20|-"
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
if [ ${#selected[@]} -eq 0 ]; then
    echo "bench: BENCH_ONLY=$ONLY matches nothing; benchmarks are:" >&2
    for b in "${BENCHES[@]}"; do echo "  ${b%%|*}" >&2; done
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

# ---------------------------------------------------------------------------
# Build. The C side through the Makefile (the library's normal flags), one
# program at a time, so one that does not build is a FAIL, not a stop. The Go
# side with go build, offline, caches under $BUILD.
# ---------------------------------------------------------------------------
declare -A CBUILD GOBUILD
progs=()
for b in "${selected[@]}"; do
    IFS='|' read -r _ prog _ <<<"$b"
    case " ${progs[*]} " in *" $prog "*) ;; *) progs+=("$prog") ;; esac
done

say "bench: building the library and ${#progs[@]} C programs (logs in $LOGS/)"
if $MAKE --no-print-directory BUILD="$BUILD" "$BUILD/libgoro.a" >"$LOGS/build-libgoro.log" 2>&1; then
    libok=1
else
    libok=0
    libwhy=$(grep -v '^cc \|^gcc \|^clang \|^make' "$LOGS/build-libgoro.log" | grep -m1 'error' | cut -c1-100)
    say "bench: the library does not build: every C side is FAIL (see $LOGS/build-libgoro.log)"
    [ -n "$libwhy" ] && say "  $libwhy"
fi
for prog in "${progs[@]}"; do
    # the Makefile's pattern rule does not know about bench.h
    [ bench/bench.h -nt "$BUILD/bench/$prog" ] && rm -f "$BUILD/bench/$prog"
    if [ $libok = 0 ]; then
        CBUILD[$prog]="libgoro.a does not build${libwhy:+: $libwhy}"
    elif $MAKE --no-print-directory BUILD="$BUILD" "$BUILD/bench/$prog" >"$LOGS/build-c-$prog.log" 2>&1; then
        CBUILD[$prog]=ok
    else
        why=$(grep -o "undefined reference to \`[a-z_0-9]*'" "$LOGS/build-c-$prog.log" |
            sed "s/.*\`//; s/'//" | sort -u | tr '\n' ' ' | sed 's/ $//')
        if [ -n "$why" ]; then
            why="undefined: $why"
        else
            why=$(grep -m1 -E 'error:' "$LOGS/build-c-$prog.log" | cut -c1-100)
        fi
        CBUILD[$prog]="does not build (${why:-see $LOGS/build-c-$prog.log})"
        say "bench: C $prog does not build: ${why:-see $LOGS/build-c-$prog.log}"
    fi
done

GO=$(command -v go || true)
[ -z "$GO" ] && [ -x /usr/lib/go/bin/go ] && GO=/usr/lib/go/bin/go
export GOCACHE="$BABS/go-cache" GOPATH="$BABS/gopath" GOFLAGS=-mod=mod \
    GOPROXY=off GO111MODULE=on GOENV=off GOTOOLCHAIN=local CGO_ENABLED=0
GOVERSION=$([ -n "$GO" ] && "$GO" version | awk '{print $3}' || echo none)
say "bench: building ${#progs[@]} Go programs with ${GOVERSION}"
for prog in "${progs[@]}"; do
    if [ -z "$GO" ]; then
        GOBUILD[$prog]="go is not installed"
    elif (cd bench/go && "$GO" build -o "$BABS/bench/go/$prog" "./$prog") >"$LOGS/build-go-$prog.log" 2>&1; then
        GOBUILD[$prog]=ok
    else
        GOBUILD[$prog]="does not build: $(head -c 70 "$LOGS/build-go-$prog.log" | head -1)"
        say "bench: Go $prog does not build (see $LOGS/build-go-$prog.log)"
    fi
done

# ---------------------------------------------------------------------------
# Run. run_one SIDE ID PROG WORKERS ARGS RUN -> sets R_VAL R_UNIT R_ERR
# ---------------------------------------------------------------------------
CSV=$WORK/results.csv.tmp
echo "benchmark,side,run,value,unit,status,detail" >"$CSV"

run_one() {
    local side=$1 id=$2 prog=$3 workers=$4 args=$5 run=$6
    local log=$LOGS/$id.$side.$run rc line
    R_VAL= R_UNIT= R_ERR= R_BARE=
    if [ "$side" = goro ]; then
        # shellcheck disable=SC2086
        GORO_PROCS=$workers timeout -k 5 "$TMO" "$BUILD/bench/$prog" name="$id" procs="$workers" $args \
            >"$log.out" 2>"$log.err"
    else
        # shellcheck disable=SC2086
        GOMAXPROCS=$workers timeout -k 5 "$TMO" "$BUILD/bench/go/$prog" name="$id" procs="$workers" $args \
            >"$log.out" 2>"$log.err"
    fi
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
        R_BARE=$(awk '$1 == "bare_switch" { print $2; exit }' "$log.out")
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

# results per benchmark and side: space-separated values, unit, failure
declare -A VALS UNIT ERR NRUNS
total=${#selected[@]}
i=0
T0=$(date +%s)
LOAD0=$(cut -d' ' -f1 /proc/loadavg)
say "bench: $MODE, $RUNS runs per side, $PROCS workers (goro: GORO_PROCS, Go: GOMAXPROCS), timeout ${TMO}s"
for b in "${selected[@]}"; do
    IFS='|' read -r id prog workers args bar qruns <<<"$b"
    i=$((i + 1))
    [ "$workers" = P ] && workers=$PROCS
    runs=$RUNS
    [ "$MODE" = quick ] && [ -n "$qruns" ] && [ -z "${BENCH_RUNS:-}" ] && runs=$qruns
    NRUNS[$id]=$runs
    VALS[$id.goro]= VALS[$id.go]= UNIT[$id]=
    [ "${CBUILD[$prog]}" = ok ] && ERR[$id.goro]= || ERR[$id.goro]="C ${CBUILD[$prog]}"
    [ "${GOBUILD[$prog]}" = ok ] && ERR[$id.go]= || ERR[$id.go]="Go ${GOBUILD[$prog]}"
    for run in $(seq 1 "$runs"); do
        msg=$(printf '[%2d/%d] %-18s run %d/%d ' "$i" "$total" "$id" "$run" "$runs")
        for side in goro go; do
            label=goro; [ $side = go ] && label=Go
            if [ -n "${ERR[$id.$side]}" ]; then
                msg="$msg  $label FAIL"
                continue
            fi
            run_one "$side" "$id" "$prog" "$workers" "$args" "$run"
            if [ -n "$R_ERR" ]; then
                ERR[$id.$side]="run $run: $R_ERR"
                msg="$msg  $label FAIL ($R_ERR)"
            else
                VALS[$id.$side]="${VALS[$id.$side]} $R_VAL"
                UNIT[$id]=$R_UNIT
                [ -n "$R_BARE" ] && VALS[$id.bare]="${VALS[$id.bare]:-} $R_BARE"
                msg="$msg  $label $(printf '%.4g' "$R_VAL") $R_UNIT"
            fi
        done
        say "$msg   ($(($(date +%s) - T0))s)"
    done
done
ELAPSED=$(($(date +%s) - T0))
LOAD1=$(cut -d' ' -f1 /proc/loadavg)

# ---------------------------------------------------------------------------
# Summarise: median, min, max; ratio as goro's advantage.
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

ROWS=$WORK/rows.tsv # id, goro med, Go med, unit, ratio, verdict, bar, bar met, goro spread, Go spread
CHART=$WORK/chart.dat
: >"$ROWS"
FAILS=$WORK/fails.tsv # id, side, why
: >"$FAILS"
: >"$CHART"
n=0
for b in "${selected[@]}"; do
    IFS='|' read -r id prog workers args bar _ <<<"$b"
    n=$((n + 1))
    unit=${UNIT[$id]:-}
    dir=$(direction "${unit:-ns/op}")
    gm=FAIL cm=FAIL gs=- cs=- ratio= verdict=FAIL
    # shellcheck disable=SC2086
    if [ -z "${ERR[$id.goro]}" ] && [ -n "${VALS[$id.goro]}" ]; then
        read -r cmed cmin cmax <<<"$(stats ${VALS[$id.goro]})"
        cm="$(fmt "$cmed") $unit"; cs="$(fmt "$cmin")-$(fmt "$cmax")"
    else cmed=; cm="FAIL"; fi
    # shellcheck disable=SC2086
    if [ -z "${ERR[$id.go]}" ] && [ -n "${VALS[$id.go]}" ]; then
        read -r gmed gmin gmax <<<"$(stats ${VALS[$id.go]})"
        gm="$(fmt "$gmed") $unit"; gs="$(fmt "$gmin")-$(fmt "$gmax")"
    else gmed=; gm="FAIL"; fi
    if [ "${NRUNS[$id]}" != "$RUNS" ]; then
        [ "$cs" != - ] && cs="$cs (${NRUNS[$id]} run$([ "${NRUNS[$id]}" = 1 ] || echo s))"
        [ "$gs" != - ] && gs="$gs (${NRUNS[$id]} run$([ "${NRUNS[$id]}" = 1 ] || echo s))"
    fi
    case $unit in bytes/*) better=smaller worse=larger ;; *) better=faster worse=slower ;; esac
    if [ -n "$cmed" ] && [ -n "$gmed" ]; then
        ratio=$(awk -v c="$cmed" -v g="$gmed" -v d="$dir" 'BEGIN { printf "%.4f", (d == "lower") ? g / c : c / g }')
        verdict=$(awk -v r="$ratio" -v b="$better" -v w="$worse" 'BEGIN {
            if (r >= 1) printf "goro %.2fx %s", r, b; else printf "goro %.2fx %s", 1 / r, w }')
    else
        verdict="FAIL"
        [ -z "$cmed" ] && verdict="$verdict goro" && printf '%s\tgoro\t%s\n' "$id" "${ERR[$id.goro]:-no result}" >>"$FAILS"
        [ -z "$gmed" ] && verdict="$verdict Go" && printf '%s\tGo\t%s\n' "$id" "${ERR[$id.go]:-no result}" >>"$FAILS"
        verdict=$(sed 's/L goro Go$/L goro, Go/; s/^FAIL /FAIL: /' <<<"$verdict")
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
            [ -n "$gmed" ] && barmark=$(awk -v g="$gmed" -v l="$lim" 'BEGIN { printf "%.4f", g / l }')
        else met=""; fi ;;
    *)
        bartxt="${bar}x"
        barmark=$bar
        if [ -n "$ratio" ]; then
            met=$(awk -v r="$ratio" -v b="$bar" 'BEGIN { print (r >= b) ? "met" : "MISSED" }')
        else met=""; fi ;;
    esac
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$id" "$cm" "$gm" "$unit" "${ratio:-}" \
        "$verdict" "$bartxt" "$met" "$cs" "$gs" >>"$ROWS"
    printf '%d\t"%s"\t%s\t%s\t%s\t"%s"\n' "$n" "$id" "${ratio:-NaN}" "$barmark" \
        "$([ -n "$ratio" ] && echo ok || echo FAIL)" "$([ "$bartxt" = - ] || echo "bar $bartxt")" >>"$CHART"
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

# The table, for the terminal and for RESULTS.md.
table_text() {
    awk -F'\t' 'BEGIN {
        f = "%-18s %22s %22s  %-19s %-15s %-22s %s\n"
        printf f, "benchmark", "goro median", "Go median", "goro vs Go", "bar", "goro min-max", "Go min-max"
        printf f, "---------", "-----------", "---------", "----------", "---", "------------", "----------"
    } {
        bar = $7; if ($8 != "") bar = bar " " $8
        printf f, $1, $2, $3, $6, bar, $9, $10
    }' "$ROWS"
    [ -n "$BARE_LINE" ] && echo && echo "$BARE_LINE"
    [ -s "$FAILS" ] && echo && awk -F'\t' '{ printf "FAIL %s (%s): %s\n", $1, $2, $3 }' "$FAILS"
}
table_md() {
    echo "| benchmark | goro median | Go median | goro vs Go | bar (DESIGN.md) | goro min-max | Go min-max |"
    echo "|---|---:|---:|---|---|---:|---:|"
    awk -F'\t' '{
        v = $6
        if ($5 != "") v = "**" v "** (" sprintf("%.2f", $5) ")"
        bar = $7; if ($8 == "met") bar = bar " met"; else if ($8 == "MISSED") bar = bar " **missed**"
        printf "| %s | %s | %s | %s | %s | %s | %s |\n", $1, $2, $3, v, bar, $9, $10
    }' "$ROWS"
    [ -n "$BARE_LINE" ] && echo && echo "$BARE_LINE" | sed 's/MISSED$/**missed**/'
    if [ -s "$FAILS" ]; then
        echo
        echo "Failures:"
        echo
        awk -F'\t' '{ gsub(/\|/, "\\|", $3); printf "- %s, %s side: %s\n", $1, $2, $3 }' "$FAILS"
    fi
}

CPU=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
KERNEL=$(uname -sr)
DATE=$(date -u '+%Y-%m-%d %H:%M UTC')
COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo none)
[ -n "$(git status --porcelain -- runtime netpoll include 2>/dev/null)" ] && COMMIT="$COMMIT (+ uncommitted changes)"
CCV=$(${CC:-cc} --version 2>/dev/null | head -1)
MACHINE="${CPU:-unknown CPU}, $NCPU cores, $KERNEL, $GOVERSION, $CCV"

echo
echo "goro vs Go: $MODE, $RUNS runs per side, $PROCS workers; $MACHINE; $DATE; load $LOAD0 -> $LOAD1"
echo
table_text
echo

# The chart.
PNG=$OUT/ratios.png
if command -v gnuplot >/dev/null 2>&1; then
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
    [ "$nlt" -gt 0 ] && PLOT="$PLOT, '' using (\$3 < 1 ? \$3 : 1/0):1:3:(1):(\$1-0.35):(\$1+0.35) with boxxyerror lc rgb '#cd5c5c' title 'Go better'"
    [ "$nbar" -gt 0 ] && PLOT="$PLOT, '' using 4:(\$1-0.42):(0):(0.84) with vectors nohead lw 5 lc rgb '#1f3fbf' title 'bar from DESIGN.md'"
    # a value label goes past its bar's mark when the mark is just beyond the box
    [ "$nge" -gt 0 ] && PLOT="$PLOT, '' using (\$3 >= 1 ? ((strcol(4) ne 'NaN' && \$4 > \$3 && \$4 < \$3 * 1.4) ? \$4 : \$3) * 1.04 : 1/0):1:(sprintf('%.2fx', \$3)) with labels left font ',10' notitle"
    [ "$nlt" -gt 0 ] && PLOT="$PLOT, '' using (\$3 < 1 ? ((strcol(4) ne 'NaN' && \$4 < \$3 && \$4 > \$3 / 1.4) ? \$4 : \$3) / 1.04 : 1/0):1:(sprintf('%.2fx', \$3)) with labels right font ',10' notitle"
    [ "$nfail" -gt 0 ] && PLOT="$PLOT, '' using (strcol(5) eq 'FAIL' ? 1.04 : 1/0):1:('FAIL') with labels left font ',11' tc rgb '#cc0000' notitle"
    cat >"$WORK/chart.gp" <<EOF
set terminal $term
set output '$PNG'
set datafile separator '\t'
set title "goro vs Go: how many times better goro is  (Go's time / goro's; for a rate, goro's / Go's)\n{/*0.8 $MODE: median of $RUNS runs, $PROCS workers; $MACHINE; $DATE}"
set logscale x 2
set xrange [$ymin:$ymax]
set xtics ("0.125x" 0.125, "0.25x" 0.25, "0.5x" 0.5, "1x" 1, "2x" 2, "3x" 3, "5x" 5, "10x" 10, "20x" 20, "50x" 50, "100x" 100)
set xlabel "goro's advantage (log scale): right of 1x goro is better, left of it Go is"
set yrange [$n.6:0.4]
set ytics nomirror noenhanced
set grid xtics lc rgb "#dddddd"
set key above horizontal
set style fill solid 0.85 border lc rgb "#333333"
set arrow 1 from first 1, graph 0 to first 1, graph 1 nohead lw 2 lc rgb "#000000"
set lmargin 30
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
{
    echo "# goro vs Go: benchmark results"
    echo
    echo "Written by \`make bench\` (\`bench/run.sh\`); do not edit by hand."
    echo
    echo "- Machine: ${CPU:-unknown CPU}, $NCPU cores; $KERNEL; load average $LOAD0 when the runs began, $LOAD1 when they ended (above the core count, other work shared the CPUs and the figures are noisier)"
    echo "- Go: $GOVERSION (GOMAXPROCS = goro's worker count); C: $CCV, the library's own flags"
    echo "- Date: $DATE; goro commit $COMMIT"
    echo "- Mode: BENCH=$MODE${ONLY:+, BENCH_ONLY=$ONLY}: $RUNS runs per side, alternating goro, Go, goro, Go, ...; $PROCS workers unless the benchmark says 1 or 2; ${ELAPSED}s in all"
    echo
    echo "The ratio is goro's advantage over Go: Go's time divided by goro's (or goro's rate"
    echo "divided by Go's), so above 1 goro is better and below 1 Go is better, whatever the unit."
    echo "A bar is the ratio DESIGN.md asks for (for parked memory: an absolute ceiling)."
    echo "FAIL means that side did not build, crashed, hung, or its own check of the result failed."
    echo
    table_md
    echo
    [ -n "$PNG" ] && echo "![ratios](ratios.png)" && echo
    echo "Every run: [results.csv](results.csv)."
    echo
    cat <<'EOF'
## What each benchmark does (the same on both sides)

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
| tcp_echo_64 | echo server and 64 clients in one process on 127.0.0.1, 2,000 round trips of 64 bytes each (10 s cap) | round trips per second | every echo equals what was sent; server bytes = client bytes |
| rwmutex_read_heavy | 8 goroutines on 2 workers, 4,000,000 operations on one RWMutex, 10% writes (the same xorshift choice on both sides) | ns per operation | counter = number of writes |
| ticker_10k_1ms | 10,000 goroutines, each with a 1 ms ticker, each receiving 20 ticks (10 million ticks a second asked: slow receivers' ticks are dropped) | process CPU ns per tick received | no ticker got its ticks faster than the period (none queued) |
| local_get | goroutine-local get (`goro_local_get`) n times; Go, which has none, reads a `context.Context` value instead | ns per get | sum of the values read |
EOF
    echo
    echo "## Parameters of this run (both sides get the same key=value arguments)"
    echo
    echo "| benchmark | program | workers | arguments | runs per side |"
    echo "|---|---|---|---|---|"
    for b in "${selected[@]}"; do
        IFS='|' read -r id prog workers args _ <<<"$b"
        [ "$workers" = P ] && workers=$PROCS
        echo "| $id | \`bench/$prog.c\`, \`bench/go/$prog/main.go\` | $workers | \`$args\` | ${NRUNS[$id]} |"
    done
} >"$OUT/RESULTS.md"

say "bench: wrote $OUT/RESULTS.md, $OUT/results.csv${PNG:+, $PNG} (${ELAPSED}s)"
exit 0
