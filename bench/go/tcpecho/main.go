// tcpecho - the Go twin of bench/tcpecho.c: an echo server on 127.0.0.1 with
// one goroutine per connection, and conns clients each doing up to rts round
// trips of msg bytes (stopping early at secs). Figure: round trips per second.
package main

import (
	"bytes"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	b "gorobench/benchutil"
)

var (
	conns, rts, msg, secs                 int64
	stopAt                                time.Time
	clients, handlers                     sync.WaitGroup
	serverBytes, clientRts, acceptedConns int64
	addr                                  string
)

func handler(c net.Conn) {
	buf := make([]byte, 4096)
	c.(*net.TCPConn).SetNoDelay(true)
	c.SetDeadline(stopAt.Add(5 * time.Second))
	for {
		r, err := c.Read(buf)
		if r > 0 {
			if _, werr := c.Write(buf[:r]); werr != nil {
				b.Fail("server write: %v", werr)
			}
			atomic.AddInt64(&serverBytes, int64(r))
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			b.Fail("server read: %v", err)
		}
	}
	c.Close()
	handlers.Done()
}

func acceptor(l net.Listener) {
	for {
		c, err := l.Accept()
		if err != nil {
			return // the listener was closed: the end
		}
		atomic.AddInt64(&acceptedConns, 1)
		go handler(c)
	}
}

func client(id int64) {
	out := make([]byte, msg)
	in := make([]byte, msg)
	var done int64
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		b.Fail("dial: %v", err)
	}
	c.(*net.TCPConn).SetNoDelay(true)
	c.SetDeadline(stopAt.Add(5 * time.Second))
	for i := int64(0); i < rts && time.Now().Before(stopAt); i++ {
		for k := int64(0); k < msg; k++ {
			out[k] = byte(id*31 + i*7 + k)
		}
		if _, err := c.Write(out); err != nil {
			b.Fail("client write: %v", err)
		}
		if _, err := io.ReadFull(c, in); err != nil {
			b.Fail("client read: %v", err)
		}
		if !bytes.Equal(in, out) {
			b.Fail("client %d: round trip %d echoed wrong bytes", id, i)
		}
		done++
	}
	c.Close()
	atomic.AddInt64(&clientRts, done)
	clients.Done()
}

func main() {
	b.CheckProcs()
	conns = b.Int("conns", 64)
	rts = b.Int("rts", 2000)
	msg = b.Int("msg", 64)
	secs = b.Int("secs", 10)
	if msg < 1 || msg > 65536 || conns < 1 {
		b.Fail("bad msg or conns")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fail("listen: %v", err)
	}
	addr = "127.0.0.1:" + strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	clients.Add(int(conns))
	handlers.Add(int(conns)) // one handler per client connection
	go acceptor(l)
	t0 := b.Now()
	stopAt = time.Now().Add(time.Duration(secs) * time.Second)
	for i := int64(0); i < conns; i++ {
		go client(i)
	}
	clients.Wait()
	elapsed := b.Now() - t0
	handlers.Wait()
	l.Close()
	if acceptedConns != conns {
		b.Fail("server accepted %d connections, want %d", acceptedConns, conns)
	}
	if clientRts == 0 {
		b.Fail("no round trip completed")
	}
	if serverBytes != clientRts*msg {
		b.Fail("server echoed %d bytes, clients got %d", serverBytes, clientRts*msg)
	}
	if clientRts < conns*rts {
		b.Info("time limit reached: %d of %d round trips", clientRts, conns*rts)
	}
	b.Report(b.Str("name", "tcp_echo"), float64(clientRts)/(float64(elapsed)/1e9), "rt/s")
}
