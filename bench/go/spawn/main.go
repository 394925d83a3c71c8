// spawn - the Go twin of bench/spawn.c: spawn n goroutines from one, each
// adds one to a counter and signals a WaitGroup; join them all.
// Figure: ns per goroutine.
package main

import (
	"sync"
	"sync/atomic"

	b "gorobench/benchutil"
)

var (
	counter int64
	wg      sync.WaitGroup
)

func child() {
	atomic.AddInt64(&counter, 1)
	wg.Done()
}

func main() {
	b.CheckProcs()
	n := b.Int("n", 1000000)
	t0 := b.Now()
	wg.Add(int(n))
	for i := int64(0); i < n; i++ {
		go child()
	}
	wg.Wait()
	elapsed := b.Now() - t0
	if c := atomic.LoadInt64(&counter); c != n {
		b.Fail("%d goroutines ran, want %d", c, n)
	}
	b.Report(b.Str("name", "spawn_join"), float64(elapsed)/float64(n), "ns/op")
}
