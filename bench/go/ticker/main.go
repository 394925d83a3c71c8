// ticker - the Go twin of bench/ticker.c: t goroutines, each with its own
// time.Ticker of period_ms, each receiving per ticks and then stopping it.
// Figure: process CPU time (user + system, getrusage) from the first spawn
// to the last ticker's end, per tick received. Verified as on the C side.
package main

import (
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	b "gorobench/benchutil"
)

var (
	period, per, tooFast int64
	wg                   sync.WaitGroup
)

func cpuNow() int64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return (ru.Utime.Sec+ru.Stime.Sec)*1000000000 + (ru.Utime.Usec+ru.Stime.Usec)*1000
}

func ticker() {
	t := time.NewTicker(time.Duration(period))
	var first, last time.Time
	for i := int64(0); i < per; i++ {
		last = <-t.C
		if i == 0 {
			first = last
		}
	}
	t.Stop()
	if int64(last.Sub(first)) < (per-1)*period*9/10 {
		atomic.AddInt64(&tooFast, 1)
	}
	wg.Done()
}

func main() {
	b.CheckProcs()
	count := b.Int("tickers", 10000)
	period = b.Int("period_ms", 1) * 1000000
	per = b.Int("ticks", 20)
	if count < 1 || period <= 0 || per < 2 {
		b.Fail("tickers and period_ms must be > 0, ticks >= 2")
	}
	wg.Add(int(count))
	c0, t0 := cpuNow(), b.Now()
	for i := int64(0); i < count; i++ {
		go ticker()
	}
	wg.Wait()
	cpu, elapsed := cpuNow()-c0, b.Now()-t0
	if tooFast != 0 {
		b.Fail("%d tickers got their ticks faster than the period: queued", tooFast)
	}
	ticks := count * per
	b.Info("%d ticks in %d ms (%.0f/s), %.0f ms of CPU", ticks, elapsed/1000000,
		float64(ticks)*1e9/float64(elapsed), float64(cpu)/1e6)
	b.Report(b.Str("name", "ticker"), float64(cpu)/float64(ticks), "ns/tick")
}
