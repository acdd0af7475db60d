package auth

import (
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/majordomo-go/majordomo/internal/ratelog"
)

// Reason says why a handshake was refused.
type Reason uint8

// Refusal reasons.
const (
	refusedNone              Reason = iota
	RefusedUnknownKey               // CURVE key not in the allow-list.
	RefusedUnknownUser              // PLAIN user not in the password file.
	RefusedBadPassword              // PLAIN password wrong.
	RefusedAddressDenied            // Address on the deny list.
	RefusedAddressNotAllowed        // Allow list set and the address not on it.
	RefusedMechanism                // A mechanism this authenticator does not admit.
	RefusedMalformed                // A ZAP request that does not follow 27/ZAP.
	numReasons
)

var reasonNames = [numReasons]string{"", "unknown_key", "unknown_user", "bad_password",
	"address_denied", "address_not_allowed", "mechanism", "malformed"}

// String returns the reason's snake_case name, as in logs.
func (r Reason) String() string {
	if r < numReasons {
		return reasonNames[r]
	}
	return fmt.Sprintf("reason_%d", uint8(r))
}

// Reasons lists every refusal reason.
func Reasons() []Reason {
	out := make([]Reason, 0, numReasons-1)
	for r := refusedNone + 1; r < numReasons; r++ {
		out = append(out, r)
	}
	return out
}

// Stats counts ZAP decisions.
type Stats struct {
	Accepted uint64             // Handshakes admitted.
	Refused  [numReasons]uint64 // Handshakes refused, by Reason.
	Reloads  uint64             // Successful Reloads.
	Keys     int                // CURVE keys in the allow-list now.
	Users    int                // PLAIN users now.
	// Fronts splits Accepted and Refused by the ZAP domain of the socket
	// that asked (Request.Domain), which servers set to the name of the
	// front ("mdp", "emqp-backend", ...); sorted by name.
	Fronts []FrontStats
}

// FrontStats are the ZAP decisions for one front (ZAP domain).
type FrontStats struct {
	Front    string
	Accepted uint64
	Refused  [numReasons]uint64
}

// RefusedBy returns the refusals for reason r.
func (s FrontStats) RefusedBy(r Reason) uint64 {
	if r < numReasons {
		return s.Refused[r]
	}
	return 0
}

// TotalRefused returns all refusals of the front.
func (s FrontStats) TotalRefused() uint64 {
	var n uint64
	for _, v := range s.Refused {
		n += v
	}
	return n
}

// Front returns the counters of one front (zero if it has none).
func (s Stats) Front(name string) FrontStats {
	for _, f := range s.Fronts {
		if f.Front == name {
			return f
		}
	}
	return FrontStats{Front: name}
}

// RefusedBy returns the refusals for reason r.
func (s Stats) RefusedBy(r Reason) uint64 {
	if r < numReasons {
		return s.Refused[r]
	}
	return 0
}

// TotalRefused returns all refusals.
func (s Stats) TotalRefused() uint64 {
	var n uint64
	for _, v := range s.Refused {
		n += v
	}
	return n
}

// Config says what an Authenticator admits. Files are read by
// NewAuthenticator and again by Reload.
type Config struct {
	// CurveAllowDir is a directory of public certificates (see
	// LoadAllowDir): a CURVE peer is admitted only if its key is there.
	CurveAllowDir string
	// CurveAllowAny admits every CURVE key when CurveAllowDir is empty:
	// connections are encrypted and the server authenticated, but clients
	// are not (czmq's CURVE_ALLOW_ANY).
	CurveAllowAny bool
	// PasswordFile turns on PLAIN (see LoadPasswords). PLAIN sends the
	// password in clear: internal networks only.
	PasswordFile string
	// AllowIPs and DenyIPs filter every peer by address (see IPFilter).
	AllowIPs, DenyIPs []string
	// Logger receives refusals (Warn) and reloads (Info); default
	// slog.Default().
	Logger *slog.Logger
	// LogRate caps refusal log lines per second (default 20); refusals
	// beyond it are counted, and summarised in the next line logged.
	LogRate int
}

// Request is a ZAP request (27/ZAP "Message Format") without the version.
type Request struct {
	ID          []byte
	Domain      string
	Address     string
	Identity    []byte
	Mechanism   string
	Credentials [][]byte
}

// Result is the answer to a Request.
type Result struct {
	Status string // "200" admitted, "400" refused, "500" internal error.
	Text   string
	UserID string // The identity the broker authorizes; "" unless 200.
	Reason Reason // Why it was refused.
}

// state is what Reload replaces as a whole.
type state struct {
	allow     *AllowList
	passwords *Passwords
}

