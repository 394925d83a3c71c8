#!/usr/bin/env bash
# tools/deps.sh - install what the build needs on Debian, when it is missing.
# Usage: tools/deps.sh build|test|bench|valgrind
# As root it runs apt-get; otherwise it prints the exact command to run.
# test: redis-cli too (test_kv). bench: the peers too (Go, Rust's cargo and
# Tokio, Boost.Fiber), unless BENCH_SIDES leaves them out, and wrk,
# redis-benchmark and redis-server for the real-clients rows.
set -eu
what=${1:-build}
pkgs=() # required
opt=()  # wanted by `bench` only: the peers and gnuplot
[ -f /usr/include/atomic_ops.h ] || pkgs+=(libatomic-ops-dev)
command -v pkg-config >/dev/null 2>&1 || pkgs+=(pkg-config)
# Valgrind's client-request header (runtime/annotate.c): Debian ships it in
# the valgrind package, which `make valgrind` runs too
[ -f /usr/include/valgrind/valgrind.h ] || pkgs+=(valgrind)
if [ "$what" = valgrind ]; then
    command -v valgrind >/dev/null 2>&1 || pkgs+=(valgrind)
    [ -f /usr/include/criterion/criterion.h ] || pkgs+=(libcriterion-dev)
fi
if [ "$what" = test ] || [ "$what" = bench ]; then
    [ -f /usr/include/criterion/criterion.h ] || pkgs+=(libcriterion-dev)
    command -v gdb >/dev/null 2>&1 || pkgs+=(gdb)   # tests/test_gdb.c
fi
if [ "$what" = test ]; then
    # test_kv drives examples/kv with the stock redis-cli
    command -v redis-cli >/dev/null 2>&1 || pkgs+=(redis-tools)
fi
if [ "$what" = bench ]; then
    # the peers bench/run.sh compares goro with, and gnuplot for its chart:
    # wanted, not required (a peer that is missing is FAIL in its column,
    # the run goes on); BENCH_SIDES=goro,go skips Tokio and Boost.Fiber
    sides=",${BENCH_SIDES:-goro,go,tokio,boost_fiber},"
    case $sides in *,go,*)
        command -v go >/dev/null 2>&1 || [ -x /usr/lib/go/bin/go ] || opt+=(golang-go) ;;
    esac
    case $sides in *,tokio,*)
        # the machine's cargo (rustup's) builds Tokio from the crate
        # registry; without one, Debian's cargo, whose rustc is too old for
        # the registry's Tokio, builds against Debian's librust-tokio-dev
        if ! command -v cargo >/dev/null 2>&1 && [ ! -x "${HOME:-/nonexistent}/.cargo/bin/cargo" ]; then
            opt+=(cargo)
            [ -d /usr/share/cargo/registry ] && ls -d /usr/share/cargo/registry/tokio-1.* >/dev/null 2>&1 ||
                opt+=(librust-tokio-dev)
        fi ;;
    esac
    case $sides in *,boost_fiber,*)
        command -v "${CXX:-g++}" >/dev/null 2>&1 || opt+=(g++)
        [ -f /usr/include/boost/fiber/all.hpp ] || opt+=(libboost-fiber-dev) ;;
    esac
    command -v gnuplot >/dev/null 2>&1 || opt+=(gnuplot-nox)
    # the real-clients section: the load tools and the server people run
    # (bench/real.sh; a missing one is FAIL in its rows)
    command -v wrk >/dev/null 2>&1 || opt+=(wrk)
    command -v redis-benchmark >/dev/null 2>&1 || opt+=(redis-tools)
    command -v redis-server >/dev/null 2>&1 || opt+=(redis-server)
fi
[ ${#pkgs[@]} -eq 0 ] && [ ${#opt[@]} -eq 0 ] && exit 0
root=0
[ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && root=1
export DEBIAN_FRONTEND=noninteractive
if [ ${#pkgs[@]} -gt 0 ]; then
    echo "goro: missing packages: ${pkgs[*]}" >&2
    if [ $root = 1 ]; then
        apt-get update -qq >&2
        apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >&2
    else
        echo "goro: run as root:  apt-get update && apt-get install -y ${pkgs[*]} ${opt[*]}" >&2
        exit 1
    fi
fi
if [ ${#opt[@]} -gt 0 ]; then
    echo "goro: missing packages for the benchmark peers: ${opt[*]}" >&2
    if [ $root = 1 ]; then
        { [ ${#pkgs[@]} -gt 0 ] || apt-get update -qq >&2; } &&
            apt-get install -y -qq --no-install-recommends "${opt[@]}" >&2 ||
            echo "goro: could not install ${opt[*]}: those sides will be FAIL" >&2
    else
        echo "goro: run as root:  apt-get update && apt-get install -y ${opt[*]}" >&2
        echo "goro: (going on: those sides will be FAIL)" >&2
    fi
fi
exit 0
