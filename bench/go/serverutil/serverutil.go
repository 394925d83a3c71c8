// Package serverutil is what the Go twins of the example servers share:
// the -a/-p options, the "NAME: listening on ADDR port N" line bench/real.sh
// waits for, and a clean exit on SIGINT or SIGTERM.
package serverutil

import (
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"runtime"
	"syscall"
)

// Listen parses -a and -p (default port def), listens, and prints the
// line. It exits 1 when it cannot listen.
func Listen(name string, def int) net.Listener {
	addr := flag.String("a", "127.0.0.1", "address to listen on")
	port := flag.Int("p", def, "port (0: a free one)")
	flag.Parse()
	l, err := net.Listen("tcp", net.JoinHostPort(*addr, fmt.Sprint(*port)))
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: listen: %v\n", name, err)
		os.Exit(1)
	}
	fmt.Printf("%s: listening on %s port %d (GOMAXPROCS %d)\n", name, *addr,
		l.Addr().(*net.TCPAddr).Port, runtime.GOMAXPROCS(0))
	return l
}

// WaitSignal blocks until SIGINT or SIGTERM.
func WaitSignal() {
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGINT, syscall.SIGTERM)
	<-c
}
