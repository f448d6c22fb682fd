// The Go HTTP/2 twin of coronet-hello: /plaintext and /json, the same bytes,
// over h2c (golang.org/x/net/http2/h2c, from Debian's golang-golang-x-net-dev)
// or, with -cert and -key, over TLS with h2 chosen by ALPN (net/http's own).
// Built in GOPATH mode against /usr/share/gocode: no module download. Run
// with GOMAXPROCS=1 to compare against one coronet worker.
package main

import (
	"flag"
	"log"
	"net"
	"net/http"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/h2c"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:8093", "address to serve on")
	certFile := flag.String("cert", "", "serve h2 over TLS with this PEM certificate")
	keyFile := flag.String("key", "", "and this PEM key")
	flag.Parse()
	mux := http.NewServeMux()
	mux.HandleFunc("/plaintext", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write([]byte("Hello, World!"))
	})
	mux.HandleFunc("/json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"message":"Hello, World!"}`))
	})
	l, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("listening on %s", l.Addr())
	h2 := &http2.Server{MaxConcurrentStreams: 100}
	if *certFile != "" {
		srv := &http.Server{Handler: mux}
		if err := http2.ConfigureServer(srv, h2); err != nil {
			log.Fatal(err)
		}
		log.Fatal(srv.ServeTLS(l, *certFile, *keyFile))
	}
	log.Fatal(http.Serve(l, h2c.NewHandler(mux, h2)))
}
