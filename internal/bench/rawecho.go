package bench

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/majordomo-go/majordomo/internal/transport"
	"github.com/majordomo-go/majordomo/mdp"
)

// rawEcho is a plain ROUTER echo over this project's transport, with no
// broker logic: the "raw" side of broker / raw. Every message goes back as
// received, except that an 18/MDP client REQUEST goes back as a FINAL, so
// that the Majordomo client library takes it as the broker's answer (a 7/MDP
// request already has the shape of its reply). Control messages as in
// bench/c/echo_server.c are not needed: its CPU is measured from outside.
type rawEcho struct {
	endpoint string
	cancel   context.CancelFunc
	done     chan error
	// tids are its loop thread and the threads of its libzmq context, for
	// an in-process CPU estimate.
	tids []int
}

func startRawEcho(bind string, lockThread bool) (*rawEcho, error) {
	ready := make(chan error, 1)
	r := &rawEcho{done: make(chan error, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() {
		// With lockThread the loop keeps one OS thread for itself, so that
		// its CPU time can be read per thread when it shares a process with
		// the load (at the price of a thread hand-off on every wake-up).
		if lockThread {
			runtime.LockOSThread()
		}
		before := threads()
		zc, err := transport.NewContext()
		if err != nil {
			ready <- err
			return
		}
		s, err := zc.NewSocket(transport.Router, transport.Options{SendHWM: 100000, RecvHWM: 100000})
		if err == nil {
			r.endpoint, err = s.Bind(bind)
		}
		if err != nil {
			zc.Term()
			ready <- err
			return
		}
		if lockThread {
			r.tids = append(newThreads(before, "ZMQbg"), syscall.Gettid())
		}
		ready <- nil
		r.done <- serveEcho(ctx, s)
		s.Close()
		zc.Term()
	}()
	if err := <-ready; err != nil {
		cancel()
		return nil, fmt.Errorf("raw echo: %w", err)
	}
	return r, nil
}

func serveEcho(ctx context.Context, s transport.Socket) error {
	stop := context.AfterFunc(ctx, s.Wake)
	defer stop()
	for ctx.Err() == nil {
		ok, err := s.WaitReadable(time.Second)
		if err != nil && !errors.Is(err, transport.ErrInterrupted) {
			return err
		}
		for ok {
			f, _, err := s.Recv(0, true)
			if err != nil {
				break
			}
			if len(f) >= 3 && string(f[1]) == mdp.ClientV2 && len(f[2]) == 1 && f[2][0] == 0x01 {
				f[2][0] = 0x03 // REQUEST -> FINAL (18/MDP client command bytes).
			}
			if err := s.Send(f, false); err != nil && !errors.Is(err, transport.ErrUnroutable) {
				return err
			}
		}
	}
	return nil
}

func (r *rawEcho) stop() error {
	r.cancel()
	return <-r.done
}

// newThreads returns the threads of this process that did not exist in
// before and whose name starts with prefix.
func newThreads(before map[int]string, prefix string) []int {
	var out []int
	for tid, name := range threads() {
		if _, ok := before[tid]; !ok && strings.HasPrefix(name, prefix) {
			out = append(out, tid)
		}
	}
	return out
}

// threadsCPU sums the CPU time of the given threads of this process.
func threadsCPU(tids []int) func() (time.Duration, error) {
	return func() (time.Duration, error) {
		var sum time.Duration
		for _, t := range tids {
			d, err := threadCPU(t)
			if err != nil {
				return 0, err
			}
			sum += d
		}
		return sum, nil
	}
}

// remoteCPU asks an external echo server (bench/c/echo_server) for its CPU
// time with the "$CPU" control message.
func remoteCPU(endpoint string) func() (time.Duration, error) {
	return func() (time.Duration, error) {
		zc, err := transport.NewContext()
		if err != nil {
			return 0, err
		}
		defer zc.Term()
		s, err := zc.NewSocket(transport.Dealer, transport.Options{})
		if err != nil {
			return 0, err
		}
		defer s.Close()
		if err := s.Connect(endpoint); err != nil {
			return 0, err
		}
		if err := s.Send([][]byte{[]byte("$CPU")}, false); err != nil {
			return 0, err
		}
		ok, err := s.WaitReadable(5 * time.Second)
		if err != nil || !ok {
			return 0, fmt.Errorf("no $CPU answer from %s: %v", endpoint, err)
		}
		f, _, err := s.Recv(0, true)
		if err != nil {
			return 0, err
		}
		var u, k int64
		if len(f) != 1 {
			return 0, fmt.Errorf("bad $CPU answer from %s", endpoint)
		}
		if _, err := fmt.Sscanf(string(f[0]), "%d %d", &u, &k); err != nil {
			return 0, fmt.Errorf("bad $CPU answer from %s: %q", endpoint, f[0])
		}
		return time.Duration(u+k) * time.Microsecond, nil
	}
}
