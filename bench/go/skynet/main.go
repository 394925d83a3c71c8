// skynet - the Go twin of bench/skynet.c (github.com/atemerev/skynet):
// 1,111,111 goroutines in a tree of fan-out div, sums sent up unbuffered
// channels. Figure: ms for the whole tree.
package main

import b "gorobench/benchutil"

var div int64

func skynet(up chan int64, num, size int64) {
	if size == 1 {
		up <- num
		return
	}
	rc := make(chan int64)
	sub := size / div
	for i := int64(0); i < div; i++ {
		go skynet(rc, num+i*sub, sub)
	}
	var sum int64
	for i := int64(0); i < div; i++ {
		sum += <-rc
	}
	up <- sum
}

func main() {
	b.CheckProcs()
	size := b.Int("size", 1000000)
	div = b.Int("div", 10)
	want := size * (size - 1) / 2
	c := make(chan int64)
	t0 := b.Now()
	go skynet(c, 0, size)
	result := <-c
	elapsed := b.Now() - t0
	if result != want {
		b.Fail("sum is %d, want %d", result, want)
	}
	b.Report(b.Str("name", "skynet"), float64(elapsed)/1e6, "ms")
}
