// Command streaming shows MDP/0.2 streaming: a worker that answers a
// countdown with one PARTIAL per second and a FINAL, and a client that
// prints each reply as it arrives. Both run in this one process, against
// the broker at -b; in real use they would be separate programs.
//
//	go run ./examples/streaming -b tcp://127.0.0.1:5555 -from 5
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"strconv"
	"time"

	"github.com/majordomo-go/majordomo/client"
	"github.com/majordomo-go/majordomo/mdp"
	"github.com/majordomo-go/majordomo/worker"
)

// countdown sends "n", "n-1", ... "1" as PARTIALs, then "liftoff" as the
// FINAL. The library heartbeats the broker meanwhile, however long it takes.
func countdown(ctx context.Context, req *worker.Request) ([][]byte, error) {
	n, err := strconv.Atoi(string(req.Body[0]))
	if err != nil {
		return nil, worker.ErrorReply(err, []byte("ERROR"), []byte("not a number"))
	}
	for i := n; i > 0; i-- {
		if err := req.Partial([]byte(strconv.Itoa(i))); err != nil {
			return nil, err // Connection lost or shutting down.
		}
		select {
		case <-time.After(time.Second):
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		}
	}
	return [][]byte{[]byte("liftoff")}, nil
}

func main() {
	endpoint := flag.String("b", envOr("MDP_BROKER", "tcp://127.0.0.1:5555"), "broker endpoint")
	from := flag.Int("from", 5, "count down from")
	flag.Parse()

	ctx, cancel := context.WithCancel(context.Background())
	w, err := worker.New(*endpoint, "countdown", worker.HandlerFunc(countdown), worker.WithVersion(mdp.V2))
	if err != nil {
		log.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()

	// Streaming needs MDP/0.2 on the client side too. The timeout bounds
	// the wait for each message, not the whole stream.
	c, err := client.Connect(*endpoint, client.WithVersion(mdp.V2), client.WithTimeout(5*time.Second))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	for body, err := range c.Stream(ctx, "countdown", []byte(strconv.Itoa(*from))) {
		if err != nil {
			log.Print(err)
			return
		}
		fmt.Printf("%s %s\n", time.Now().Format("15:04:05"), body[0])
	}
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
