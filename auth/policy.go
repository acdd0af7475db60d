package auth

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"
)

// ErrPolicy is wrapped by every error about a malformed policy file.
var ErrPolicy = errors.New("auth: malformed policy")

// Policy says which services each identity may call and which it may
// register (serve as a worker). Read it with LoadPolicy or ParsePolicy. The
// file has one rule per line:
//
//	# IDENTITY   call|register   SERVICE-PATTERN...
//	alice        call            echo db.*
//	alice        register        echo
//	"Build Bot"  register        build.*
//	*            call            public.*
//
// IDENTITY is a CURVE public key (40 characters of Z85), the "name" of a
// certificate in the allow-list directory, a PLAIN user name, or "*" for
// every authenticated peer; quote it with double quotes if it holds spaces.
// A pattern is a service name in which "*" matches any run of characters
// ("*" alone: every service). Rules add up; whatever no rule allows is
// refused. Lines starting with "#" are comments, unless they start with a
// key (Z85 keys may contain "#", even first); a "#" elsewhere is text.
//
// The mmi.* services are always callable, and their answers only show
// services the caller may call or register (see the broker).
type Policy struct {
	rules map[string]*rule
	lines int
}

type rule struct {
	call, register []pattern
}

// pattern is a service pattern split at its "*"s.
type pattern struct {
	parts []string // Literal pieces between "*"s.
	star  bool     // Contains at least one "*".
}

func compile(p string) pattern {
	if !strings.Contains(p, "*") {
		return pattern{parts: []string{p}}
	}
	return pattern{parts: strings.Split(p, "*"), star: true}
}

// match reports whether s matches: the first piece is a prefix, the last a
// suffix, and the ones between appear in order.
func (p pattern) match(s string) bool {
	if !p.star {
		return s == p.parts[0]
	}
	first, last := p.parts[0], p.parts[len(p.parts)-1]
	if len(s) < len(first)+len(last) || !strings.HasPrefix(s, first) || !strings.HasSuffix(s, last) {
		return false
	}
	s = s[len(first) : len(s)-len(last)]
	for _, mid := range p.parts[1 : len(p.parts)-1] {
		i := strings.Index(s, mid)
		if i < 0 {
			return false
		}
		s = s[i+len(mid):]
	}
	return true
}

// LoadPolicy reads a policy file.
func LoadPolicy(path string) (*Policy, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("auth: policy: %w", err)
	}
	return ParsePolicy(bytes.NewReader(data), path)
}

// ParsePolicy parses a policy; name is used in error messages.
func ParsePolicy(r io.Reader, name string) (*Policy, error) {
	p := &Policy{rules: make(map[string]*rule)}
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' && !startsWithKey(line) {
			continue
		}
		bad := func(format string, args ...any) error {
			return fmt.Errorf("%w: %s:%d: %s", ErrPolicy, name, n, fmt.Sprintf(format, args...))
		}
		fields, err := splitFields(line)
		if err != nil {
			return nil, bad("%v", err)
		}
		if len(fields) < 3 {
			return nil, bad("want IDENTITY call|register SERVICE-PATTERN...")
		}
		id, verb := fields[0], fields[1]
		if id == "" {
			return nil, bad("empty identity")
		}
		r := p.rules[id]
		if r == nil {
			r = &rule{}
			p.rules[id] = r
		}
		for _, pat := range fields[2:] {
			if pat == "" {
				return nil, bad("empty service pattern")
			}
			switch verb {
			case "call":
				r.call = append(r.call, compile(pat))
			case "register":
				r.register = append(r.register, compile(pat))
			default:
				return nil, bad("unknown permission %q (want call or register)", verb)
			}
		}
		p.lines++
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("auth: policy %s: %w", name, err)
	}
	return p, nil
}

// startsWithKey reports whether line starts with a Z85 key, which may
// begin with "#" (one key in 85 does) and is then not a comment.
func startsWithKey(line string) bool {
	end := strings.IndexAny(line, " \t")
	return end == 40 && looksLikeKey(line[:40])
}

