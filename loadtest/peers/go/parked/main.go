// Twin of `coronet-bench-primitives --parked=N`: parks N goroutines on one
// channel and reports the resident memory they take, per goroutine.
package main

import (
	"flag"
	"fmt"
	"os"
	"sync"
)

func residentBytes() int64 {
	var pages, resident int64
	f, err := os.Open("/proc/self/statm")
	if err != nil {
		panic(err)
	}
	defer f.Close()
	fmt.Fscan(f, &pages, &resident)
	return resident * int64(os.Getpagesize())
}

func main() {
	n := flag.Int64("n", 1000000, "goroutines to park")
	flag.Parse()
	ch := make(chan int)
	var started sync.WaitGroup
	before := residentBytes()
	started.Add(int(*n))
	for i := int64(0); i < *n; i++ {
		go func() {
			started.Done()
			<-ch
		}()
	}
	started.Wait()
	after := residentBytes()
	fmt.Printf("parked_tasks=%d rss_delta_bytes=%d bytes_per_parked_task=%d\n", *n, after-before, (after-before) / *n)
	close(ch)
}
