// Package benchutil is the Go twin of bench/bench.h: the few helpers every Go
// benchmark shares, written to match the C side exactly (same argument syntax,
// same output line, same way of reading RSS).
package benchutil

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
)

var args = map[string]string{}

func init() {
	// Arguments are key=value pairs, as in the C programs.
	for _, a := range os.Args[1:] {
		i := strings.IndexByte(a, '=')
		if i <= 0 {
			Fail("bad argument %q (want key=value)", a)
		}
		args[a[:i]] = a[i+1:]
	}
}

// Int returns argument key as an integer, or def when it is absent.
func Int(key string, def int64) int64 {
	s, ok := args[key]
	if !ok {
		return def
	}
	v, err := strconv.ParseInt(s, 0, 64)
	if err != nil {
		Fail("bad value for %s: %q", key, s)
	}
	return v
}

// Str returns argument key, or def when it is absent.
func Str(key, def string) string {
	if s, ok := args[key]; ok {
		return s
	}
	return def
}

// Now is a monotonic clock in nanoseconds.
var start = time.Now()

func Now() int64 { return int64(time.Since(start)) }

// Report prints one figure: "name value unit".
func Report(name string, value float64, unit string) {
	fmt.Printf("%s %.6g %s\n", name, value, unit)
}

// Info prints a line for humans to stderr; the runner keeps it in the log.
func Info(format string, a ...interface{}) {
	fmt.Fprintf(os.Stderr, "info: "+format+"\n", a...)
}

// Fail reports a wrong result (or a broken run) and exits non-zero, so that a
// fast wrong answer can never be counted.
func Fail(format string, a ...interface{}) {
	fmt.Fprintf(os.Stderr, "FAIL: "+format+"\n", a...)
	os.Exit(1)
}

// CheckProcs fails unless GOMAXPROCS is what the runner asked for.
func CheckProcs() int {
	want := Int("procs", 0)
	got := runtime.GOMAXPROCS(0)
	if want > 0 && int64(got) != want {
		Fail("GOMAXPROCS is %d, the runner asked for %d", got, want)
	}
	return got
}

// RSS is the resident set size in bytes, from /proc/self/statm (the C side
// reads the same file the same way).
// Mem is the resident set plus the page tables (VmPTE), as bench_mem.
func Mem() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		Fail("read /proc/self/status: %v", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmPTE:") {
			f := strings.Fields(line)
			kb, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				Fail("bad VmPTE line %q", line)
			}
			return RSS() + kb*1024
		}
	}
	Fail("no VmPTE in /proc/self/status")
	return 0
}

func RSS() int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		Fail("read /proc/self/statm: %v", err)
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		Fail("bad /proc/self/statm")
	}
	pages, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		Fail("bad /proc/self/statm")
	}
	return pages * int64(os.Getpagesize())
}
