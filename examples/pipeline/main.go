// Command pipeline sends many requests at once through one Pipeline and
// reports the throughput. Each request carries its sequence number, which an
// echo worker returns, because MDP replies carry no request id.
//
//	go run ./examples/echoworker -concurrency 8 &
//	go run ./examples/pipeline -b tcp://127.0.0.1:5555 -n 10000
package main

import (
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/majordomo-go/majordomo/client"
)

func main() {
	endpoint := flag.String("b", envOr("MDP_BROKER", "tcp://127.0.0.1:5555"), "broker endpoint")
	service := flag.String("service", "echo", "an echo service")
	n := flag.Int("n", 10000, "requests")
	window := flag.Int("window", 1000, "requests in flight at most")
	timeout := flag.Duration("timeout", 30*time.Second, "give up after")
	flag.Parse()

	c, err := client.Connect(*endpoint)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	p, err := c.Pipeline(*window)
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()

	start := time.Now()
	// Send from one goroutine and receive in this one: Send blocks while
	// the window is full, Recv frees a slot with each FINAL.
	sendErr := make(chan error, 1)
	go func() {
		for i := range *n {
			if err := p.Send(ctx, *service, binary.BigEndian.AppendUint64(nil, uint64(i))); err != nil {
				sendErr <- err
				return
			}
		}
		sendErr <- nil
	}()
	seen := make([]bool, *n)
	for got := 0; got < *n; got++ {
		r, err := p.Recv(ctx)
		if err != nil {
			log.Fatalf("after %d replies (%d outstanding): %v", got, p.Outstanding(), err)
		}
		if len(r.Body) != 1 || len(r.Body[0]) != 8 {
			log.Fatalf("reply %q is not an 8-byte id: is %q an echo service?", r.Body, *service)
		}
		id := binary.BigEndian.Uint64(r.Body[0])
		if id >= uint64(*n) || seen[id] {
			log.Fatalf("unexpected reply id %d", id)
		}
		seen[id] = true
	}
	if err := <-sendErr; err != nil {
		log.Fatal(err)
	}
	el := time.Since(start)
	fmt.Printf("%d requests in %v: %.0f req/s\n", *n, el.Round(time.Millisecond), float64(*n)/el.Seconds())
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
