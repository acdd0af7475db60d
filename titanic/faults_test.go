package titanic_test

import (
	"context"
	"errors"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/majordomo-go/majordomo/client"
	"github.com/majordomo-go/majordomo/internal/testutil"
	"github.com/majordomo-go/majordomo/titanic"
	"github.com/majordomo-go/majordomo/worker"
)

// faultStore fails on demand.
type faultStore struct {
	titanic.Store
	failCommit, failRead atomic.Bool
}

var errInjected = errors.New("injected I/O error")

func (f *faultStore) Commit(ops []*titanic.Op) error {
	if f.failCommit.Load() {
		return errInjected
	}
	return f.Store.Commit(ops)
}

func (f *faultStore) Get(id titanic.ID) (titanic.Entry, error) {
	if f.failRead.Load() {
		return titanic.Entry{}, errInjected
	}
	return f.Store.Get(id)
}

// startFaulty runs a broker and a Titanic server whose bolt store fails
// on demand, and connects a client.
func startFaulty(t *testing.T) (string, *faultStore, *server, *client.Client) {
	t.Helper()
	ep := startBroker(t)
	b, err := titanic.OpenBolt(filepath.Join(t.TempDir(), "t.db"), titanic.BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	fs := &faultStore{Store: b}
	cfg := testConfig(ep, "")
	cfg.Store = fs
	return ep, fs, startTitanic(t, cfg), connect(t, ep)
}

// TestStoreFailures: when the store fails, every service answers 500 (9/TSP:
// "The server cannot complete the request due to some internal error. The
// client SHOULD retry"), nothing crashes, and service resumes when the store
// does.
func TestStoreFailures(t *testing.T) {
	_, fs, srv, c := startFaulty(t)
	id := submit(t, c, "nobody", "x")

	fs.failCommit.Store(true)
	if rep := call(t, c, titanic.ServiceRequest, "nobody", "y"); !reflect.DeepEqual(rep, []string{"500"}) {
		t.Errorf("titanic.request, commit failing: %q", rep)
	}
	if rep := call(t, c, titanic.ServiceClose, id); !reflect.DeepEqual(rep, []string{"500"}) {
		t.Errorf("titanic.close, commit failing: %q", rep)
	}
	fs.failRead.Store(true)
	if rep := call(t, c, titanic.ServiceReply, id); !reflect.DeepEqual(rep, []string{"500"}) {
		t.Errorf("titanic.reply, read failing: %q", rep)
	}
	if st := srv.srv.Stats(); st.Errors != 3 || st.StoreErrors != 3 || st.Submitted != 1 {
		t.Errorf("stats %+v", st)
	}
	fs.failCommit.Store(false)
	fs.failRead.Store(false)
	if rep := call(t, c, titanic.ServiceReply, id); rep[0] != "300" {
		t.Errorf("titanic.reply after recovery: %q", rep)
	}
	submit(t, c, "nobody", "z")
}

// TestStoreQuota: at MaxStoreBytes titanic.request answers 500; closing
// makes room.
func TestStoreQuota(t *testing.T) {
	ep := startBroker(t)
	cfg := testConfig(ep, t.TempDir())
	cfg.MaxStoreBytes = 1 << 20
	startTitanic(t, cfg)
	c := connect(t, ep)
	big := strings.Repeat("x", 16<<10)
	var ids []string
	for {
		rep := call(t, c, titanic.ServiceRequest, "nobody", big)
		if rep[0] == "500" {
			break
		}
		if rep[0] != "200" || len(ids) > 1000 {
			t.Fatalf("titanic.request: %q after %d", rep[0], len(ids))
		}
		ids = append(ids, rep[1])
	}
	for _, id := range ids[:len(ids)/2] {
		if rep := call(t, c, titanic.ServiceClose, id); rep[0] != "200" {
			t.Fatalf("close: %q", rep)
		}
	}
	submit(t, c, "nobody", big)
}

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		cfg  titanic.Config
		name string
	}{
		{titanic.Config{Dir: "d"}, "broker"},
		{titanic.Config{Broker: "udp://x", Dir: "d"}, "broker"},
		{titanic.Config{Broker: "tcp://127.0.0.1:1"}, "dir"},
		{titanic.Config{Broker: "tcp://127.0.0.1:1", Dir: "d", MaxInFlight: -1}, "max-in-flight"},
		{titanic.Config{Broker: "tcp://127.0.0.1:1", Dir: "d", RetryMin: 2e9, RetryMax: 1e9}, "retry-max"},
		{titanic.Config{Broker: "tcp://127.0.0.1:1", Dir: "d", RequestTTL: -1}, "request-ttl"},
	} {
		_, err := titanic.New(tc.cfg)
		if !errors.Is(err, titanic.ErrConfig) || !strings.Contains(err.Error(), tc.name) {
			t.Errorf("New(%+v): %v; want ErrConfig naming %q", tc.cfg, err, tc.name)
		}
	}
}

// TestReplyStoreRetry: a reply whose commit fails is kept and stored again
// later; the request is not sent to the worker again.
func TestReplyStoreRetry(t *testing.T) {
	ep, fs, srv, c := startFaulty(t)
	id := submit(t, c, "later", "x")
	fs.failCommit.Store(true)
	var calls atomic.Int32
	runWorker(t, ep, "later", func(ctx context.Context, req *worker.Request) ([][]byte, error) {
		calls.Add(1)
		return req.Body, nil
	})
	testutil.Eventually(t, 5*time.Second, "the worker", func() bool { return calls.Load() == 1 })
	time.Sleep(100 * time.Millisecond) // A few failed commits.
	if rep := call(t, c, titanic.ServiceReply, id); rep[0] != "300" {
		t.Fatalf("reply while its commit fails: %q, want 300", rep)
	}
	fs.failCommit.Store(false)
	if rep := awaitReply(t, c, id, 5*time.Second); rep[0] != "x" {
		t.Fatalf("reply %q", rep)
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("worker called %d times, want 1", n)
	}
	// The reply is readable once committed; the counter follows on the
	// dispatcher's goroutine.
	testutil.Eventually(t, 5*time.Second, "Replied 1", func() bool { return srv.srv.Stats().Replied == 1 })
	if st := srv.srv.Stats(); st.Replied != 1 {
		t.Errorf("stats %+v", st)
	}
}

func TestLocalEndpoint(t *testing.T) {
	for in, want := range map[string]string{
		"tcp://*:5555":         "tcp://127.0.0.1:5555",
		"tcp://0.0.0.0:5555":   "tcp://127.0.0.1:5555",
		"tcp://[::]:5555":      "tcp://[::1]:5555",
		"tcp://10.0.0.1:5555":  "tcp://10.0.0.1:5555",
		"tcp://127.0.0.1:5555": "tcp://127.0.0.1:5555",
		"ipc:///tmp/b.ipc":     "ipc:///tmp/b.ipc",
	} {
		if got := titanic.LocalEndpoint(in); got != want {
			t.Errorf("LocalEndpoint(%q) = %q, want %q", in, got, want)
		}
	}
}
