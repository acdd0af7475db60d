// Command echoworker is a Majordomo worker that answers every request with
// its own body.
//
//	go run ./examples/echoworker -b tcp://127.0.0.1:5555 -service echo
package main

import (
	"context"
	"flag"
	"log"
	"log/slog"
	"os"
	"os/signal"

	"github.com/majordomo-go/majordomo/mdp"
	"github.com/majordomo-go/majordomo/worker"
)

func main() {
	endpoint := flag.String("b", envOr("MDP_BROKER", "tcp://127.0.0.1:5555"), "broker endpoint")
	service := flag.String("service", "echo", "service to register")
	concurrency := flag.Int("concurrency", 1, "requests served at once")
	v2 := flag.Bool("v2", false, "speak MDP/0.2")
	flag.Parse()

	version := mdp.V1
	if *v2 {
		version = mdp.V2
	}
	echo := worker.HandlerFunc(func(ctx context.Context, req *worker.Request) ([][]byte, error) {
		return req.Body, nil
	})
	w, err := worker.New(*endpoint, *service, echo,
		worker.WithVersion(version),
		worker.WithConcurrency(*concurrency),
		worker.WithLogger(slog.Default()))
	if err != nil {
		log.Fatal(err)
	}
	// Ctrl-C cancels ctx: Run lets the request in progress finish, says
	// DISCONNECT to the broker and returns.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := w.Run(ctx); err != nil {
		log.Fatal(err)
	}
	log.Printf("served: %+v", w.Stats())
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
