// kv - the Go twin of examples/kv: RESP2 (multibulk and inline), one
// goroutine per connection, the key space in 64 shards under sync.Mutex
// (examples/kv's db.c: goro mutexes), replies to a pipelined batch in one
// write, lazy expiry plus a sweep every 100 ms. The same commands.
package main

import (
	"bufio"
	"bytes"
	"hash/maphash"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"gorobench/serverutil"
)

const (
	shards  = 64
	bulkMax = 8 << 20
	argsMax = 65536
)

type entry struct {
	val    []byte
	expire int64 // UnixNano, 0: never
}

type shard struct {
	mu sync.Mutex
	m  map[string]*entry
	_  [40]byte
}

var (
	db   [shards]shard
	seed = maphash.MakeSeed()
)

func shardOf(k []byte) *shard {
	return &db[maphash.Bytes(seed, k)>>58]
}

// live returns k's entry unless it is absent or expired (then deleted). Needs s.mu.
func (s *shard) live(k []byte, now int64) *entry {
	e := s.m[string(k)]
	if e != nil && e.expire != 0 && e.expire <= now {
		delete(s.m, string(k))
		return nil
	}
	return e
}

func appendBulk(o []byte, v []byte) []byte {
	o = append(o, '$')
	o = strconv.AppendInt(o, int64(len(v)), 10)
	o = append(o, "\r\n"...)
	o = append(o, v...)
	return append(o, "\r\n"...)
}

func appendInt(o []byte, n int64) []byte {
	o = append(o, ':')
	o = strconv.AppendInt(o, n, 10)
	return append(o, "\r\n"...)
}

func appendErr(o []byte, msg string) []byte {
	return append(append(append(o, '-'), msg...), "\r\n"...)
}

func parseInt(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 20 || b[0] == '+' || (len(b) > 1 && b[0] == '0') {
		return 0, false
	}
	n, err := strconv.ParseInt(string(b), 10, 64)
	return n, err == nil
}

func get(o []byte, k []byte) []byte {
	s := shardOf(k)
	s.mu.Lock()
	e := s.live(k, time.Now().UnixNano())
	if e != nil {
		o = appendBulk(o, e.val)
	} else {
		o = append(o, "$-1\r\n"...)
	}
	s.mu.Unlock()
	return o
}

func set(k, v []byte, expire int64) {
	s := shardOf(k)
	val := append([]byte(nil), v...)
	s.mu.Lock()
	s.m[string(k)] = &entry{val, expire}
	s.mu.Unlock()
}

func exec(o []byte, a [][]byte) ([]byte, bool) {
	name := strings.ToUpper(string(a[0]))
	n := len(a)
	arity := func() []byte {
		return appendErr(o, "ERR wrong number of arguments for '"+strings.ToLower(name)+"' command")
	}
	now := time.Now().UnixNano()
	switch name {
	case "PING":
		if n > 2 {
			return arity(), true
		}
		if n == 2 {
			return appendBulk(o, a[1]), true
		}
		return append(o, "+PONG\r\n"...), true
	case "ECHO":
		if n != 2 {
			return arity(), true
		}
		return appendBulk(o, a[1]), true
	case "GET":
		if n != 2 {
			return arity(), true
		}
		return get(o, a[1]), true
	case "SET":
		if n < 3 {
			return arity(), true
		}
		var expire int64
		for i := 3; i < n; i++ {
			opt := strings.ToUpper(string(a[i]))
			if (opt == "EX" || opt == "PX") && i+1 < n {
				v, ok := parseInt(a[i+1])
				if !ok {
					return appendErr(o, "ERR value is not an integer or out of range"), true
				}
				if v <= 0 {
					return appendErr(o, "ERR invalid expire time in 'set' command"), true
				}
				unit := int64(time.Millisecond)
				if opt == "EX" {
					unit = int64(time.Second)
				}
				expire = now + v*unit
				i++
			} else {
				return appendErr(o, "ERR syntax error"), true
			}
		}
		set(a[1], a[2], expire)
		return append(o, "+OK\r\n"...), true
	case "DEL", "EXISTS":
		if n < 2 {
			return arity(), true
		}
		var c int64
		for _, k := range a[1:] {
			s := shardOf(k)
			s.mu.Lock()
			if s.live(k, now) != nil {
				c++
				if name == "DEL" {
					delete(s.m, string(k))
				}
			}
			s.mu.Unlock()
		}
		return appendInt(o, c), true
	case "INCR":
		if n != 2 {
			return arity(), true
		}
		s := shardOf(a[1])
		s.mu.Lock()
		e := s.live(a[1], now)
		var cur int64
		if e != nil {
			v, ok := parseInt(e.val)
			if !ok {
				s.mu.Unlock()
				return appendErr(o, "ERR value is not an integer or out of range"), true
			}
			cur = v
		}
		if cur == 1<<63-1 {
			s.mu.Unlock()
			return appendErr(o, "ERR increment or decrement would overflow"), true
		}
		cur++
		if e == nil {
			e = &entry{}
			s.m[string(a[1])] = e
		}
		e.val = strconv.AppendInt(e.val[:0], cur, 10)
		s.mu.Unlock()
		return appendInt(o, cur), true
	case "MGET":
		if n < 2 {
			return arity(), true
		}
		o = append(o, '*')
		o = strconv.AppendInt(o, int64(n-1), 10)
		o = append(o, "\r\n"...)
		for _, k := range a[1:] {
			o = get(o, k)
		}
		return o, true
	case "MSET":
		if n < 3 || n%2 != 1 {
			return arity(), true
		}
		for i := 1; i < n; i += 2 {
			set(a[i], a[i+1], 0)
		}
		return append(o, "+OK\r\n"...), true
	case "EXPIRE":
		if n != 3 {
			return arity(), true
		}
		secs, ok := parseInt(a[2])
		if !ok {
			return appendErr(o, "ERR value is not an integer or out of range"), true
		}
		s := shardOf(a[1])
		s.mu.Lock()
		e := s.live(a[1], now)
		if e != nil {
			if secs <= 0 {
				delete(s.m, string(a[1]))
			} else {
				e.expire = now + secs*int64(time.Second)
			}
		}
		s.mu.Unlock()
		if e != nil {
			return appendInt(o, 1), true
		}
		return appendInt(o, 0), true
	case "TTL":
		if n != 2 {
			return arity(), true
		}
		s := shardOf(a[1])
		s.mu.Lock()
		e := s.live(a[1], now)
		t := int64(-2)
		if e != nil && e.expire == 0 {
			t = -1
		} else if e != nil {
			t = ((e.expire-now)/int64(time.Millisecond) + 500) / 1000
		}
		s.mu.Unlock()
		return appendInt(o, t), true
	case "DBSIZE":
		var c int
		for i := range db {
			db[i].mu.Lock()
			c += len(db[i].m)
			db[i].mu.Unlock()
		}
		return appendInt(o, int64(c)), true
	case "FLUSHALL":
		for i := range db {
			db[i].mu.Lock()
			db[i].m = make(map[string]*entry)
			db[i].mu.Unlock()
		}
		return append(o, "+OK\r\n"...), true
	case "CONFIG":
		if n == 3 && strings.EqualFold(string(a[2]), "save") {
			return append(o, "*2\r\n$4\r\nsave\r\n$0\r\n\r\n"...), true
		}
		if n == 3 && strings.EqualFold(string(a[2]), "appendonly") {
			return append(o, "*2\r\n$10\r\nappendonly\r\n$2\r\nno\r\n"...), true
		}
		return append(o, "*0\r\n"...), true
	case "QUIT":
		return append(o, "+OK\r\n"...), false
	}
	return appendErr(o, "ERR unknown command '"+string(a[0])+"'"), true
}

