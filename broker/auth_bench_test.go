package broker

import (
	"testing"
	"time"

	"github.com/majordomo-go/majordomo/internal/transport"
)

// BenchmarkEchoSecurity measures echo requests through an in-process broker
// (two raw echo workers, one raw client keeping 100 requests in flight, 100
// byte bodies) without security, with CURVE, and with CURVE and a policy
// checked on every request. cpu-us/req is the process's CPU time per
// request, which a busy machine disturbs far less than req/s. Compare runs
// on one machine only, e.g.
//
//	go test -run - -bench EchoSecurity -count 3 ./broker
//	taskset -c 0 go test -run - -bench EchoSecurity -count 3 ./broker
func BenchmarkEchoSecurity(b *testing.B) {
	for _, mode := range []string{"off", "curve", "curve+policy"} {
		b.Run(mode, func(b *testing.B) { benchSecureEcho(b, mode, 100) })
	}
}

func benchSecureEcho(b *testing.B, mode string, window int) {
	p := newPKI(b, "client", "worker")
	cfg := tcpConfig()
	cfg.HeartbeatInterval = time.Second
	peerSec := func(string) *transport.Security { return nil }
	if mode != "off" {
		policy := ""
		if mode == "curve+policy" {
			policy = "worker register echo\nclient call echo\n"
		}
		cfg.Security = p.security(policy)
		peerSec = func(name string) *transport.Security { return p.curve(p.cert(name)) }
	}
	benchEchoWith(b, cfg, peerSec, window)
}
