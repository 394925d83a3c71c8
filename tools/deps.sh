#!/usr/bin/env bash
# tools/deps.sh - install what the build needs on Debian, when it is missing.
# Usage: tools/deps.sh build|test|bench
# As root it runs apt-get; otherwise it prints the exact command to run.
set -eu
what=${1:-build}
pkgs=()
[ -f /usr/include/atomic_ops.h ] || pkgs+=(libatomic-ops-dev)
command -v pkg-config >/dev/null 2>&1 || pkgs+=(pkg-config)
if [ "$what" = test ] || [ "$what" = bench ]; then
    [ -f /usr/include/criterion/criterion.h ] || pkgs+=(libcriterion-dev)
fi
if [ "$what" = bench ]; then
    command -v go >/dev/null 2>&1 || pkgs+=(golang-go)
    command -v gnuplot >/dev/null 2>&1 || pkgs+=(gnuplot-nox)
fi
[ ${#pkgs[@]} -eq 0 ] && exit 0
echo "goro: missing packages: ${pkgs[*]}" >&2
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >&2
else
    echo "goro: run as root:  apt-get update && apt-get install -y ${pkgs[*]}" >&2
    exit 1
fi
