package worker_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"strings"
	"time"

	"github.com/majordomo-go/majordomo/broker"
	"github.com/majordomo-go/majordomo/client"
	"github.com/majordomo-go/majordomo/mdp"
	"github.com/majordomo-go/majordomo/worker"
)

// exampleBroker starts an in-process broker so that the examples run as
// tests. A real worker connects to a broker that runs elsewhere.
func exampleBroker() (endpoint string, stop func()) {
	b, err := broker.New(broker.Config{Endpoints: []string{"tcp://127.0.0.1:*"},
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		log.Fatal(err)
	}
	done := make(chan struct{})
	go func() { b.Run(context.Background()); close(done) }()
	return b.Endpoints()[0], func() { b.Close(); <-done }
}

// ask sends one request with a fresh client and prints the reply frames.
func ask(endpoint string, v mdp.Version, service string, body ...string) {
	c, err := client.Connect(endpoint, client.WithVersion(v))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var frames [][]byte
	for _, b := range body {
		frames = append(frames, []byte(b))
	}
	for reply, err := range c.Stream(ctx, service, frames...) {
		if err != nil {
			log.Fatal(err)
		}
		for _, f := range reply {
			fmt.Printf("%s\n", f)
		}
	}
}

// An echo worker: register "echo", answer each request with its body.
func Example() {
	endpoint, stop := exampleBroker()
	defer stop()

	w, err := worker.New(endpoint, "echo", worker.HandlerFunc(
		func(ctx context.Context, req *worker.Request) ([][]byte, error) {
			return req.Body, nil
		}),
		worker.WithConcurrency(4), // Serve up to four requests at once.
		worker.WithLogger(slog.New(slog.DiscardHandler)),
	)
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- w.Run(ctx) }() // Run blocks until ctx is cancelled.

	ask(endpoint, mdp.V1, "echo", "hello")

	cancel()
	if err := <-done; err != nil {
		log.Fatal(err)
	}
	// Output: hello
}

// Under MDP/0.2 a handler can stream: PARTIALs first, then its return value
// as the FINAL.
func ExampleRequest_Partial() {
	endpoint, stop := exampleBroker()
	defer stop()

	w, err := worker.New(endpoint, "words", worker.HandlerFunc(
		func(ctx context.Context, req *worker.Request) ([][]byte, error) {
			words := strings.Fields(string(req.Body[0]))
			for _, word := range words[:len(words)-1] {
				if err := req.Partial([]byte(word)); err != nil {
					return nil, err // The client or the broker went away.
				}
			}
			return [][]byte{[]byte(words[len(words)-1])}, nil
		}),
		worker.WithVersion(mdp.V2),
		worker.WithLogger(slog.New(slog.DiscardHandler)),
	)
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- w.Run(ctx) }()

	ask(endpoint, mdp.V2, "words", "one two three")

	cancel()
	<-done
	// Output:
	// one
	// two
	// three
}

// ErrorReply tells the client about a failure in the application's own
// format; a plain error would leave the client to time out.
func ExampleErrorReply() {
	endpoint, stop := exampleBroker()
	defer stop()

	w, err := worker.New(endpoint, "div", worker.HandlerFunc(
		func(ctx context.Context, req *worker.Request) ([][]byte, error) {
			if len(req.Body) != 2 {
				return nil, worker.ErrorReply(errors.New("want 2 frames"),
					[]byte("ERR"), []byte("want 2 frames"))
			}
			return [][]byte{[]byte("OK")}, nil
		}),
		worker.WithLogger(slog.New(slog.DiscardHandler)),
	)
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- w.Run(ctx) }()

	ask(endpoint, mdp.V1, "div", "1")

	cancel()
	<-done
	// Output:
	// ERR
	// want 2 frames
}
