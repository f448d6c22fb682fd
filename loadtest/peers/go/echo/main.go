// The Go twin of coronet-echo: a goroutine per connection, a 16 KiB buffer,
// the same idle timeout. Run with GOMAXPROCS=1 to compare against one
// coronet worker.
package main

import (
	"flag"
	"log"
	"net"
	"time"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:7001", "address to serve on")
	idle := flag.Duration("idle", 60*time.Second, "close a connection silent this long")
	flag.Parse()
	l, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("listening on %s", l.Addr())
	for {
		c, err := l.Accept()
		if err != nil {
			log.Printf("accept: %v", err)
			time.Sleep(10 * time.Millisecond)
			continue
		}
		go echo(c, *idle)
	}
}

func echo(c net.Conn, idle time.Duration) {
	defer c.Close()
	buf := make([]byte, 16*1024)
	for {
		c.SetReadDeadline(time.Now().Add(idle))
		n, err := c.Read(buf)
		if err != nil {
			return
		}
		if _, err := c.Write(buf[:n]); err != nil {
			return
		}
	}
}
