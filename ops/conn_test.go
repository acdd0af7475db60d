package ops

import (
	"encoding/json"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/majordomo-go/majordomo/broker"
	"github.com/majordomo-go/majordomo/emqp"
	"github.com/majordomo-go/majordomo/internal/testutil"
	"github.com/majordomo-go/majordomo/internal/testutil/dealer"
	"github.com/majordomo-go/majordomo/internal/transport"
)

// sendGarbage connects to a tcp:// endpoint, writes what no ZMTP peer sends
// and waits for the server to close the connection.
func sendGarbage(t *testing.T, endpoint string) {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(endpoint, "tcp://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("GET / HTTP/1.1\r\nHost: broker\r\n\r\n" + strings.Repeat("x", 64))); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(testutil.WaitLimit))
	buf := make([]byte, 256)
	for {
		if _, err := c.Read(buf); err != nil {
			return // Closed by the server (or the deadline: the counters tell).
		}
	}
}

// A garbage greeting on the MDP front and on an eMQP front is counted
// under its front, in /metrics and in the status API's security section.
func TestConnectionEvents(t *testing.T) {
	b := startBroker(t, broker.Config{})
	srv, base := startServer(t, b, 100)
	e := startEMQP(t, srv)

	sendGarbage(t, b.Endpoints()[0])
	sendGarbage(t, b.Endpoints()[0])
	sendGarbage(t, e.Endpoints().Backend)
	d := dealer.Dial(t, b.Endpoints()[0], transport.Options{})
	d.Send([][]byte{{}, []byte("MDPC01"), []byte("mmi.service"), []byte("echo")}, false)
	// The reply proves the handshake done: the connection is open.
	if ok, err := d.WaitReadable(testutil.WaitLimit); !ok || err != nil {
		t.Fatalf("no mmi.service reply: %v", err)
	}

	event := func(front, ev string) float64 {
		return value(t, scrape(t, base), "mdbroker_connection_events_total", "front", front, "event", ev)
	}
	testutil.Eventually(t, testutil.WaitLimit, "handshake failures counted", func() bool {
		return event(broker.FrontMDP, "handshake_failed") == 2 && event(emqp.FrontBackend, "handshake_failed") == 1
	})
	fams := scrape(t, base)
	if got := value(t, fams, "mdbroker_connection_events_total", "front", broker.FrontMDP, "event", "accepted"); got != 3 {
		t.Errorf("mdp accepted = %v, want 3", got)
	}
	if got := value(t, fams, "mdbroker_open_connections", "front", broker.FrontMDP); got != 1 {
		t.Errorf("mdp open = %v, want 1", got)
	}
	if got := value(t, fams, "mdbroker_connection_events_total", "front", emqp.FrontFrontend, "event", "handshake_failed"); got != 0 {
		t.Errorf("emqp-frontend handshake_failed = %v, want 0", got)
	}
	if find(fams, "mdbroker_connection_events_total", "front", FrontHTTP) != nil {
		t.Error("connection events for the HTTP front")
	}

	_, _, body := get(t, base+"/api/v1/status")
	var r StatusResponse
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		t.Fatal(err)
	}
	var mdp *FrontInfo
	for i := range r.Security.Fronts {
		if r.Security.Fronts[i].Front == broker.FrontMDP {
			mdp = &r.Security.Fronts[i]
		}
	}
	if mdp == nil || mdp.Connections == nil || mdp.Connections.HandshakeFailed != 2 || mdp.Connections.Open != 1 {
		t.Errorf("status API, mdp front: %+v", mdp)
	}
}
