package client_test

import (
	"context"
	"errors"
	"fmt"
	"github.com/majordomo-go/majordomo/internal/testutil/harness"
	"sync/atomic"
	"testing"
	"time"

	"github.com/majordomo-go/majordomo/client"
	"github.com/majordomo-go/majordomo/worker"
)

type goResult struct {
	reply [][]byte
	err   error
}

// goCall starts c.Go and returns the channel its done writes to, failing
// the test if done is called more than once.
func goCall(t *testing.T, c *client.Client, ctx context.Context, service string, body ...[]byte) <-chan goResult {
	t.Helper()
	ch := make(chan goResult, 2)
	var calls atomic.Int32
	err := c.Go(ctx, service, body, func(reply [][]byte, err error) {
		if calls.Add(1) > 1 {
			t.Errorf("done called again for %s: %q, %v", service, reply, err)
		}
		ch <- goResult{reply, err}
	})
	if err != nil {
		t.Fatalf("Go(%s): %v", service, err)
	}
	return ch
}

func await(t *testing.T, ch <-chan goResult) goResult {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("done never called")
		return goResult{}
	}
}

// TestGo: Go delivers replies to done, one request per service on the
// wire as Request does, from one goroutine.
func TestGo(t *testing.T) {
	b := harness.StartBroker(t)
	harness.RunWorker(t, b.Endpoint, "echo", worker.HandlerFunc(harness.Echo), worker.WithConcurrency(4))
	c := harness.Connect(t, b.Endpoint)
	harness.WaitService(t, c, "echo")
	ctx := context.Background()
	var chans []<-chan goResult
	for i := range 20 {
		chans = append(chans, goCall(t, c, ctx, "echo", fmt.Appendf(nil, "m%d", i)))
	}
	for i, ch := range chans {
		r := await(t, ch)
		if r.err != nil || len(r.reply) != 1 || string(r.reply[0]) != fmt.Sprintf("m%d", i) {
			t.Fatalf("call %d: %q, %v", i, r.reply, r.err)
		}
	}
	if err := c.Go(ctx, "", nil, func([][]byte, error) { t.Error("done called for an empty service") }); !errors.Is(err, client.ErrEmptyService) {
		t.Errorf("empty service: %v", err)
	}
	done, cancel := context.WithCancel(ctx)
	cancel()
	if err := c.Go(done, "echo", nil, func([][]byte, error) { t.Error("done called for an ended context") }); !errors.Is(err, context.Canceled) {
		t.Errorf("ended context: %v", err)
	}
}

// TestGoDeadline: a Go call whose context ends gets the context's error;
// its late reply is not taken for the next call to the service, which goes
// out on a new socket.
func TestGoDeadline(t *testing.T) {
	b := harness.StartBroker(t)
	var n atomic.Int32
	harness.RunWorker(t, b.Endpoint, "slow", worker.HandlerFunc(func(ctx context.Context, req *worker.Request) ([][]byte, error) {
		if n.Add(1) == 1 {
			// Answers while the next call waits.
			time.Sleep(300 * time.Millisecond)
			return [][]byte{[]byte("late")}, nil
		}
		time.Sleep(400 * time.Millisecond)
		return [][]byte{[]byte("right")}, nil
	}), worker.WithConcurrency(2))
	c := harness.Connect(t, b.Endpoint, client.WithTimeout(5*time.Second))
	harness.WaitService(t, c, "slow")
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	r := await(t, goCall(t, c, ctx, "slow", []byte("1")))
	if !errors.Is(r.err, client.ErrTimeout) || !errors.Is(r.err, context.DeadlineExceeded) {
		t.Fatalf("first call: %q, %v; want ErrTimeout and DeadlineExceeded", r.reply, r.err)
	}
	r = await(t, goCall(t, c, context.Background(), "slow", []byte("2")))
	if r.err != nil || string(r.reply[0]) != "right" {
		t.Fatalf("second call: %q, %v; want \"right\", not the first call's late reply", r.reply, r.err)
	}
}

// TestGoClose: closing the client answers its Go calls with ErrClosed, and
// Go on a closed client fails without calling done.
func TestGoClose(t *testing.T) {
	b := harness.StartBroker(t)
	c := harness.Connect(t, b.Endpoint, client.WithTimeout(5*time.Second))
	var chans []<-chan goResult
	for i := range 10 {
		chans = append(chans, goCall(t, c, context.Background(), fmt.Sprintf("nobody%d", i%3)))
	}
	c.Close()
	for i, ch := range chans {
		if r := await(t, ch); !errors.Is(r.err, client.ErrClosed) {
			t.Errorf("call %d after Close: %q, %v; want ErrClosed", i, r.reply, r.err)
		}
	}
	if err := c.Go(context.Background(), "echo", nil, func([][]byte, error) { t.Error("done called on a closed client") }); !errors.Is(err, client.ErrClosed) {
		t.Errorf("Go after Close: %v", err)
	}
}
