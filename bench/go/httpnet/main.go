// httpnet - the popular Go twin of examples/http: net/http's server, the
// one Go programs put behind load balancers. GET / answers the same
// 17 bytes with the same Content-Type; other paths 404.
package main

import (
	"net/http"
	"os"

	"gorobench/serverutil"
)

var hello = []byte("Hello from goro!\n")

func main() {
	l := serverutil.Listen("httpnet", 8080)
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("Server", "go")
		w.Write(hello)
	})
	srv := &http.Server{Handler: mux}
	go srv.Serve(l)
	serverutil.WaitSignal()
	srv.Close()
	os.Exit(0)
}