// readLine reads a CRLF line (without it).
func readLine(r *bufio.Reader) ([]byte, error) {
	l, err := r.ReadSlice('\n')
	if err != nil {
		return nil, err
	}
	if len(l) < 2 || l[len(l)-2] != '\r' {
		return nil, errProto("ERR Protocol error: invalid multibulk length")
	}
	return l[:len(l)-2], nil
}

type errProto string

func (e errProto) Error() string { return string(e) }

// readCommand reads one command's arguments into args (reusing it).
func readCommand(r *bufio.Reader, args [][]byte) ([][]byte, error) {
	args = args[:0]
	l, err := readLine(r)
	if err != nil {
		return nil, err
	}
	if len(l) == 0 || l[0] != '*' {
		for _, f := range bytes.Fields(l) {
			args = append(args, append([]byte(nil), f...))
		}
		return args, nil
	}
	count, err := strconv.Atoi(string(l[1:]))
	if err != nil || count > argsMax {
		return nil, errProto("ERR Protocol error: invalid multibulk length")
	}
	for i := 0; i < count; i++ {
		l, err := readLine(r)
		if err != nil {
			return nil, err
		}
		if len(l) == 0 || l[0] != '$' {
			return nil, errProto("ERR Protocol error: expected '$'")
		}
		bl, err := strconv.Atoi(string(l[1:]))
		if err != nil || bl < 0 || bl > bulkMax {
			return nil, errProto("ERR Protocol error: invalid bulk length")
		}
		b := make([]byte, bl+2)
		if _, err := io.ReadFull(r, b); err != nil {
			return nil, err
		}
		args = append(args, b[:bl])
	}
	return args, nil
}

func serve(c net.Conn) {
	defer c.Close()
	r := bufio.NewReaderSize(c, 16<<10)
	out := make([]byte, 0, 16<<10)
	var args [][]byte
	for {
		a, err := readCommand(r, args)
		if err != nil {
			if p, ok := err.(errProto); ok {
				c.Write(appendErr(out, string(p)))
			}
			return
		}
		args = a
		keep := true
		if len(a) > 0 {
			out, keep = exec(out, a)
		}
		if !keep || r.Buffered() == 0 || len(out) > 64<<10 {
			if _, err := c.Write(out); err != nil || !keep {
				return
			}
			out = out[:0]
		}
	}
}

func main() {
	for i := range db {
		db[i].m = make(map[string]*entry)
	}
	l := serverutil.Listen("kv", 6380)
	go func() { // active expiry
		for range time.Tick(100 * time.Millisecond) {
			now := time.Now().UnixNano()
			for i := range db {
				db[i].mu.Lock()
				for k, e := range db[i].m {
					if e.expire != 0 && e.expire <= now {
						delete(db[i].m, k)
					}
				}
				db[i].mu.Unlock()
			}
		}
	}()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go serve(c)
		}
	}()
	serverutil.WaitSignal()
	l.Close()
	os.Exit(0)
}
