package ops

import (
	"context"
	"testing"

	"github.com/majordomo-go/majordomo/broker"
	"github.com/majordomo-go/majordomo/emqp"
	"github.com/majordomo-go/majordomo/internal/testutil"
	"github.com/majordomo-go/majordomo/internal/testutil/dealer"
	"github.com/majordomo-go/majordomo/internal/transport"
)

// TestEMQPMetrics: a job manager's INFORM and a client's REQUEST show up in
// the eMQP metrics of /metrics.
// startEMQP runs an eMQP server with a frontend and a backend on
// ephemeral ports until the test ends, its metrics added to srv.
func startEMQP(t *testing.T, srv *Server) *emqp.Server {
	t.Helper()
	e, err := emqp.New(emqp.Config{Frontend: "tcp://127.0.0.1:*", Backend: "tcp://127.0.0.1:*", Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- e.Run(context.Background()) }()
	t.Cleanup(func() { e.Close(); <-done })
	if err := srv.AddEMQP(e); err != nil {
		t.Fatal(err)
	}
	return e
}

func TestEMQPMetrics(t *testing.T) {
	b := startBroker(t, broker.Config{})
	srv, base := startServer(t, b, 100)
	e := startEMQP(t, srv)
	eps := e.Endpoints()
	jm := dealer.Dial(t, eps.Backend, transport.Options{})
	str := func(ss ...string) [][]byte {
		out := make([][]byte, len(ss))
		for i, s := range ss {
			out[i] = []byte(s)
		}
		return out
	}
	jm.Send(str("", "eMQP/1.0", "INFORM", "m1", `[[10, "jobs"]]`, "worker"), false)
	// The queue exists once the INFORM is in; a REQUEST before that would
	// go to the default queue, as in EventMQ.
	testutil.Eventually(t, testutil.WaitLimit, "the job manager registered", func() bool { return e.Status().Stats.Workers == 1 })
	cl := dealer.Dial(t, eps.Frontend, transport.Options{})
	cl.Send(str("", "eMQP/1.0", "REQUEST", "r1", "jobs", "", "payload"), false)
	if !testutil.Poll(testutil.WaitLimit, func() bool { return e.Status().Requests >= 1 && e.Status().Stats.Workers >= 1 }) {
		t.Fatalf("eMQP traffic not seen: %+v", e.Status().Stats)
	}
	fams := scrape(t, base)
	if got := value(t, fams, "mdbroker_emqp_requests_total"); got != 1 {
		t.Errorf("mdbroker_emqp_requests_total = %v, want 1", got)
	}
	if got := value(t, fams, "mdbroker_emqp_job_managers"); got != 1 {
		t.Errorf("mdbroker_emqp_job_managers = %v, want 1", got)
	}
	if got := value(t, fams, "mdbroker_emqp_queue_waiting_requests", "queue", "jobs"); got != 1 {
		t.Errorf(`mdbroker_emqp_queue_waiting_requests{queue="jobs"} = %v, want 1 (no READY yet); queues %+v`, got, e.Status().Queues)
	}
}
