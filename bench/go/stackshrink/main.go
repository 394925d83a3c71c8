// stackshrink - the Go twin of bench/stackshrink.c: n goroutines each recurse
// through 1 KiB frames to depth bytes once, return and park on a WaitGroup;
// after idle_ms and two runtime.GC calls (Go shrinks stacks at collection),
// the growth of RSS plus page tables divided by n. Figure: bytes per goroutine.
package main

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	b "gorobench/benchutil"
)

const frame = 1024

var (
	depth                 int64
	want                  uint64
	parked, release, done sync.WaitGroup
	bad, finished         int64
)

//go:noinline
func recurse(d uint32) uint64 {
	var buf [frame]byte
	buf[d%frame] = byte(d)
	if d == 0 {
		return 0
	}
	r := recurse(d - 1)
	return r + uint64(buf[d%frame])
}

func deep() {
	if recurse(uint32(depth)) != want {
		atomic.AddInt64(&bad, 1)
	}
	parked.Done()
	release.Wait()
	atomic.AddInt64(&finished, 1)
	done.Done()
}

func main() {
	b.CheckProcs()
	n := b.Int("n", 10000)
	depth = b.Int("depth", 1<<20) / frame
	idle := b.Int("idle_ms", 1500)
	for d := int64(1); d <= depth; d++ {
		want += uint64(d & 0xff)
	}
	parked.Add(int(n))
	release.Add(1)
	done.Add(int(n))
	time.Sleep(20 * time.Millisecond)
	before := b.Mem()
	for i := int64(0); i < n; i++ {
		go deep()
	}
	parked.Wait()
	deepMem := b.Mem()
	time.Sleep(time.Duration(idle) * time.Millisecond)
	runtime.GC()
	runtime.GC()
	after := b.Mem()
	release.Done()
	done.Wait()
	if bad != 0 {
		b.Fail("%d recursions returned a wrong checksum", bad)
	}
	if f := atomic.LoadInt64(&finished); f != n {
		b.Fail("%d goroutines finished, want %d", f, n)
	}
	b.Info("rss+pte before %d KiB, deep %d KiB, parked %d KiB", before/1024, deepMem/1024, after/1024)
	b.Report(b.Str("name", "stackshrink"), float64(after-before)/float64(n), "bytes/goroutine")
}
