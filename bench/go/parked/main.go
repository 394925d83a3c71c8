// parked - the Go twin of bench/parked.c: spawn n goroutines that check in on
// one WaitGroup and park on another; RSS plus page tables growth divided
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
	idle := b.Int("idle_ms", 1500)
	time.Sleep(20 * time.Millisecond) // let the runtime settle
	before := b.Mem()
	for i := int64(0); i < n; i++ {
		go sleeper()
	}
	started.Wait()
	// parked for a while, as the C side (goro compacts after 1 s)
	time.Sleep(time.Duration(idle) * time.Millisecond)
	parked := b.Mem()
	if atomic.LoadInt64(&finished) != 0 {
		b.Fail("a goroutine went past its park")
	}
	release.Done()
	done.Wait()
	if f := atomic.LoadInt64(&finished); f != n {
		b.Fail("%d goroutines finished, want %d", f, n)
	}
	b.Info("rss+pte before %d KiB, parked %d KiB", before/1024, parked/1024)
	b.Report(b.Str("name", "parked"), float64(parked-before)/float64(n), "bytes/goroutine")
}
