// httpraw - the fair Go twin of examples/http: raw net, one goroutine per
// connection, and the same work per request as goro's conn.c and
// parse.c: find the end of the head, check the request line and every
// header line (Host, Connection, Content-Length, Transfer-Encoding), drop
// a Content-Length body, answer with the same headers (a Date formatted
// once a second), write the answers to a pipelined batch in one write, and
// keep a 30 s idle deadline that moves as rarely as goro's does.
package main

import (
	"bytes"
	"net"
	"os"
	"strconv"
	"time"

	"gorobench/serverutil"
)

const headMax = 8 << 10

var hello = []byte("Hello from goro!\n")

func isTchar(c byte) bool {
	return c > ' ' && c < 0x7f && bytes.IndexByte([]byte("\"(),/:;<=>?@[\\]{}"), c) < 0
}

// parse returns the status to refuse with (0: fine), whether to keep the
// connection, and the body length.
func parse(h []byte) (status int, get bool, root bool, keep bool, clen int) {
	eol := bytes.IndexByte(h, '\n')
	if eol <= 0 || h[eol-1] != '\r' {
		return 400, false, false, false, 0
	}
	line := h[:eol-1]
	sp1 := bytes.IndexByte(line, ' ')
	if sp1 <= 0 {
		return 400, false, false, false, 0
	}
	for _, c := range line[:sp1] {
		if !isTchar(c) {
			return 400, false, false, false, 0
		}
	}
	rest := line[sp1+1:]
	sp2 := bytes.IndexByte(rest, ' ')
	if sp2 <= 0 || len(rest)-sp2-1 != 8 || !bytes.HasPrefix(rest[sp2+1:], []byte("HTTP/1.")) {
		return 400, false, false, false, 0
	}
	minor := rest[sp2+8]
	if minor != '0' && minor != '1' {
		return 505, false, false, false, 0
	}
	get = string(line[:sp1]) == "GET"
	root = sp2 == 1 && rest[0] == '/'
	closeTok, keepTok, hosts, te := false, false, 0, false
	clen = -1
	for p := h[eol+1:]; len(p) > 2; {
		e := bytes.IndexByte(p, '\n')
		if e <= 0 || p[e-1] != '\r' {
			return 400, false, false, false, 0
		}
		l := p[:e-1]
		p = p[e+1:]
		c := bytes.IndexByte(l, ':')
		if c <= 0 {
			return 400, false, false, false, 0
		}
		name, v := l[:c], bytes.TrimSpace(l[c+1:])
		switch len(name) {
		case 4:
			if bytes.EqualFold(name, []byte("host")) {
				hosts++
			}
		case 10:
			if bytes.EqualFold(name, []byte("connection")) {
				lv := bytes.ToLower(v)
				closeTok = closeTok || bytes.Contains(lv, []byte("close"))
				keepTok = keepTok || bytes.Contains(lv, []byte("keep-alive"))
			}
		case 14:
			if bytes.EqualFold(name, []byte("content-length")) {
				n, err := strconv.Atoi(string(v))
				if err != nil || n < 0 {
					return 400, false, false, false, 0
				}
				clen = n
			}
		case 17:
			if bytes.EqualFold(name, []byte("transfer-encoding")) {
				te = true
			}
		}
	}
	if te {
		return 501, false, false, false, 0 // the twin does not decode chunked bodies
	}
	if minor == '1' && hosts != 1 {
		return 400, false, false, false, 0
	}
	if clen < 0 {
		clen = 0
	}
	if minor == '1' {
		keep = !closeTok
	} else {
		keep = keepTok && !closeTok
	}
	return 0, get, root, keep, clen
}

var reasons = map[int]string{200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
	431: "Request Header Fields Too Large", 501: "Not Implemented", 505: "HTTP Version Not Supported"}

func respond(out []byte, date []byte, status int, keep bool) []byte {
	body := hello
	if status != 200 {
		body = []byte(reasons[status] + "\n")
	}
	out = append(out, "HTTP/1.1 "...)
	out = strconv.AppendInt(out, int64(status), 10)
	out = append(out, ' ')
	out = append(out, reasons[status]...)
	out = append(out, "\r\nServer: go\r\n"...)
	out = append(out, date...)
	out = append(out, "Content-Type: text/plain\r\nContent-Length: "...)
	out = strconv.AppendInt(out, int64(len(body)), 10)
	if keep {
		out = append(out, "\r\nConnection: keep-alive\r\n\r\n"...)
	} else {
		out = append(out, "\r\nConnection: close\r\n\r\n"...)
	}
	return append(out, body...)
}

func serve(c net.Conn) {
	defer c.Close()
	in := make([]byte, headMax)
	out := make([]byte, 0, 16<<10)
	var date []byte
	var dateSec int64
	start, end, skip := 0, 0, 0
	var deadline time.Time
	for {
		// every complete request in the buffer
		for {
			if skip > 0 {
				d := skip
				if d > end-start {
					d = end - start
				}
				start += d
				skip -= d
				if skip > 0 {
					break
				}
			}
			i := bytes.Index(in[start:end], []byte("\r\n\r\n"))
			if i < 0 {
				break
			}
			head := in[start : start+i+4]
			start += i + 4
			now := time.Now()
			if now.Unix() != dateSec {
				dateSec = now.Unix()
				date = []byte("Date: " + now.UTC().Format(time.RFC1123)[:25] + " GMT\r\n")
			}
			status, get, root, keep, clen := parse(head)
			if status == 0 {
				skip = clen
				switch {
				case !get:
					status = 405
				case root:
					status = 200
				default:
					status = 404
				}
			} else {
				keep = false
			}
			out = respond(out, date, status, keep)
			if !keep {
				c.Write(out)
				return
			}
		}
		if len(out) > 0 {
			if _, err := c.Write(out); err != nil {
				return
			}
			out = out[:0]
		}
		if start == end {
			start, end = 0, 0
		} else if start > 0 {
			copy(in, in[start:end])
			end -= start
			start = 0
		}
		if end == len(in) {
			c.Write(respond(out, date, 431, false))
			return
		}
		// the idle deadline as goro's conn.c arms it: moved only when it
		// is more than an eighth of its span stale
		if now := time.Now(); deadline.Sub(now) < 30*time.Second*7/8 {
			deadline = now.Add(30 * time.Second)
			c.SetReadDeadline(deadline)
		}
		n, err := c.Read(in[end:])
		if n <= 0 || err != nil {
			return
		}
		end += n
	}
}

func main() {
	l := serverutil.Listen("httpraw", 8080)
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
