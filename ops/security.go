package ops

import (
	"slices"
	"strings"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/majordomo-go/majordomo/auth"
	"github.com/majordomo-go/majordomo/broker"
	"github.com/majordomo-go/majordomo/emqp"
)

// FrontHTTP is the front name of the operations server itself.
const FrontHTTP = "http"

// ReasonPolicy is the refusal reason of whatever the per-service policy
// refused after the handshake (an MDP REQUEST or READY, an eMQP REQUEST,
// INFORM, SCHEDULE, ...); the other reasons are auth.Reason names.
const ReasonPolicy = "policy"

// EMQPSecuritySource is what the security report reads from an eMQP
// server: emqp.Server satisfies it. Stats is cheaper than Status.
type EMQPSecuritySource interface {
	Stats() emqp.Stats
	Listeners() []auth.Listener
	ConnStats() []auth.ConnStats
}

// SecurityInfo is the "security" section of GET /api/v1/status.
type SecurityInfo struct {
	// Mechanism is what the MDP endpoints speak: CURVE, PLAIN or NULL.
	Mechanism string `json:"mechanism"`
	// Policy is true when a per-service policy is in force.
	Policy bool `json:"policy"`
	// Plaintext lists every listening endpoint that is neither
	// authenticated nor encrypted, in-process ones excepted.
	Plaintext []string `json:"plaintext_endpoints"`
	// Fronts are the protocol fronts, sorted by name.
	Fronts []FrontInfo `json:"fronts"`
}

// FrontInfo is one front of a SecurityInfo.
type FrontInfo struct {
	Front     string         `json:"front"`
	Endpoints []EndpointInfo `json:"endpoints"`
	// Accepted counts the handshakes admitted.
	Accepted uint64 `json:"accepted"`
	// Refused counts refusals by reason: handshake reasons (auth.Reason
	// names) and ReasonPolicy.
	Refused map[string]uint64 `json:"refused"`
	// Connections are the transport's counters of the front's socket
	// (absent for the HTTP front).
	Connections *ConnInfo `json:"connections,omitempty"`
}

// ConnInfo are the connection counters of one front (auth.ConnStats).
type ConnInfo struct {
	Open            int    `json:"open"`
	Accepted        uint64 `json:"accepted"`
	HandshakeFailed uint64 `json:"handshake_failed"`
	AuthRefused     uint64 `json:"auth_refused"`
	ProtocolErrors  uint64 `json:"protocol_errors"`
	TooLarge        uint64 `json:"too_large"`
	RefusedLimit    uint64 `json:"refused_limit"`
	Disconnected    uint64 `json:"disconnected"`
	HWMDropped      uint64 `json:"hwm_dropped"`
}

// connEvents names the counters of a ConnInfo in
// mdbroker_connection_events_total, in a fixed order.
var connEvents = []struct {
	name string
	get  func(*ConnInfo) uint64
}{
	{"accepted", func(c *ConnInfo) uint64 { return c.Accepted }},
	{"handshake_failed", func(c *ConnInfo) uint64 { return c.HandshakeFailed }},
	{"auth_refused", func(c *ConnInfo) uint64 { return c.AuthRefused }},
	{"protocol_error", func(c *ConnInfo) uint64 { return c.ProtocolErrors }},
	{"too_large", func(c *ConnInfo) uint64 { return c.TooLarge }},
	{"refused_limit", func(c *ConnInfo) uint64 { return c.RefusedLimit }},
	{"disconnected", func(c *ConnInfo) uint64 { return c.Disconnected }},
}

// EndpointInfo is one listening endpoint of a front.
type EndpointInfo struct {
	Endpoint  string `json:"endpoint"`
	Mechanism string `json:"mechanism"`
	Plaintext bool   `json:"plaintext"`
}

// security is what the Server knows beyond the broker's Status: the eMQP
// server, if any, and its own listener.
type security struct {
	emqp atomic.Pointer[EMQPSecuritySource]
	http atomic.Pointer[auth.Listener]
}