// splitFields splits at spaces and tabs, keeping double-quoted fields
// whole.
func splitFields(s string) ([]string, error) {
	var out []string
	for {
		s = strings.TrimLeft(s, " \t")
		if s == "" {
			return out, nil
		}
		if s[0] == '"' {
			end := strings.IndexByte(s[1:], '"')
			if end < 0 {
				return nil, errors.New("unterminated quote")
			}
			out = append(out, s[1:end+1])
			s = s[end+2:]
			if s != "" && s[0] != ' ' && s[0] != '\t' {
				return nil, errors.New("text right after a closing quote")
			}
			continue
		}
		end := strings.IndexAny(s, " \t")
		if end < 0 {
			end = len(s)
		}
		out = append(out, s[:end])
		s = s[end:]
	}
}

// Rules is the number of rule lines.
func (p *Policy) Rules() int { return p.lines }

// allows reports whether any of ids (or "*") has a pattern in the chosen
// list matching service.
func (p *Policy) allows(ids []string, service string, register bool) bool {
	check := func(id string) bool {
		r := p.rules[id]
		if r == nil {
			return false
		}
		list := r.call
		if register {
			list = r.register
		}
		for _, pat := range list {
			if pat.match(service) {
				return true
			}
		}
		return false
	}
	for _, id := range ids {
		if id != "" && check(id) {
			return true
		}
	}
	return check("*")
}

// MayCall reports whether a peer known by any of ids may call service.
func (p *Policy) MayCall(service string, ids ...string) bool { return p.allows(ids, service, false) }

// MayRegister reports whether a peer known by any of ids may register
// service.
func (p *Policy) MayRegister(service string, ids ...string) bool {
	return p.allows(ids, service, true)
}

// Authorizer applies a policy file to ZAP User-Ids, for the broker: a
// User-Id is matched as itself and, for a CURVE key, as the name in its
// allow-list certificate. It is safe for concurrent use, and Reload swaps
// the policy without disturbing connected peers (decisions are taken per
// READY and per request).
type Authorizer struct {
	path  string
	authn *Authenticator
	log   *slog.Logger
	cur   atomic.Pointer[Policy]
}

// NewAuthorizer loads the policy file; authn (may be nil) resolves
// certificate names.
func NewAuthorizer(path string, authn *Authenticator, log *slog.Logger) (*Authorizer, error) {
	if log == nil {
		log = slog.Default()
	}
	z := &Authorizer{path: path, authn: authn, log: log}
	p, err := LoadPolicy(path)
	if err != nil {
		return nil, err
	}
	z.cur.Store(p)
	log.Info("authorization policy loaded", "file", path, "rules", p.Rules())
	return z, nil
}

// NewAuthorizerFrom wraps a policy already parsed (Reload then does
// nothing).
func NewAuthorizerFrom(p *Policy, authn *Authenticator) *Authorizer {
	z := &Authorizer{authn: authn, log: slog.Default()}
	z.cur.Store(p)
	return z
}

// Reload re-reads the policy file; on error the current policy stays.
func (z *Authorizer) Reload() error {
	if z.path == "" {
		return nil
	}
	p, err := LoadPolicy(z.path)
	if err != nil {
		z.log.Error("policy reload failed; previous policy kept", "error", err.Error())
		return err
	}
	z.cur.Store(p)
	z.log.Info("authorization policy reloaded", "file", z.path, "rules", p.Rules())
	return nil
}

func (z *Authorizer) name(userID string) string {
	if z.authn == nil {
		return ""
	}
	return z.authn.Name(userID)
}

// MayCall reports whether the peer with ZAP User-Id userID may call
// service.
func (z *Authorizer) MayCall(userID, service string) bool {
	if userID == "" {
		return false // Not authenticated: nothing is allowed by a policy.
	}
	return z.cur.Load().MayCall(service, userID, z.name(userID))
}

// MayRegister reports whether the peer with ZAP User-Id userID may
// register service.
func (z *Authorizer) MayRegister(userID, service string) bool {
	if userID == "" {
		return false
	}
	return z.cur.Load().MayRegister(service, userID, z.name(userID))
}
