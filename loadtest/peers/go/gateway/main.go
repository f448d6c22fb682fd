// The Go twin of coronet-gateway: the same dashboard from the same coronet
// backends, with goroutines, a channel, sync.WaitGroup and net/http's
// client; the same JSON shape, timeouts and partial/502/404 rules. A backend
// may be several replicas ("-orders http://a:8082,http://b:8082"): each call
// goes to the next in turn, once, with no retry, hedge or ejection (plain
// net/http, as the chaos scenario compares against).
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

type part struct {
	which  int
	status int
	body   map[string]any
	reason string
}

var names = [3]string{"users", "orders", "recommendations"}

func main() {
	listen := flag.String("listen", "127.0.0.1:9080", "address to serve on")
	users := flag.String("users", "http://127.0.0.1:8081", "users service")
	orders := flag.String("orders", "http://127.0.0.1:8082", "orders service")
	recs := flag.String("recommendations", "http://127.0.0.1:8083", "recommendations service")
	backendTimeout := flag.Duration("backend-timeout", 200*time.Millisecond, "per call")
	requestTimeout := flag.Duration("request-timeout", time.Second, "per request")
	caFile := flag.String("ca", "", "PEM CAs to trust for https:// backends")
	certFile := flag.String("cert", "", "serve HTTPS with this PEM certificate")
	keyFile := flag.String("key", "", "and this PEM key")
	flag.Parse()

	// Sized for fan-out like coronet's pool (Go's default keeps 2 idle per host).
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.MaxIdleConnsPerHost = 256
	transport.MaxIdleConns = 1024
	if *caFile != "" {
		pem, err := os.ReadFile(*caFile)
		if err != nil {
			log.Fatal(err)
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(pem)
		transport.TLSClientConfig = &tls.Config{RootCAs: pool}
		transport.ForceAttemptHTTP2 = false // HTTP/1.1 to the backends, as coronet's client
		transport.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	}
	client := &http.Client{Transport: transport}
	var replicas [3][]string
	for i, list := range []string{*users, *orders, *recs} {
		replicas[i] = strings.Split(list, ",")
	}
	var turn [3]atomic.Uint64
	base := func(which int) string {
		r := replicas[which]
		return r[turn[which].Add(1)%uint64(len(r))]
	}

	var calls atomic.Uint64 // backend calls made, for the chaos scenario's amplification
	call := func(ctx context.Context, which int, url, id string, out chan<- part, wg *sync.WaitGroup) {
		defer wg.Done()
		calls.Add(1)
		p := part{which: which}
		ctx, cancel := context.WithTimeout(ctx, *backendTimeout)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
		req.Header.Set("X-Request-Id", id)
		resp, err := client.Do(req)
		if err != nil {
			switch {
			case errors.Is(err, context.DeadlineExceeded):
				p.reason = "timeout"
			case strings.Contains(err.Error(), "refused"):
				p.reason = "refused"
			default:
				p.reason = "reset"
			}
			out <- p
			return
		}
		defer resp.Body.Close()
		data, err := io.ReadAll(resp.Body)
		p.status = resp.StatusCode
		if err != nil {
			p.reason = "reset"
		} else if resp.StatusCode != 200 {
			p.reason = fmt.Sprintf("status %d", resp.StatusCode)
		} else if json.Unmarshal(data, &p.body) != nil {
			p.reason = "malformed JSON"
			p.body = nil
		}
		out <- p
	}

	answer := func(w http.ResponseWriter, status int, doc any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(doc)
	}

	mux := http.NewServeMux()
	mux.HandleFunc("/api/users/", func(w http.ResponseWriter, r *http.Request) {
		rest := strings.TrimPrefix(r.URL.Path, "/api/users/")
		ok := strings.HasSuffix(rest, "/dashboard")
		id, err := strconv.ParseInt(strings.TrimSuffix(rest, "/dashboard"), 10, 64)
		if !ok || err != nil || id <= 0 {
			http.Error(w, "user id must be a positive integer", http.StatusBadRequest)
			return
		}
		reqID := r.Header.Get("X-Request-Id")
		if reqID == "" {
			reqID = fmt.Sprintf("%016x", time.Now().UnixNano())
		}
		ctx, cancel := context.WithTimeout(r.Context(), *requestTimeout)
		defer cancel()
		urls := [3]string{
			fmt.Sprintf("%s/users/%d", base(0), id),
			fmt.Sprintf("%s/orders?user=%d", base(1), id),
			fmt.Sprintf("%s/recommendations/%d", base(2), id),
		}
		results := make(chan part, 3)
		var wg sync.WaitGroup
		wg.Add(3)
		for i := 0; i < 3; i++ {
			go call(ctx, i, urls[i], reqID, results, &wg)
		}
		wg.Wait()
		close(results)
		var got [3]part
		for p := range results {
			got[p.which] = p
		}
		w.Header().Set("X-Request-Id", reqID)
		if got[0].body == nil {
			if got[0].status == 404 {
				answer(w, 404, map[string]any{"error": "no such user", "id": id})
				return
			}
			answer(w, 502, map[string]any{"error": "users service: " + got[0].reason})
			return
		}
		doc := map[string]any{"user": got[0].body, "orders": nil, "recommendations": nil, "partial": false}
		errs := []any{}
		fill := func(which int, field, inner string) {
			if b := got[which].body; b != nil {
				if v, ok := b[inner]; ok {
					doc[field] = v
					return
				}
			}
			reason := got[which].reason
			if got[which].body != nil {
				reason = "malformed JSON"
			}
			doc["partial"] = true
			errs = append(errs, map[string]any{"service": names[which], "reason": reason})
		}
		fill(1, "orders", "orders")
		fill(2, "recommendations", "items")
		doc["errors"] = errs
		answer(w, 200, doc)
	})
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok\n") })
	mux.HandleFunc("/calls", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintf(w, "%d\n", calls.Load()) })

	l, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Fprintf(os.Stderr, "listening on %s\n", l.Addr())
	if *certFile != "" {
		srv := &http.Server{Handler: mux, TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){}}
		log.Fatal(srv.ServeTLS(l, *certFile, *keyFile))
	}
	log.Fatal(http.Serve(l, mux))
}
