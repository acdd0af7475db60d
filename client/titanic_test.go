package client_test

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/majordomo-go/majordomo/client"
	"github.com/majordomo-go/majordomo/internal/testutil"
	"github.com/majordomo-go/majordomo/internal/testutil/harness"
	"github.com/majordomo-go/majordomo/titanic"
	"github.com/majordomo-go/majordomo/worker"
)

// startTitanic runs a Titanic server against the broker until the test
// ends.
func startTitanic(t *testing.T, endpoint string) *titanic.Server {
	t.Helper()
	srv, err := titanic.New(titanic.Config{Broker: endpoint, Dir: t.TempDir(), Heartbeat: harness.Heartbeat,
		RequestWorkers: 2, QueryWorkers: 2, MaxInFlight: 4, RetryMin: 10 * time.Millisecond,
		ProbeMax: 50 * time.Millisecond, Logger: testutil.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Run(context.Background()) }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-done; err != nil {
			t.Errorf("titanic: %v", err)
		}
	})
	return srv
}

func TestTitanic(t *testing.T) {
	tb := harness.StartBroker(t)
	srv := startTitanic(t, tb.Endpoint)
	c := harness.Connect(t, tb.Endpoint)
	tt := &client.Titanic{Client: c}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	id, err := tt.Submit(ctx, "echo", []byte("a"), []byte("b"))
	if err != nil || len(id) != 32 {
		t.Fatalf("Submit: %q, %v", id, err)
	}
	if _, err := tt.Reply(ctx, id); !errors.Is(err, client.ErrTitanicPending) {
		t.Fatalf("Reply before a worker: %v, want ErrTitanicPending", err)
	}
	if _, err := tt.Reply(ctx, "0123456789abcdef0123456789abcdef"); !errors.Is(err, client.ErrTitanicUnknown) {
		t.Fatalf("Reply unknown: %v, want ErrTitanicUnknown", err)
	}
	if err := tt.Close(ctx, "0123456789abcdef0123456789abcdef"); err != nil {
		t.Fatalf("Close unknown: %v", err)
	}
	if _, err := tt.Submit(ctx, ""); !errors.Is(err, client.ErrEmptyService) {
		t.Fatalf("Submit with no service: %v", err)
	}

	// The whole round, started before the worker exists.
	type result struct {
		rep [][]byte
		err error
	}
	res := make(chan result, 1)
	go func() {
		rep, err := (&client.Titanic{Client: c, PollMin: time.Millisecond, PollMax: 20 * time.Millisecond}).
			Request(ctx, "upper", []byte("x"))
		res <- result{rep, err}
	}()
	time.Sleep(100 * time.Millisecond)
	harness.RunWorker(t, tb.Endpoint, "echo", worker.HandlerFunc(harness.Echo))
	harness.RunWorker(t, tb.Endpoint, "upper", worker.HandlerFunc(func(ctx context.Context, req *worker.Request) ([][]byte, error) {
		return [][]byte{[]byte("X")}, nil
	}))
	r := <-res
	if r.err != nil || !reflect.DeepEqual(r.rep, [][]byte{[]byte("X")}) {
		t.Fatalf("Request: %q, %v", r.rep, r.err)
	}
	// The earlier submission is answered too, and stays until closed.
	var rep [][]byte
	testutil.Eventually(t, testutil.WaitLimit, "the earlier submission's reply", func() bool {
		rep, err = tt.Reply(ctx, id)
		if err != nil && !errors.Is(err, client.ErrTitanicPending) {
			t.Fatal(err)
		}
		return rep != nil
	})
	if !reflect.DeepEqual(rep, [][]byte{[]byte("a"), []byte("b")}) {
		t.Fatalf("Reply: %q", rep)
	}
	if err := tt.Close(ctx, id); err != nil {
		t.Fatal(err)
	}
	if _, err := tt.Reply(ctx, id); !errors.Is(err, client.ErrTitanicUnknown) {
		t.Fatalf("Reply after close: %v", err)
	}
	// Request closed what it fetched: nothing is left in the store.
	if st := srv.Stats().Store; st.Pending != 0 || st.Replies != 0 {
		t.Errorf("store after Request and Close: %+v", st)
	}
	// A context that ends while polling ends Request.
	short, cancelShort := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancelShort()
	if _, err := tt.Request(short, "nobody", []byte("x")); !errors.Is(err, client.ErrTimeout) {
		t.Fatalf("Request to a service with no worker: %v, want ErrTimeout", err)
	}
}
