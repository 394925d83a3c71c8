// rwmutex - the Go twin of bench/rwmutex.c: g goroutines share one
// sync.RWMutex; each makes n/g operations, write_pct percent of them writes,
// chosen by the same xorshift sequence. Figure: ns per operation.
package main

import (
	"sync"

	b "gorobench/benchutil"
)

var (
	per, pct, counter int64
	sink              int64
	table             [64]int64
	rw                sync.RWMutex
	wg                sync.WaitGroup
	sinkMu            sync.Mutex
)

func worker(k uint32) {
	x := k*2654435761 + 1
	var sum int64
	for i := int64(0); i < per; i++ {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		if x%100 < uint32(pct) {
			rw.Lock()
			counter++
			table[counter&63] = counter
			rw.Unlock()
		} else {
			rw.RLock()
			sum += counter + table[x&63]
			rw.RUnlock()
		}
	}
	sinkMu.Lock()
	sink += sum
	sinkMu.Unlock()
	wg.Done()
}

func main() {
	b.CheckProcs()
	n := b.Int("n", 4000000)
	g := b.Int("goroutines", 8)
	pct = b.Int("write_pct", 10)
	if g < 1 || pct < 0 || pct > 100 {
		b.Fail("goroutines must be >= 1, write_pct 0..100")
	}
	per = n / g
	n = per * g
	var want int64
	for k := int64(0); k < g; k++ {
		x := uint32(k+1)*2654435761 + 1
		for i := int64(0); i < per; i++ {
			x ^= x << 13
			x ^= x >> 17
			x ^= x << 5
			if x%100 < uint32(pct) {
				want++
			}
		}
	}
	wg.Add(int(g))
	t0 := b.Now()
	for i := int64(0); i < g; i++ {
		go worker(uint32(i + 1))
	}
	wg.Wait()
	elapsed := b.Now() - t0
	if counter != want {
		b.Fail("counter is %d, want %d", counter, want)
	}
	b.Report(b.Str("name", "rwmutex"), float64(elapsed)/float64(n), "ns/op")
}
