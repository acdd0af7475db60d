package broker

import (
	"testing"
	"time"

	"github.com/majordomo-go/majordomo/auth"
	"github.com/majordomo-go/majordomo/mdp"
)

// TestInternalEndpointUnderPolicy: with CURVE and a policy, an in-process
// peer on Config.Internal needs no key and may register what no network
// peer may (titanic.*); a CURVE client reaches through titanic.request
// only the services it may call itself.
func TestInternalEndpointUnderPolicy(t *testing.T) {
	p := newPKI(t, "client")
	cfg := secureConfig(p.security("client call titanic.request a\n"))
	internal := "inproc://broker-test-internal"
	cfg.Internal = []string{internal}
	b := startBroker(t, cfg)

	var seen bool
	for _, l := range b.Status().Listeners {
		if l.Front == FrontInternal {
			seen = l.Endpoint == internal && !l.Plaintext()
		} else if l.Mechanism != auth.MechanismCurve {
			t.Errorf("listener %+v", l)
		}
	}
	if !seen {
		t.Fatalf("listeners %+v", b.Status().Listeners)
	}
	for _, ep := range b.Endpoints() {
		if ep == internal {
			t.Fatalf("internal endpoint among the network endpoints %v", b.Endpoints())
		}
	}

	titanic := newPeer(t, internal)
	titanic.register(b, mdp.V1, "titanic.request")
	if s := b.Stats(); s.RemovedBy(RemovedUnauthorized) != 0 {
		t.Fatalf("internal worker refused: %+v", s)
	}

	c := newSecurePeer(t, b.ep, p.curve(p.cert("client")))
	c.request(mdp.V1, "titanic.request", "secret", "x")
	waitFor(t, b, "the refused call counted", func(s Stats) bool { return s.DroppedBy(DropUnauthorizedCall) == 1 })
	titanic.expectNothing()
	if s := b.Stats(); s.DroppedBy(DropUnauthorizedCall) != 1 {
		t.Fatalf("titanic.request for a service the client may not call: %+v", s)
	}
	c.request(mdp.V1, "titanic.request", "a", "x")
	client, body := titanic.getRequest(2 * time.Second)
	if len(body) != 2 || string(body[0]) != "a" {
		t.Fatalf("body %q", body)
	}
	titanic.reply(mdp.V1, mdp.Final, client, "200", "uuid")
	c.getReply(2*time.Second, mdp.V1, mdp.Final)

	// The in-process peer calls services no policy line names.
	titanic.request(mdp.V1, "unnamed", "x")
	waitFor(t, b, "request queued", func(s Stats) bool { return s.Queued == 1 })
	if s := b.Stats(); s.DroppedBy(DropUnauthorizedCall) != 1 {
		t.Fatalf("in-process call refused: %+v", s)
	}
}

// TestInternalMustBeInproc: Config.Internal takes inproc:// endpoints only.
func TestInternalMustBeInproc(t *testing.T) {
	cfg := fastConfig()
	cfg.Internal = []string{"tcp://127.0.0.1:*"}
	if _, err := New(cfg); err == nil {
		t.Fatal("tcp internal endpoint accepted")
	}
}
