package broker

import (
	"fmt"
	"testing"

	"github.com/majordomo-go/majordomo/internal/transport"
	"github.com/majordomo-go/majordomo/mdp"
)

// The dispatch benchmarks drive the broker's message handling (decode,
// dispatch, encode) directly, with a socket that records sends instead of
// writing them: they measure the broker's own work per request, without
// libzmq, the cgo boundary or the network. Run them with
//
//	go test -run '^$' -bench Dispatch -benchmem ./broker
//
// One op is one request end to end: a client REQUEST handled (and sent to
// a worker, or queued) and the worker's FINAL handled (and sent to the
// client). allocs/op counts what the broker itself allocates per request.

// sinkSocket is a transport.Socket whose Send keeps the identity of the last
// message sent and drops the rest. The embedded interface (nil) satisfies
// the methods the benchmarks never call.
type sinkSocket struct {
	transport.Socket
	last  []byte
	sends int
}

func (s *sinkSocket) Send(frames [][]byte, dontwait bool) error {
	s.last = append(s.last[:0], frames[0]...)
	s.sends++
	return nil
}

// newDispatchBroker returns a broker whose socket is a sinkSocket. New binds a
// real socket, which is kept aside and closed at the end.
func newDispatchBroker(b *testing.B) (*Broker, *sinkSocket) {
	b.Helper()
	cfg := fastConfig()
	cfg.MaxQueue = 1 << 20
	br, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	real := br.sock
	b.Cleanup(func() {
		real.Close()
		br.zctx.Term()
	})
	sink := &sinkSocket{}
	br.sock = sink
	return br, sink
}

func encode(b *testing.B, id string, m *mdp.Message) [][]byte {
	b.Helper()
	f, err := mdp.Encode(m)
	if err != nil {
		b.Fatal(err)
	}
	return append([][]byte{[]byte(id)}, f...)
}

func clientRequest(b *testing.B, v mdp.Version, client, service string, body []byte) [][]byte {
	return encode(b, client, &mdp.Message{Version: v, Role: mdp.RoleClient, Command: mdp.Request,
		Service: []byte(service), Body: [][]byte{body}, Delimited: v == mdp.V1})
}

func workerFinal(b *testing.B, v mdp.Version, worker, client string, body []byte) [][]byte {
	return encode(b, worker, &mdp.Message{Version: v, Role: mdp.RoleWorker, Command: mdp.Final,
		Client: []byte(client), Body: [][]byte{body}, Delimited: v == mdp.V1})
}

// register registers workers w0..w(n-1) spread over services services.
func register(b *testing.B, br *Broker, v mdp.Version, n, services int) []string {
	ids := make([]string, n)
	for i := range n {
		ids[i] = fmt.Sprintf("w%05d", i)
		svc := svcName(i%services, services)
		br.handle(encode(b, ids[i], &mdp.Message{Version: v, Role: mdp.RoleWorker, Command: mdp.Ready,
			Service: []byte(svc), Delimited: v == mdp.V1}))
	}
	if got := len(br.workers); got != n {
		b.Fatalf("%d workers registered, want %d", got, n)
	}
	return ids
}

func svcName(i, n int) string {
	if n == 1 {
		return "echo"
	}
	return fmt.Sprintf("echo-%04d", i)
}

// BenchmarkDispatch measures one request through an idle worker (REQUEST
// in, REQUEST out to the worker, FINAL in, FINAL out to the client), for
// both protocol versions and for 1,000 workers over 100 services (the cost
// must not grow with them).
func BenchmarkDispatch(b *testing.B) {
	body := make([]byte, 100)
	for _, tc := range []struct {
		name              string
		v                 mdp.Version
		workers, services int
	}{
		{"v2/1worker", mdp.V2, 1, 1},
		{"v1/1worker", mdp.V1, 1, 1},
		{"v2/2workers", mdp.V2, 2, 1},
		{"v2/1000workers_100services", mdp.V2, 1000, 100},
	} {
		b.Run(tc.name, func(b *testing.B) {
			br, sink := newDispatchBroker(b)
			register(b, br, tc.v, tc.workers, tc.services)
			reqs := make([][][]byte, tc.services)
			for i := range reqs {
				reqs[i] = clientRequest(b, tc.v, "client-1", svcName(i, tc.services), body)
			}
			// Workers' FINALs by worker id, built once.
			finals := map[string][][]byte{}
			for _, w := range br.workers {
				finals[w.key] = workerFinal(b, tc.v, w.key, "client-1", body)
			}
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			b.ResetTimer()
			i := 0
			for b.Loop() {
				br.handle(reqs[i%len(reqs)])
				br.handle(finals[string(sink.last)])
				i++
			}
			b.StopTimer()
			if br.stats.Replies != uint64(i) {
				b.Fatalf("%d replies for %d requests", br.stats.Replies, i)
			}
		})
	}
}

// BenchmarkDispatchQueued measures the queued path: 100 requests wait for
// one worker, as with a client window of 100; each op is one FINAL (which
// hands the worker the next queued request) and one new REQUEST (queued).
func BenchmarkDispatchQueued(b *testing.B) {
	body := make([]byte, 100)
	for _, clients := range []int{1, 10} {
		b.Run(fmt.Sprintf("%dclients", clients), func(b *testing.B) {
			br, sink := newDispatchBroker(b)
			ids := register(b, br, mdp.V2, 1, 1)
			reqs := make([][][]byte, clients)
			finals := map[string][][]byte{}
			for c := range clients {
				id := fmt.Sprintf("client-%d", c)
				reqs[c] = clientRequest(b, mdp.V2, id, "echo", body)
				finals[id] = workerFinal(b, mdp.V2, ids[0], id, body)
			}
			for i := range 100 {
				br.handle(reqs[i%clients])
			}
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			b.ResetTimer()
			i := 0
			for b.Loop() {
				// The last send went to the worker: answer the request it holds.
				br.handle(finals[string(br.workers[ids[0]].req.client)])
				br.handle(reqs[i%clients])
				i++
			}
			b.StopTimer()
			_ = sink
			if br.stats.Replies != uint64(i) {
				b.Fatalf("%d replies for %d ops", br.stats.Replies, i)
			}
		})
	}
}
