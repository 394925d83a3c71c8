// local - the Go twin of bench/local.c. Go has no goroutine-local storage;
// per-goroutine (per-request) values travel in a context.Context, so this
// reads one of 4 values from a context built with context.WithValue, n
// times, yielding every 1,000 reads. Figure: ns per get.
package main

import (
	"context"
	"runtime"

	b "gorobench/benchutil"
)

type key int

func main() {
	b.CheckProcs()
	n := b.Int("n", 100000000)
	n -= n % 4
	ctx := context.Background()
	for k := 0; k < 4; k++ {
		ctx = context.WithValue(ctx, key(k), k+1)
	}
	done := make(chan int64)
	var elapsed int64
	go func() {
		var s int64
		t0 := b.Now()
		for i := int64(0); i < n; i++ {
			s += int64(ctx.Value(key(i & 3)).(int))
			if i%1000 == 999 {
				runtime.Gosched()
			}
		}
		elapsed = b.Now() - t0
		done <- s
	}()
	sum := <-done
	if sum != n/4*10 {
		b.Fail("sum is %d, want %d", sum, n/4*10)
	}
	b.Report(b.Str("name", "local"), float64(elapsed)/float64(n), "ns/op")
}
