package client_test

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"strconv"
	"time"

	"github.com/majordomo-go/majordomo/broker"
	"github.com/majordomo-go/majordomo/client"
	"github.com/majordomo-go/majordomo/mdp"
	"github.com/majordomo-go/majordomo/worker"
)

// exampleBroker starts an in-process broker with an "echo" worker (0.1) and
// a "count" worker (0.2, streaming), so that the examples run as tests. A
// real program connects to a broker that runs elsewhere.
func exampleBroker() (endpoint string, stop func()) {
	quiet := slog.New(slog.DiscardHandler)
	b, err := broker.New(broker.Config{Endpoints: []string{"tcp://127.0.0.1:*"}, Logger: quiet})
	if err != nil {
		log.Fatal(err)
	}
	endpoint = b.Endpoints()[0]
	ctx, cancel := context.WithCancel(context.Background())
	echo, _ := worker.New(endpoint, "echo", worker.HandlerFunc(
		func(ctx context.Context, req *worker.Request) ([][]byte, error) { return req.Body, nil }),
		worker.WithLogger(quiet))
	count, _ := worker.New(endpoint, "count", worker.HandlerFunc(
		func(ctx context.Context, req *worker.Request) ([][]byte, error) {
			n, _ := strconv.Atoi(string(req.Body[0]))
			for i := 1; i < n; i++ {
				if err := req.Partial([]byte(strconv.Itoa(i))); err != nil {
					return nil, err
				}
			}
			return [][]byte{[]byte(strconv.Itoa(n))}, nil
		}), worker.WithVersion(mdp.V2), worker.WithLogger(quiet))
	done := make(chan struct{}, 3)
	for _, run := range []func(context.Context) error{b.Run, echo.Run, count.Run} {
		go func() { run(ctx); done <- struct{}{} }()
	}
	return endpoint, func() {
		cancel()
		for range 3 {
			<-done
		}
	}
}

func Example() {
	endpoint, stop := exampleBroker()
	defer stop()

	c, err := client.Connect(endpoint) // e.g. "tcp://127.0.0.1:5555"
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	reply, err := c.Request(ctx, "echo", []byte("hello"), []byte("world"))
	if err != nil {
		log.Fatal(err) // errors.Is(err, client.ErrTimeout) after the retries
	}
	for _, frame := range reply {
		fmt.Printf("%s\n", frame)
	}
	// Output:
	// hello
	// world
}

// Stream yields each PARTIAL as it arrives, then the FINAL. Streaming needs
// MDP/0.2 on both sides.
func ExampleClient_Stream() {
	endpoint, stop := exampleBroker()
	defer stop()

	c, err := client.Connect(endpoint, client.WithVersion(mdp.V2))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for body, err := range c.Stream(ctx, "count", []byte("3")) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%s\n", body[0])
	}
	// Output:
	// 1
	// 2
	// 3
}

// A Pipeline keeps many requests in flight. Replies carry only the service
// name, so each request carries its own id, which the echo worker returns.
func ExampleClient_Pipeline() {
	endpoint, stop := exampleBroker()
	defer stop()

	c, err := client.Connect(endpoint)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	p, err := c.Pipeline(100)
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := range 100 {
		if err := p.Send(ctx, "echo", []byte(strconv.Itoa(i))); err != nil {
			log.Fatal(err)
		}
	}
	sum := 0
	for range 100 {
		r, err := p.Recv(ctx)
		if err != nil {
			log.Fatal(err)
		}
		id, _ := strconv.Atoi(string(r.Body[0]))
		sum += id
	}
	fmt.Println("sum of ids:", sum)
	// Output: sum of ids: 4950
}

func ExampleClient_ServiceExists() {
	endpoint, stop := exampleBroker()
	defer stop()

	c, err := client.Connect(endpoint)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// Wait for the worker to register (it races this example).
	for {
		ok, err := c.ServiceExists(ctx, "echo")
		if err != nil {
			log.Fatal(err)
		}
		if ok {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	ok, _ := c.ServiceExists(ctx, "no-such-service")
	fmt.Println("no-such-service exists:", ok)
	// Output: no-such-service exists: false
}
