// timer - the Go twin of bench/timer.c: n time.Timers armed an hour ahead,
// then `resets` Resets of timers taken in the same scattered order. Go has
// no cheaper timer than time.Timer to set beside goro's bare heap entry, so
// kind=bare runs the same code. Figure: ns per reset. Verified: every timer
// is still armed at the end (Stop says so).
package main

import (
	"time"

	b "gorobench/benchutil"
)

func main() {
	b.CheckProcs()
	n := b.Int("n", 1000000)
	resets := b.Int("resets", 1000000)
	_ = b.Str("kind", "timer")
	const hour = time.Hour
	ts := make([]*time.Timer, n)
	for i := int64(0); i < n; i++ {
		ts[i] = time.NewTimer(hour + time.Duration(i))
	}
	t0 := b.Now()
	for i := int64(0); i < resets; i++ {
		if !ts[(i*7919)%n].Reset(hour + time.Duration(i)) {
			b.Fail("reset %d: the timer was not armed", i)
		}
	}
	elapsed := b.Now() - t0
	for i := int64(0); i < n; i++ {
		if !ts[i].Stop() {
			b.Fail("timer %d fired or was lost", i)
		}
	}
	b.Info("%d resets with %d armed in %d ms", resets, n, elapsed/1000000)
	b.Report(b.Str("name", "timer_reset"), float64(elapsed)/float64(resets), "ns/op")
}
