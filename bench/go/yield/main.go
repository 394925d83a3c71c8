// yield - the Go twin of bench/yield.c: two goroutines on one P hand the CPU
// back and forth with runtime.Gosched. Figure: ns per yield.
package main

import (
	"runtime"
	"sync"

	b "gorobench/benchutil"
)

var (
	n        int64
	last     int
	switches int64
	count    [2]int64
	wg       sync.WaitGroup
)

func yielder(me int) {
	for i := int64(0); i < n; i++ {
		last = me
		runtime.Gosched()
		if last != me {
			switches++
		}
		count[me]++
	}
	wg.Done()
}

func main() {
	b.CheckProcs()
	n = b.Int("n", 1000000)
	wg.Add(2)
	t0 := b.Now()
	go yielder(0)
	go yielder(1)
	wg.Wait()
	elapsed := b.Now() - t0
	if count[0] != n || count[1] != n {
		b.Fail("yields counted %d + %d, want %d each", count[0], count[1], n)
	}
	if switches < n {
		b.Fail("only %d of %d yields switched goroutines", switches, 2*n)
	}
	b.Report(b.Str("name", "yield"), float64(elapsed)/float64(2*n), "ns/op")
}
