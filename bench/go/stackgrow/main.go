// stackgrow - the Go twin of bench/stackgrow.c: g goroutines each recurse
// through frames holding a zeroed 1 KiB buffer until they use 13/16 of target
// bytes, reps times. Figure: ms per rep.
package main

import (
	"sync"
	"sync/atomic"

	b "gorobench/benchutil"
)

const frame = 1024

var (
	depth int64
	want  uint64
	wg    sync.WaitGroup
	bad   int64
)

//go:noinline
func recurse(d uint32) uint64 {
	var buf [frame]byte
	buf[d%frame] = byte(d)
	if d == 0 {
		return 0
	}
	r := recurse(d - 1)
	return r + uint64(buf[d%frame])
}

func grower() {
	if recurse(uint32(depth)) != want {
		atomic.AddInt64(&bad, 1)
	}
	wg.Done()
}

func main() {
	b.CheckProcs()
	g := b.Int("goroutines", 1)
	target := b.Int("target", 64<<20)
	reps := b.Int("reps", 5)
	depth = target / 16 * 13 / frame
	for d := int64(1); d <= depth; d++ {
		want += uint64(d & 0xff)
	}
	t0 := b.Now()
	for r := int64(0); r < reps; r++ {
		wg.Add(int(g))
		for i := int64(0); i < g; i++ {
			go grower()
		}
		wg.Wait()
	}
	elapsed := b.Now() - t0
	if bad != 0 {
		b.Fail("%d recursions returned a wrong checksum", bad)
	}
	b.Report(b.Str("name", "stackgrow"), float64(elapsed)/1e6/float64(reps), "ms")
}
