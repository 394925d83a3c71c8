#!/usr/bin/env bash
# tests/readme_example.sh - the README's "A complete example", as a newcomer
# follows it: the C program in the README's ```c block saved as squares.c,
# then the README's ```sh block that follows it run line by line as
# written, with HOME a fresh temporary directory (so `make install
# PREFIX=$HOME/.local` installs into a private prefix the loader does not
# search). Passes when ./squares prints the sum the example promises.
# Usage: tests/readme_example.sh [BUILD]  (the Makefile's BUILD, relative to
# the source tree; run from anywhere)
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
export BUILD=${1:-build}        # the Makefile's BUILD ?= build
unset MAKEFLAGS MFLAGS MAKELEVEL PKG_CONFIG_PATH
tmp=$(mktemp -d /tmp/goro-readme.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
export HOME=$tmp/home
mkdir -p "$HOME" "$tmp/work"
# The example: the first ```c block after the heading, and the ```sh block
# after it.
awk '/^## A complete example/ { on = 1 } on && /^```c$/ { c = 1; next }
     c && /^```$/ { exit } c { print }' "$src/README.md" > "$tmp/work/squares.c"
awk '/^## A complete example/ { on = 1 } on && /^```sh$/ { s = 1; next }
     s && /^```$/ { exit } s { print }' "$src/README.md" > "$tmp/steps.sh"
[ -s "$tmp/work/squares.c" ] && [ -s "$tmp/steps.sh" ] || { echo "README: example not found"; exit 1; }
grep -q '^make install' "$tmp/steps.sh" || { echo "README: no make install step"; exit 1; }
echo "== the README's steps:"; cat "$tmp/steps.sh"
# A sanitizer build's library needs its runtime in the program too
# (GORO_SANFLAGS, from the Makefile's SANFLAGS): cc gets the flag.
# make gets the build's SAN as well: in that BUILD, a make without it
# would rebuild whatever is out of date uninstrumented beside the rest.
if [ -n "${GORO_SANFLAGS:-}" ]; then
    cc() { command cc $GORO_SANFLAGS "$@"; }
    export SAN=${GORO_SANFLAGS#-fsanitize=}
fi
# make runs in the source tree, the rest where squares.c is, as a reader
# would (cd back and forth is not written in the README).
while IFS= read -r line; do
    [ -n "$line" ] || continue
    case $line in
    make\ *) (cd "$src" && eval "$line") > "$tmp/make.log" 2>&1 ||
                 { cat "$tmp/make.log"; echo "FAILED: $line"; exit 1; } ;;
    *) (cd "$tmp/work" && eval "$line") 2>&1 | tee -a "$tmp/out" ||
                 { echo "FAILED: $line"; exit 1; }
    esac
done < "$tmp/steps.sh"
grep -q 'sum of squares 1..1000 = 333833500' "$tmp/out" ||
    { echo "FAILED: ./squares did not print the promised sum"; exit 1; }
# Nothing is bound lazily, at a first call on a goroutine's stack (README
# rule 5): goro.pc links the program with -z now, and libgoro.so is built
# with it and -fno-plt.
readelf -d "$tmp/work/squares" | grep -Eq 'BIND_NOW|FLAGS_1.*NOW' ||
    { echo "FAILED: squares is not linked with -z now (goro.pc)"; exit 1; }
if readelf -r "$HOME/.local/lib/libgoro.so" | grep -q JUMP_SLOT; then
    echo "FAILED: libgoro.so calls through lazily bound PLT slots"; exit 1
fi
echo "README example: OK"