// fronts gathers every front's listeners and counters. The handshake
// counters come from the broker's Authenticator, which mdbroker shares with
// the eMQP fronts; an eMQP server with an Authenticator of its own adds the
// fronts the broker's does not count.
func (sec *security) fronts(st *broker.Status) *SecurityInfo {
	info := &SecurityInfo{Mechanism: st.Security, Policy: st.Policy, Plaintext: []string{}}
	byName := map[string]*FrontInfo{}
	front := func(name string) *FrontInfo {
		f := byName[name]
		if f == nil {
			f = &FrontInfo{Front: name, Endpoints: []EndpointInfo{}, Refused: map[string]uint64{}}
			byName[name] = f
		}
		return f
	}
	listen := func(ls []auth.Listener) {
		for _, l := range ls {
			f := front(l.Front)
			f.Endpoints = append(f.Endpoints, EndpointInfo{Endpoint: l.Endpoint, Mechanism: l.Mechanism, Plaintext: l.Plaintext()})
			if l.Plaintext() {
				info.Plaintext = append(info.Plaintext, l.Endpoint)
			}
		}
	}
	conns := func(cs []auth.ConnStats) {
		for _, c := range cs {
			front(c.Front).Connections = &ConnInfo{
				Open: c.Open, Accepted: c.Accepted, HandshakeFailed: c.HandshakeFailed, AuthRefused: c.AuthRefused,
				ProtocolErrors: c.ProtocolErrors, TooLarge: c.TooLarge, RefusedLimit: c.RefusedLimit,
				Disconnected: c.Disconnected, HWMDropped: c.HWMDropped,
			}
		}
	}
	handshakes := func(a auth.Stats, only func(string) bool) {
		for _, fs := range a.Fronts {
			if only != nil && !only(fs.Front) {
				continue
			}
			f := front(fs.Front)
			f.Accepted = fs.Accepted
			for _, r := range auth.Reasons() {
				if n := fs.RefusedBy(r); n > 0 {
					f.Refused[r.String()] = n
				}
			}
		}
	}
	listen(st.Listeners)
	conns(st.Conns)
	handshakes(st.Auth, nil)
	front(broker.FrontMDP).Refused[ReasonPolicy] = st.DroppedBy(broker.DropUnauthorizedCall) + st.DroppedBy(broker.DropUnauthorizedReady)
	if p := sec.emqp.Load(); p != nil {
		src := *p
		ls := src.Listeners()
		listen(ls)
		conns(src.ConnStats())
		est := src.Stats()
		for _, l := range ls {
			if l.Front != emqp.FrontPubOut { // PUB receives nothing to refuse.
				front(l.Front).Refused[ReasonPolicy] = est.UnauthorizedOn(l.Front)
			}
		}
	}
	if l := sec.http.Load(); l != nil {
		listen([]auth.Listener{*l})
	}
	for _, f := range byName {
		info.Fronts = append(info.Fronts, *f)
	}
	slices.SortFunc(info.Fronts, func(a, b FrontInfo) int { return strings.Compare(a.Front, b.Front) })
	return info
}

// securityDescs are the security metrics, emitted by the Collector.
type securityDescs struct {
	accepted, refused, listener, connEvents, openConns, hwmDropped *prometheus.Desc
}

func newSecurityDescs() securityDescs {
	return securityDescs{
		accepted: prometheus.NewDesc("mdbroker_auth_accepted_total", "Handshakes admitted by the ZAP handler, by front.", []string{"front"}, nil),
		refused: prometheus.NewDesc("mdbroker_auth_refused_total",
			`Refusals by front and reason: handshakes refused by the ZAP handler (unknown_key, address_denied, ...), and what the per-service policy refused after the handshake (reason="policy").`,
			[]string{"front", "reason"}, nil),
		listener: prometheus.NewDesc("mdbroker_listener_info",
			"One series per listening endpoint with its front and mechanism (CURVE, PLAIN, NULL); plaintext=\"true\" for an endpoint neither authenticated nor encrypted.",
			[]string{"front", "endpoint", "mechanism", "plaintext"}, nil),
		connEvents: prometheus.NewDesc("mdbroker_connection_events_total",
			`What happened to the connections of each front's socket, below any protocol: accepted, handshake_failed (garbage, handshake deadline, wrong mechanism or socket type), auth_refused, protocol_error (malformed frame or command), too_large (frame over max-frame-size), refused_limit (too many connections), disconnected (ended after the handshake).`,
			[]string{"front", "event"}, nil),
		openConns: prometheus.NewDesc("mdbroker_open_connections", "Connections past their handshake, by front.", []string{"front"}, nil),
		hwmDropped: prometheus.NewDesc("mdbroker_hwm_dropped_messages_total",
			"Messages a front's socket dropped at a peer's high-water mark (the eMQP PUB front's slow subscribers; the routers report full peers to the server, which counts those drops by reason).",
			[]string{"front"}, nil),
	}
}

func (d *securityDescs) all() []*prometheus.Desc {
	return []*prometheus.Desc{d.accepted, d.refused, d.listener, d.connEvents, d.openConns, d.hwmDropped}
}

// collect emits the security metrics of info.
func (d *securityDescs) collect(ch chan<- prometheus.Metric, info *SecurityInfo) {
	for _, f := range info.Fronts {
		for _, e := range f.Endpoints {
			plaintext := "false"
			if e.Plaintext {
				plaintext = "true"
			}
			ch <- prometheus.MustNewConstMetric(d.listener, prometheus.GaugeValue, 1, f.Front, e.Endpoint, e.Mechanism, plaintext)
		}
		if c := f.Connections; c != nil {
			for _, e := range connEvents {
				ch <- prometheus.MustNewConstMetric(d.connEvents, prometheus.CounterValue, float64(e.get(c)), f.Front, e.name)
			}
			ch <- prometheus.MustNewConstMetric(d.openConns, prometheus.GaugeValue, float64(c.Open), f.Front)
			ch <- prometheus.MustNewConstMetric(d.hwmDropped, prometheus.CounterValue, float64(c.HWMDropped), f.Front)
		}
		if f.Front == FrontHTTP {
			continue // No handshake, no policy.
		}
		ch <- prometheus.MustNewConstMetric(d.accepted, prometheus.CounterValue, float64(f.Accepted), f.Front)
		for _, r := range auth.Reasons() {
			ch <- prometheus.MustNewConstMetric(d.refused, prometheus.CounterValue, float64(f.Refused[r.String()]), f.Front, r.String())
		}
		ch <- prometheus.MustNewConstMetric(d.refused, prometheus.CounterValue, float64(f.Refused[ReasonPolicy]), f.Front, ReasonPolicy)
	}
}

// AddEMQPSecurity adds an eMQP server's fronts to the security report and
// metrics (AddEMQP does it for an emqp.Server).
func (s *Server) AddEMQPSecurity(src EMQPSecuritySource) {
	s.sec.emqp.Store(&src)
}
