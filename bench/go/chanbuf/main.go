// chanbuf - the Go twin of bench/chanbuf.c: 4 producers and 4 consumers
// share one buffered channel (cap 128). Figure: ns per message.
package main

import (
	"sync"

	b "gorobench/benchutil"
)

var (
	n, producers, consumers int64
	ch                      chan int64
	pwg, cwg                sync.WaitGroup
	got, sum                []int64
)

func producer(p int64) {
	for v := p + 1; v <= n; v += producers {
		ch <- v
	}
	pwg.Done()
}

func consumer(c int64) {
	var k, s int64
	for v := range ch {
		k++
		s += v
	}
	got[c] = k
	sum[c] = s
	cwg.Done()
}

func main() {
	b.CheckProcs()
	n = b.Int("n", 2000000)
	producers = b.Int("producers", 4)
	consumers = b.Int("consumers", 4)
	capacity := b.Int("cap", 128)
	if producers < 1 || consumers < 1 || producers > 64 || consumers > 64 {
		b.Fail("producers and consumers must be 1..64")
	}
	got = make([]int64, consumers)
	sum = make([]int64, consumers)
	ch = make(chan int64, capacity)
	pwg.Add(int(producers))
	cwg.Add(int(consumers))
	t0 := b.Now()
	for i := int64(0); i < consumers; i++ {
		go consumer(i)
	}
	for i := int64(0); i < producers; i++ {
		go producer(i)
	}
	pwg.Wait()
	close(ch)
	cwg.Wait()
	elapsed := b.Now() - t0
	var total, s int64
	for i := int64(0); i < consumers; i++ {
		total += got[i]
		s += sum[i]
	}
	if total != n || s != n*(n+1)/2 {
		b.Fail("received %d messages summing to %d, want %d summing to %d", total, s, n, n*(n+1)/2)
	}
	b.Report(b.Str("name", "chan_buffered_4x4"), float64(elapsed)/float64(n), "ns/op")
}