// Authenticator decides ZAP requests. It is safe for concurrent use;
// Reload swaps its lists without disturbing connected peers (ZAP is asked
// only during a handshake).
type Authenticator struct {
	cfg Config
	ips *IPFilter
	log *slog.Logger
	cur atomic.Pointer[state]

	accepted atomic.Uint64
	refused  [numReasons]atomic.Uint64
	reloads  atomic.Uint64
	fronts   frontCounters

	refusals ratelog.Limiter // Refusal log lines; the counters are exact.
}

// NewAuthenticator reads the files cfg names and returns an Authenticator,
// or an error naming the first file that is missing or malformed.
// Certificates in the allow-list directory that cannot be read are skipped
// with a warning, as czmq does: they cannot admit anyone.
func NewAuthenticator(cfg Config) (*Authenticator, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.LogRate <= 0 {
		cfg.LogRate = 20
	}
	ips, err := ParseIPFilter(cfg.AllowIPs, cfg.DenyIPs)
	if err != nil {
		return nil, err
	}
	if cfg.CurveAllowDir == "" && !cfg.CurveAllowAny && cfg.PasswordFile == "" && ips.Empty() {
		return nil, errNoMechanism
	}
	a := &Authenticator{cfg: cfg, ips: ips, log: cfg.Logger,
		refusals: ratelog.Limiter{Window: time.Second, Burst: cfg.LogRate}}
	st, err := a.load()
	if err != nil {
		return nil, err
	}
	a.cur.Store(st)
	if cfg.CurveAllowDir == "" && cfg.CurveAllowAny {
		a.log.Warn("CURVE: any client key is admitted (encryption without client authentication)")
	}
	if cfg.PasswordFile != "" {
		a.log.Warn("PLAIN authentication is on: passwords cross the network in clear; use it on trusted networks only",
			"users", st.passwords.Len())
	}
	return a, nil
}

func (a *Authenticator) load() (*state, error) {
	st := &state{}
	if a.cfg.CurveAllowDir != "" {
		l, problems, err := LoadAllowDir(a.cfg.CurveAllowDir)
		if err != nil {
			return nil, err
		}
		for _, p := range problems {
			a.log.Warn("allow-list: file skipped", "error", p.Error())
		}
		a.log.Info("CURVE allow-list loaded", "dir", a.cfg.CurveAllowDir, "keys", l.Len())
		st.allow = l
	}
	if a.cfg.PasswordFile != "" {
		p, err := LoadPasswords(a.cfg.PasswordFile)
		if err != nil {
			return nil, err
		}
		st.passwords = p
	}
	return st, nil
}

// Reload re-reads the allow-list directory and the password file. On error
// the current lists stay in force. Peers already connected are not
// affected: CURVE and PLAIN authenticate a connection once, at its
// handshake.
func (a *Authenticator) Reload() error {
	st, err := a.load()
	if err != nil {
		a.log.Error("auth reload failed; previous lists kept", "error", err.Error())
		return err
	}
	a.cur.Store(st)
	a.reloads.Add(1)
	return nil
}

// CurveEnabled reports whether CURVE peers can be admitted.
func (a *Authenticator) CurveEnabled() bool {
	return a.cfg.CurveAllowDir != "" || a.cfg.CurveAllowAny
}

// PlainEnabled reports whether PLAIN is configured.
func (a *Authenticator) PlainEnabled() bool { return a.cfg.PasswordFile != "" }

// AllowList returns the allow-list in force (nil without CurveAllowDir).
func (a *Authenticator) AllowList() *AllowList { return a.cur.Load().allow }

// Name returns the "name" metadata of the allow-list certificate of a CURVE
// User-Id (a Z85 key), or "".
func (a *Authenticator) Name(userID string) string {
	st := a.cur.Load()
	if st.allow == nil || len(userID) != 40 {
		return ""
	}
	k, err := ParseKey(userID)
	if err != nil {
		return ""
	}
	if c := st.allow.Lookup(k); c != nil {
		return c.Name()
	}
	return ""
}

// Stats returns the counters.
func (a *Authenticator) Stats() Stats {
	var s Stats
	s.Accepted = a.accepted.Load()
	for i := range s.Refused {
		s.Refused[i] = a.refused[i].Load()
	}
	s.Reloads = a.reloads.Load()
	s.Fronts = a.fronts.snapshot()
	st := a.cur.Load()
	s.Keys = st.allow.Len()
	s.Users = st.passwords.Len()
	return s
}

