// parked - the Go twin of bench/parked.c: spawn n goroutines that check in on
// one WaitGroup and park on another; RSS growth (/proc/self/statm) divided
// by n. Figure: bytes per goroutine.
package main

import (
	"sync"
	"sync/atomic"
	"time"

	b "gorobench/benchutil"
)

var (
	started, release, done sync.WaitGroup
	finished               int64
)

func sleeper() {
	started.Done()
	release.Wait()
	atomic.AddInt64(&finished, 1)
	done.Done()
}

func main() {
	b.CheckProcs()
	n := b.Int("n", 100000)
	started.Add(int(n))
	release.Add(1)
	done.Add(int(n))
	time.Sleep(20 * time.Millisecond) // let the runtime settle
	before := b.RSS()
	for i := int64(0); i < n; i++ {
		go sleeper()
	}
	started.Wait()
	time.Sleep(20 * time.Millisecond) // the last ones reach their park
	parked := b.RSS()
	if atomic.LoadInt64(&finished) != 0 {
		b.Fail("a goroutine went past its park")
	}
	release.Done()
	done.Wait()
	if f := atomic.LoadInt64(&finished); f != n {
		b.Fail("%d goroutines finished, want %d", f, n)
	}
	b.Info("rss before %d KiB, parked %d KiB", before/1024, parked/1024)
	b.Report(b.Str("name", "parked"), float64(parked-before)/float64(n), "bytes/goroutine")
}
