// Command echoclient sends requests to a service and prints the replies.
//
//	go run ./examples/echoclient -b tcp://127.0.0.1:5555 -n 3 hello world
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/majordomo-go/majordomo/client"
)

func main() {
	endpoint := flag.String("b", envOr("MDP_BROKER", "tcp://127.0.0.1:5555"), "broker endpoint")
	service := flag.String("service", "echo", "service to call")
	n := flag.Int("n", 1, "number of requests")
	flag.Parse()

	c, err := client.Connect(*endpoint,
		client.WithTimeout(2500*time.Millisecond), // per attempt (Lazy Pirate)
		client.WithRetries(3))                     // then give up
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	var body [][]byte
	for _, a := range flag.Args() {
		body = append(body, []byte(a))
	}
	ctx := context.Background()
	for i := range *n {
		start := time.Now()
		reply, err := c.Request(ctx, *service, body...)
		if errors.Is(err, client.ErrTimeout) {
			log.Fatalf("request %d: no answer: is a broker running at %s, with a %q worker?", i, *endpoint, *service)
		}
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("reply %d after %v: %q\n", i, time.Since(start).Round(time.Microsecond), reply)
	}
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
