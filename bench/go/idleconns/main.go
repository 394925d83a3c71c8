// idleconns - the Go twin of bench/idleconns.c: conns TCP connections on
// loopback, both ends in this process, each end a goroutine blocked in a
// read (the server end echoes, the client end hands what it reads to main);
// after idle_ms, what=mem: bytes of RSS plus page tables per connection;
// what=wake: microseconds per round trip through sample random connections.
package main

import (
	"encoding/binary"
	"io"
	"net"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	b "gorobench/benchutil"
)

const msg = 16

func main() {
	b.CheckProcs()
	conns := b.Int("conns", 100000)
	sample := b.Int("sample", 1000)
	idle := b.Int("idle_ms", 1500)
	nports := b.Int("ports", 4)
	what := b.Str("what", "mem")
	if what != "mem" && what != "wake" {
		b.Fail("what=mem|wake")
	}
	need := uint64(2*conns + 256)
	var rl syscall.Rlimit
	syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl)
	if rl.Cur < need {
		want := syscall.Rlimit{Cur: need, Max: need}
		if rl.Max > need {
			want.Max = rl.Max
		}
		if syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want) != nil {
			rl.Cur = rl.Max
			syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl)
			fit := (int64(rl.Max) - 256) / 2
			if fit < 1000 {
				b.Fail("%d connections need %d fds: raise the limit", conns, need)
			}
			b.Info("RLIMIT_NOFILE hard limit %d: %d connections, not %d", rl.Max, fit, conns)
			conns = fit
		}
	}
	var accepted, bad int64
	var servers, parked sync.WaitGroup
	lns := make([]net.Listener, nports)
	for p := range lns {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fail("listen: %v", err)
		}
		lns[p] = ln
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				atomic.AddInt64(&accepted, 1)
				servers.Add(1)
				parked.Add(1)
				go func() {
					defer servers.Done()
					buf := make([]byte, msg)
					parked.Done()
					for {
						n, err := c.Read(buf)
						if n > 0 {
							if _, err := c.Write(buf[:n]); err != nil {
								atomic.AddInt64(&bad, 1)
							}
						}
						if err != nil {
							break
						}
					}
					c.Close()
				}()
			}
		}()
	}
	replies := make(chan int64, 1)
	cs := make([]net.Conn, conns)
	var clients sync.WaitGroup
	time.Sleep(20 * time.Millisecond)
	before := b.Mem()
	for i := int64(0); i < conns; i++ {
		c, err := net.DialTimeout("tcp", lns[i%nports].Addr().String(), 10*time.Second)
		if err != nil {
			b.Fail("dial %d: %v", i, err)
		}
		cs[i] = c
		clients.Add(1)
		parked.Add(1)
		go func(i int64, c net.Conn) {
			defer clients.Done()
			buf := make([]byte, msg)
			parked.Done()
			for {
				if _, err := io.ReadFull(c, buf); err != nil {
					return
				}
				if int64(binary.LittleEndian.Uint64(buf)) != i {
					atomic.AddInt64(&bad, 1)
				}
				replies <- i
			}
		}(i, c)
	}
	for atomic.LoadInt64(&accepted) < conns {
		time.Sleep(time.Millisecond)
	}
	parked.Wait()
	time.Sleep(time.Duration(idle) * time.Millisecond)
	after := b.Mem()
	b.Info("%d connections: rss+pte +%d KiB", conns, (after-before)/1024)
	var figure float64
	if what == "mem" {
		figure = float64(after-before) / float64(conns)
	} else {
		x := uint64(88172645463325252)
		t0 := b.Now()
		buf := make([]byte, msg)
		each := make([]int64, 0, sample)
		for k := int64(0); k < sample; k++ {
			tk := b.Now()
			x ^= x << 13
			x ^= x >> 7
			x ^= x << 17
			i := int64(x % uint64(conns))
			binary.LittleEndian.PutUint64(buf, uint64(i))
			if _, err := cs[i].Write(buf); err != nil {
				b.Fail("write %d: %v", i, err)
			}
			if got := <-replies; got != i {
				b.Fail("reply from %d, want %d", got, i)
			}
			each = append(each, b.Now()-tk)
		}
		figure = float64(b.Now()-t0) / 1000 / float64(sample)
		sort.Slice(each, func(x, y int) bool { return each[x] < each[y] })
		n := len(each)
		b.Info("round trips: median %.1f us, p90 %.1f us, p99 %.1f us",
			float64(each[n/2])/1000, float64(each[n*9/10])/1000, float64(each[n*99/100])/1000)
	}
	for _, ln := range lns {
		ln.Close()
	}
	for _, c := range cs {
		c.Close()
	}
	clients.Wait()
	servers.Wait()
	if bad != 0 {
		b.Fail("%d bad echoes", bad)
	}
	if what == "mem" {
		b.Report(b.Str("name", "idle_conns_mem"), figure, "bytes/conn")
	} else {
		b.Report(b.Str("name", "idle_conns_wake"), figure, "us/roundtrip")
	}
}
