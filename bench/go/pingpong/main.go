// pingpong - the Go twin of bench/pingpong.c: two goroutines bounce a counter
// over two unbuffered channels. Figure: ns per round trip.
package main

import (
	"sync"

	b "gorobench/benchutil"
)

var (
	n, echoed  int64
	ping, pong chan int64
	wg         sync.WaitGroup
)

func echoer() {
	for v := range ping {
		echoed++
		pong <- v + 1
	}
	wg.Done()
}

func main() {
	b.CheckProcs()
	n = b.Int("n", 1000000)
	ping = make(chan int64)
	pong = make(chan int64)
	wg.Add(1)
	t0 := b.Now()
	go echoer()
	for i := int64(0); i < n; i++ {
		ping <- i
		if v := <-pong; v != i+1 {
			b.Fail("round trip %d: got %d, want %d", i, v, i+1)
		}
	}
	elapsed := b.Now() - t0
	close(ping)
	wg.Wait()
	if echoed != n {
		b.Fail("echoer saw %d requests, want %d", echoed, n)
	}
	b.Report(b.Str("name", "pingpong"), float64(elapsed)/float64(n), "ns/op")
}
