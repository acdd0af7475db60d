package auth

import (
	"bufio"
	"bytes"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// AllowList is the set of CURVE public keys admitted, read from a
// directory of public certificates as czmq's zauth and zcertstore read it.
type AllowList struct {
	Dir   string
	certs map[Key]*Cert
}

// LoadAllowDir reads every certificate in dir: all regular files except
// hidden ones and those ending in SecretSuffix. A file that is not a valid
// certificate is skipped and reported in problems (it cannot admit
// anyone); err is set only when the directory itself cannot be read.
func LoadAllowDir(dir string) (l *AllowList, problems []error, err error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("auth: allow-list directory: %w", err)
	}
	l = &AllowList{Dir: dir, certs: make(map[Key]*Cert)}
	for _, e := range entries { // ReadDir sorts by name.
		name := e.Name()
		path := filepath.Join(dir, name)
		if strings.HasPrefix(name, ".") {
			continue
		}
		if strings.HasSuffix(name, SecretSuffix) {
			problems = append(problems, fmt.Errorf("auth: %s: secret certificate in the allow-list directory ignored (only public certificates belong there)", path))
			continue
		}
		st, err := os.Stat(path) // Follows symbolic links.
		if err != nil {
			problems = append(problems, fmt.Errorf("auth: %s: %w", path, err))
			continue
		}
		if !st.Mode().IsRegular() {
			continue
		}
		c, err := LoadCert(path)
		if err != nil {
			problems = append(problems, err)
			continue
		}
		if _, dup := l.certs[c.Public]; dup {
			problems = append(problems, fmt.Errorf("auth: %s: key %s already admitted by an earlier file; ignored", path, c.Public))
			continue
		}
		l.certs[c.Public] = c.PublicOnly()
	}
	return l, problems, nil
}

// Len is the number of keys admitted.
func (l *AllowList) Len() int {
	if l == nil {
		return 0
	}
	return len(l.certs)
}

// Lookup returns the certificate that admits k, or nil.
func (l *AllowList) Lookup(k Key) *Cert {
	if l == nil {
		return nil
	}
	return l.certs[k]
}

// Keys returns the admitted keys in Z85, sorted.
func (l *AllowList) Keys() []string {
	var out []string
	if l != nil {
		for k := range l.certs {
			out = append(out, k.String())
		}
	}
	sort.Strings(out)
	return out
}

// Passwords are PLAIN credentials read from a password file.
type Passwords struct {
	users map[string][]byte
}

// LoadPasswords reads a PLAIN password file in the format czmq's zauth
// reads: one "username=password" per line; blank lines and lines starting
// with "#" are ignored. The file holds secrets, so like a secret
// certificate it must not be readable by group or others (ErrPermissions).
// A user name of 40 Z85 characters is refused, so that no PLAIN user can
// take the identity of a CURVE key in the policy.
func LoadPasswords(path string) (*Passwords, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("auth: password file: %w", err)
	}
	defer f.Close()
	if err := checkPrivate(f, path); err != nil {
		return nil, err
	}
	data, err := io.ReadAll(io.LimitReader(f, 16<<20))
	if err != nil {
		return nil, fmt.Errorf("auth: %s: %w", path, err)
	}
	defer clear(data)
	p := &Passwords{users: make(map[string][]byte)}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimRight(sc.Text(), "\r")
		if t := strings.TrimSpace(line); t == "" || t[0] == '#' {
			continue
		}
		user, pass, ok := strings.Cut(line, "=")
		user = strings.TrimSpace(user)
		switch {
		case !ok:
			return nil, fmt.Errorf("auth: %s:%d: expected username=password", path, n)
		case user == "" || len(user) > 255 || len(pass) > 255:
			return nil, fmt.Errorf("auth: %s:%d: user name must be 1 to 255 bytes, password at most 255", path, n)
		case looksLikeKey(user):
			return nil, fmt.Errorf("auth: %s:%d: user name %q looks like a CURVE key; choose another", path, n, user)
		}
		if _, dup := p.users[user]; dup {
			return nil, fmt.Errorf("auth: %s:%d: user %q given twice", path, n, user)
		}
		p.users[user] = []byte(pass)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("auth: %s: %w", path, err)
	}
	return p, nil
}

// check reports whether user exists and whether the password matches, in
// time independent of the password's content.
func (p *Passwords) check(user string, pass []byte) (known, ok bool) {
	want, known := p.users[user]
	if !known {
		return false, false
	}
	return true, subtle.ConstantTimeCompare(want, pass) == 1
}

// Len is the number of users.
func (p *Passwords) Len() int {
	if p == nil {
		return 0
	}
	return len(p.users)
}

func looksLikeKey(s string) bool {
	_, err := ParseKey(s)
	return err == nil
}

// IPFilter admits or refuses peers by address, with zauth's rule: when an
// allow list is set only its addresses are admitted; otherwise the deny list
// refuses its addresses. Entries are addresses or CIDR prefixes. Peers
// without an IP address (ipc://) are not filtered.
type IPFilter struct {
	allow, deny []netip.Prefix
}

// ParseIPFilter parses the allow and deny lists.
func ParseIPFilter(allow, deny []string) (*IPFilter, error) {
	f := &IPFilter{}
	parse := func(list []string, what string) ([]netip.Prefix, error) {
		var out []netip.Prefix
		for _, s := range list {
			s = strings.TrimSpace(s)
			if s == "" {
				continue
			}
			if p, err := netip.ParsePrefix(s); err == nil {
				out = append(out, p.Masked())
				continue
			}
			a, err := netip.ParseAddr(s)
			if err != nil {
				return nil, fmt.Errorf("auth: %s address %q: not an IP address or CIDR prefix", what, s)
			}
			out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
		}
		return out, nil
	}
	var err error
	if f.allow, err = parse(allow, "allow"); err != nil {
		return nil, err
	}
	if f.deny, err = parse(deny, "deny"); err != nil {
		return nil, err
	}
	return f, nil
}

// Empty reports whether the filter does nothing.
func (f *IPFilter) Empty() bool { return f == nil || len(f.allow)+len(f.deny) == 0 }

// check returns the refusal reason for address, or refusedNone.
func (f *IPFilter) check(address string) Reason {
	if f.Empty() || address == "" {
		return refusedNone
	}
	a, err := netip.ParseAddr(address)
	if err != nil {
		if len(f.allow) > 0 {
			return RefusedAddressNotAllowed
		}
		return refusedNone
	}
	a = a.Unmap()
	if len(f.allow) > 0 {
		for _, p := range f.allow {
			if p.Contains(a) {
				return refusedNone
			}
		}
		return RefusedAddressNotAllowed
	}
	for _, p := range f.deny {
		if p.Contains(a) {
			return RefusedAddressDenied
		}
	}
	return refusedNone
}

var errNoMechanism = errors.New("auth: nothing to authenticate: give a CURVE allow-list (or CurveAllowAny), a password file, or IP lists")