// Authenticate decides one request: the address filter first, then the
// mechanism's credentials. The User-Id of an admitted peer is its CURVE
// public key in Z85, its PLAIN user name, or "" for NULL. Every refusal is
// counted and logged with the key or user name, the address and the
// reason.
func (a *Authenticator) Authenticate(r *Request) Result {
	if why := a.ips.check(r.Address); why != refusedNone {
		return a.refuse(r, why, "")
	}
	st := a.cur.Load()
	switch r.Mechanism {
	case "NULL":
		// Only asked when the server set a ZAP domain, to filter by
		// address, which passed.
		if len(r.Credentials) != 0 {
			return a.refuse(r, RefusedMalformed, "")
		}
		return a.accept(r, "")
	case "PLAIN":
		// 27/ZAP "The PLAIN Mechanism": two credential frames, user name
		// and password.
		if len(r.Credentials) != 2 {
			return a.refuse(r, RefusedMalformed, "")
		}
		user := string(r.Credentials[0])
		if st.passwords == nil {
			return a.refuse(r, RefusedMechanism, user)
		}
		known, ok := st.passwords.check(user, r.Credentials[1])
		switch {
		case !known:
			return a.refuse(r, RefusedUnknownUser, user)
		case !ok:
			return a.refuse(r, RefusedBadPassword, user)
		}
		return a.accept(r, user)
	case "CURVE":
		// 27/ZAP "The CURVE Mechanism": one frame, the client's 32-byte
		// long-term public key.
		if len(r.Credentials) != 1 || len(r.Credentials[0]) != 32 {
			return a.refuse(r, RefusedMalformed, "")
		}
		k := Key(r.Credentials[0])
		switch {
		case st.allow != nil:
			if st.allow.Lookup(k) == nil {
				return a.refuse(r, RefusedUnknownKey, k.String())
			}
		case !a.cfg.CurveAllowAny:
			return a.refuse(r, RefusedMechanism, k.String())
		}
		return a.accept(r, k.String())
	}
	return a.refuse(r, RefusedMechanism, "")
}

func (a *Authenticator) accept(r *Request, userID string) Result {
	a.accepted.Add(1)
	a.fronts.get(r.Domain).accepted.Add(1)
	return Result{Status: "200", Text: "OK", UserID: userID}
}

// refuse counts and logs a refusal. The status text goes back to the peer
// in the ERROR command, so it says no more than "refused".
func (a *Authenticator) refuse(r *Request, why Reason, who string) Result {
	a.refused[why].Add(1)
	a.fronts.get(r.Domain).refused[why].Add(1)
	if n, ok := a.refusals.Allow(time.Now()); ok {
		args := []any{"front", r.Domain, "mechanism", r.Mechanism, "address", r.Address, "reason", why.String()}
		if who != "" {
			if r.Mechanism == "CURVE" {
				args = append(args, "key", who)
			} else {
				args = append(args, "user", who)
			}
		}
		if n > 0 {
			args = append(args, "not_logged_before", n)
		}
		a.log.Warn("handshake refused", args...)
	}
	return Result{Status: "400", Text: "authentication refused", Reason: why}
}

// maxFronts bounds the ZAP domains counted apart. Domains are set by the
// server's own sockets, not by peers, so a handful is all there ever is;
// the bound only keeps a misuse from growing the map.
const maxFronts = 32

// otherFront counts the domains beyond maxFronts.
const otherFront = "_other"

// frontCounters are the per-domain counters: created on a domain's first
// request, then found under a read lock and updated atomically.
type frontCounters struct {
	mu sync.RWMutex
	m  map[string]*frontCounter
}

type frontCounter struct {
	accepted atomic.Uint64
	refused  [numReasons]atomic.Uint64
}

func (f *frontCounters) get(domain string) *frontCounter {
	f.mu.RLock()
	c := f.m[domain]
	f.mu.RUnlock()
	if c != nil {
		return c
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.m == nil {
		f.m = make(map[string]*frontCounter)
	}
	if c = f.m[domain]; c == nil {
		if len(f.m) >= maxFronts {
			domain = otherFront
			if c = f.m[domain]; c != nil {
				return c
			}
		}
		c = &frontCounter{}
		f.m[domain] = c
	}
	return c
}

func (f *frontCounters) snapshot() []FrontStats {
	f.mu.RLock()
	defer f.mu.RUnlock()
	out := make([]FrontStats, 0, len(f.m))
	for name, c := range f.m {
		fs := FrontStats{Front: name, Accepted: c.accepted.Load()}
		for i := range fs.Refused {
			fs.Refused[i] = c.refused[i].Load()
		}
		out = append(out, fs)
	}
	slices.SortFunc(out, func(a, b FrontStats) int { return strings.Compare(a.Front, b.Front) })
	return out
}
