// mutex - the Go twin of bench/mutex.c: g goroutines each take and release
// one sync.Mutex n/g times around an increment of a shared counter.
// Figure: ns per lock+unlock.
package main

import (
	"sync"

	b "gorobench/benchutil"
)

var (
	per, counter int64
	mu           sync.Mutex
	wg           sync.WaitGroup
)

func worker() {
	for i := int64(0); i < per; i++ {
		mu.Lock()
		counter++
		mu.Unlock()
	}
	wg.Done()
}

func main() {
	b.CheckProcs()
	n := b.Int("n", 4000000)
	g := b.Int("goroutines", 8)
	if g < 1 {
		b.Fail("goroutines must be >= 1")
	}
	per = n / g
	n = per * g
	wg.Add(int(g))
	t0 := b.Now()
	for i := int64(0); i < g; i++ {
		go worker()
	}
	wg.Wait()
	elapsed := b.Now() - t0
	if counter != n {
		b.Fail("counter is %d, want %d", counter, n)
	}
	b.Report(b.Str("name", "mutex"), float64(elapsed)/float64(n), "ns/op")
}
