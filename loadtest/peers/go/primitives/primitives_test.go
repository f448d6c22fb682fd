// Go twins of loadtest/micro/primitives.cpp: the same work, measured with
// `go test -bench . -cpu 1` (GOMAXPROCS=1, one worker) or -cpu 2 for the
// cross-worker ping-pong.
package primitives

import (
	"sync"
	"testing"
)

func BenchmarkSpawnJoin(b *testing.B) {
	var wg sync.WaitGroup
	for i := 0; i < b.N; i++ {
		wg.Add(1)
		go func() { wg.Done() }()
	}
	wg.Wait()
}

func pingpong(b *testing.B) {
	ping, pong := make(chan int), make(chan int)
	go func() {
		for v := range ping {
			pong <- v
		}
	}()
	for i := 0; i < b.N; i++ {
		ping <- i
		<-pong
	}
	close(ping)
}

func BenchmarkChannelPingpong(b *testing.B) { pingpong(b) }

// Run with -cpu 2 so the two goroutines can sit on two threads.
func BenchmarkChannelPingpongCrossWorker(b *testing.B) { pingpong(b) }

func BenchmarkChannelBuffered1024(b *testing.B) {
	ch := make(chan int, 1024)
	go func() {
		for i := 0; i < b.N; i++ {
			ch <- i
		}
		close(ch)
	}()
	for i := 0; i < b.N; i++ {
		<-ch
	}
}

func BenchmarkFanout16(b *testing.B) {
	const n = 16
	ch := make(chan int, n)
	var wg sync.WaitGroup
	for i := 0; i < b.N; i++ {
		wg.Add(n)
		for j := 0; j < n; j++ {
			go func(v int) { ch <- v; wg.Done() }(j)
		}
		sum := 0
		for j := 0; j < n; j++ {
			sum += <-ch
		}
		wg.Wait()
		_ = sum
	}
}

func BenchmarkSelect2(b *testing.B) {
	a, c := make(chan int, 1), make(chan int, 1)
	a <- 1
	c <- 2
	for i := 0; i < b.N; i++ {
		select {
		case <-a:
			a <- 1
		case <-c:
			c <- 2
		}
	}
}
