package auth

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/majordomo-go/majordomo/internal/transport"
)

// ErrCert is wrapped by every error about a malformed certificate file.
var ErrCert = errors.New("auth: malformed certificate")

// ErrPermissions is wrapped by the error for a secret file that other users
// could read.
var ErrPermissions = errors.New("auth: secret file readable by other users")

// SecretSuffix is appended to a certificate's file name for its secret half,
// as czmq's zcert_save does.
const SecretSuffix = "_secret"

// maxCertSize bounds what is read from a certificate file; czmq's are a few
// hundred bytes.
const maxCertSize = 64 << 10

// Cert is a CURVE certificate as czmq's zcert keeps it: a public key, for a
// secret certificate the secret key too, and metadata (name = value pairs,
// in order). On disk it is a ZPL (4/ZPL) text file with a "metadata" and a
// "curve" section; the secret certificate is the same file plus secret-key,
// saved under the same name plus SecretSuffix.
type Cert struct {
	Public Key
	secret *Key
	meta   []metaItem
}

type metaItem struct{ name, value string }

// NewCert makes a certificate with a new key pair (zmq_curve_keypair) and
// the given metadata, name and value alternating ("name", "alice").
func NewCert(meta ...string) (*Cert, error) {
	if len(meta)%2 != 0 {
		return nil, errors.New("auth: NewCert metadata must be name, value pairs")
	}
	pub, sec, err := NewKeypair()
	if err != nil {
		return nil, err
	}
	c := &Cert{Public: pub, secret: &sec}
	for i := 0; i < len(meta); i += 2 {
		if err := c.SetMeta(meta[i], meta[i+1]); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// Secret returns the secret key, and false for a public certificate.
func (c *Cert) Secret() (Key, bool) {
	if c.secret == nil {
		return Key{}, false
	}
	return *c.secret, true
}

// Meta returns the metadata value for name, or "".
func (c *Cert) Meta(name string) string {
	for _, m := range c.meta {
		if m.name == name {
			return m.value
		}
	}
	return ""
}

// MetaNames returns the metadata names in file order.
func (c *Cert) MetaNames() []string {
	out := make([]string, len(c.meta))
	for i, m := range c.meta {
		out[i] = m.name
	}
	return out
}

// Name is the "name" metadata, which a policy file may use instead of the
// key.
func (c *Cert) Name() string { return c.Meta("name") }

// SetMeta sets a metadata item. Names follow 4/ZPL (letters, digits and
// $-_@.&+/); values are printable text without double quotes.
func (c *Cert) SetMeta(name, value string) error {
	if !validName(name) {
		return fmt.Errorf("auth: invalid metadata name %q (ZPL names are letters, digits and $-_@.&+/)", name)
	}
	for _, r := range value {
		if r < 0x20 || r == 0x7f || r == '"' {
			return fmt.Errorf("auth: metadata %s: value may not hold control characters or double quotes", name)
		}
	}
	for i := range c.meta {
		if c.meta[i].name == name {
			c.meta[i].value = value
			return nil
		}
	}
	c.meta = append(c.meta, metaItem{name, value})
	return nil
}

// PublicOnly returns a copy without the secret key.
func (c *Cert) PublicOnly() *Cert {
	return &Cert{Public: c.Public, meta: append([]metaItem(nil), c.meta...)}
}

// LoadCert reads a public or secret certificate file. A file that holds a
// secret key must hold the matching public key; its permissions are not
// checked (LoadSecretCert does that).
func LoadCert(path string) (*Cert, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("auth: certificate: %w", err)
	}
	defer f.Close()
	return readCert(f, path)
}

// LoadSecretCert reads the secret certificate a server or client runs with.
// It refuses, with an error naming the file, one that is missing, is not a
// well-formed czmq certificate, has no secret key or a secret key that does
// not match its public key, or that other users could read or write (any
// group or other permission bit, like ssh: the errors wrap ErrPermissions).
// This is the check behind mdbroker's refusal to start.
func LoadSecretCert(path string) (*Cert, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("auth: secret certificate: %w", err)
	}
	defer f.Close()
	c, err := readCert(f, path)
	if err != nil {
		return nil, err
	}
	if c.secret == nil {
		hint := ""
		if _, err := os.Stat(path + SecretSuffix); err == nil {
			hint = fmt.Sprintf(" (it is a public certificate; the secret one is %s)", path+SecretSuffix)
		}
		return nil, fmt.Errorf("%w: %s: no secret-key in the curve section%s", ErrCert, path, hint)
	}
	// The check looks at the file that was read, not at a name that could
	// be swapped between a stat and an open.
	if err := checkPrivate(f, path); err != nil {
		return nil, err
	}
	return c, nil
}

// checkPrivate refuses a secret file that is not a regular file or that
// grants any permission to group or others.
func checkPrivate(f *os.File, path string) error {
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("auth: %s: %w", path, err)
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("auth: %s: not a regular file", path)
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("%w: %s has permissions %04o; a secret must be private to its owner (chmod 600 %s)",
			ErrPermissions, path, perm, path)
	}
	return nil
}

func readCert(r io.Reader, path string) (*Cert, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxCertSize+1))
	if err != nil {
		return nil, fmt.Errorf("auth: %s: %w", path, err)
	}
	defer clear(data) // It may hold a secret key.
	if len(data) > maxCertSize {
		return nil, fmt.Errorf("%w: %s: larger than %d bytes", ErrCert, path, maxCertSize)
	}
	return ParseCert(data, path)
}

// ParseCert parses a certificate in czmq's ZPL format; name is used in
// error messages. It accepts what czmq, pyzmq (which leaves metadata
// values unquoted) and this package write.
func ParseCert(data []byte, name string) (*Cert, error) {
	bad := func(line int, format string, args ...any) error {
		return fmt.Errorf("%w: %s:%d: %s", ErrCert, name, line, fmt.Sprintf(format, args...))
	}
	items, err := parseZPL(data)
	if err != nil {
		var ze *zplError
		if errors.As(err, &ze) {
			return nil, bad(ze.line, "%s", ze.msg)
		}
		return nil, err
	}
	c := &Cert{}
	var pubText, secText string
	pubLine, secLine := 0, 0
	for _, it := range items {
		switch {
		case len(it.path) == 2 && it.path[0] == "metadata":
			if !it.hasValue {
				return nil, bad(it.line, "metadata %q has no value", it.path[1])
			}
			if c.Meta(it.path[1]) != "" {
				return nil, bad(it.line, "metadata %q given twice", it.path[1])
			}
			c.meta = append(c.meta, metaItem{it.path[1], it.value})
		case len(it.path) == 2 && it.path[0] == "curve" && it.path[1] == "public-key":
			if pubLine != 0 {
				return nil, bad(it.line, "public-key given twice")
			}
			pubText, pubLine = it.value, it.line
		case len(it.path) == 2 && it.path[0] == "curve" && it.path[1] == "secret-key":
			if secLine != 0 {
				return nil, bad(it.line, "secret-key given twice")
			}
			secText, secLine = it.value, it.line
		}
		// Other sections and names are ignored, as czmq ignores them.
	}
	if pubLine == 0 {
		return nil, bad(0, "no public-key in a curve section (is this a CURVE certificate?)")
	}
	if c.Public, err = ParseKey(pubText); err != nil {
		return nil, bad(pubLine, "public-key: %v", err)
	}
	if c.Public.IsZero() {
		return nil, bad(pubLine, "public-key is the null key")
	}
	if secLine != 0 {
		sec, err := ParseKey(secText)
		if err != nil {
			// The error never quotes the secret text.
			return nil, bad(secLine, "secret-key is not 40 characters of Z85")
		}
		derived, err := transport.CurvePublic(sec)
		if err != nil {
			return nil, fmt.Errorf("auth: %s: %w", name, err)
		}
		if Key(derived) != c.Public {
			return nil, bad(secLine, "secret-key does not belong to public-key")
		}
		c.secret = &sec
	}
	return c, nil
}

// Save writes the public certificate to path and the secret one to path +
// SecretSuffix (mode 0600), as czmq's zcert_save does. It refuses to
// overwrite either file.
func (c *Cert) Save(path string) error {
	if c.secret == nil {
		return errors.New("auth: Save needs a secret certificate; use SavePublic")
	}
	if _, err := os.Lstat(path + SecretSuffix); err == nil {
		return fmt.Errorf("auth: %s already exists", path+SecretSuffix)
	}
	if err := c.SavePublic(path); err != nil {
		return err
	}
	if err := c.SaveSecret(path + SecretSuffix); err != nil {
		os.Remove(path)
		return err
	}
	return nil
}

// SavePublic writes the public certificate (mode 0644); it refuses to
// overwrite a file.
func (c *Cert) SavePublic(path string) error {
	return writeNew(path, 0o644, c.format(false))
}

// SaveSecret writes the secret certificate (mode 0600); it refuses to
// overwrite a file.
func (c *Cert) SaveSecret(path string) error {
	if c.secret == nil {
		return errors.New("auth: no secret key to save")
	}
	data := c.format(true)
	defer clear(data)
	return writeNew(path, 0o600, data)
}

func writeNew(path string, mode os.FileMode, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return fmt.Errorf("auth: %w", err)
	}
	// The umask may have taken bits away, never added any; Chmod makes the
	// public file readable whatever the umask.
	err = f.Chmod(mode)
	if err == nil {
		_, err = f.Write(data)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return fmt.Errorf("auth: writing %s: %w", filepath.Base(path), err)
	}
	return nil
}

// format renders the certificate the way czmq's zconfig_save writes it: a
// comment banner, a blank line, then the sections with four-space indents
// and quoted values.
func (c *Cert) format(secret bool) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "#   ****  Generated on %s by Majordomo for Go  ****\n", time.Now().Format("2006-01-02 15:04:05"))
	if secret {
		b.WriteString("#   ZeroMQ CURVE **Secret** Certificate\n")
		b.WriteString("#   DO NOT PROVIDE THIS FILE TO OTHER USERS nor change its permissions.\n")
	} else {
		b.WriteString("#   ZeroMQ CURVE Public Certificate\n")
		b.WriteString("#   Exchange securely, or use a secure mechanism to verify the contents\n")
		b.WriteString("#   of this file after exchange. Store public certificates in your home\n")
		b.WriteString("#   directory, in the .curve subdirectory.\n")
	}
	b.WriteString("\nmetadata\n")
	for _, m := range c.meta {
		fmt.Fprintf(&b, "    %s = \"%s\"\n", m.name, m.value)
	}
	b.WriteString("curve\n")
	fmt.Fprintf(&b, "    public-key = \"%s\"\n", c.Public)
	if secret {
		fmt.Fprintf(&b, "    secret-key = \"%s\"\n", *c.secret)
	}
	return b.Bytes()
}

// zplItem is one "name" or "name = value" line of a ZPL file, with the
// names of its enclosing sections.
type zplItem struct {
	path     []string
	value    string
	hasValue bool
	line     int
}

type zplError struct {
	line int
	msg  string
}

func (e *zplError) Error() string { return fmt.Sprintf("line %d: %s", e.line, e.msg) }

// parseZPL parses 4/ZPL: one name per line, nesting by four spaces of
// indentation, "name = value" with the value optionally quoted, "#"
// comments. Values of czmq certificates are quoted, pyzmq's metadata
// values are not.
func parseZPL(data []byte) ([]zplItem, error) {
	var items []zplItem
	var stack []string
	lines := strings.Split(string(data), "\n")
	for i, raw := range lines {
		n := i + 1
		line := strings.TrimSuffix(raw, "\r")
		if t := strings.TrimLeft(line, " \t"); t == "" || t[0] == '#' {
			continue
		}
		content := strings.TrimLeft(line, " ")
		if content[0] == '\t' {
			return nil, &zplError{n, "tab in indentation (ZPL indents with four spaces)"}
		}
		indent := len(line) - len(content)
		if indent%4 != 0 {
			return nil, &zplError{n, "indentation is not a multiple of four spaces"}
		}
		level := indent / 4
		if level > len(stack) {
			return nil, &zplError{n, "indented deeper than its parent"}
		}
		stack = stack[:level]
		end := 0
		for end < len(content) && isNameChar(content[end]) {
			end++
		}
		name := content[:end]
		if name == "" {
			return nil, &zplError{n, fmt.Sprintf("expected a name, found %q", content[:1])}
		}
		rest := strings.TrimLeft(content[end:], " ")
		it := zplItem{path: append(append([]string(nil), stack...), name), line: n}
		switch {
		case rest == "" || rest[0] == '#':
		case rest[0] == '=':
			v, err := zplValue(strings.TrimLeft(rest[1:], " "))
			if err != nil {
				return nil, &zplError{n, err.Error()}
			}
			it.value, it.hasValue = v, true
		default:
			return nil, &zplError{n, fmt.Sprintf("expected \"=\" after %q", name)}
		}
		items = append(items, it)
		stack = append(stack, name)
	}
	return items, nil
}

// zplValue reads a value: quoted with " or ', or bare up to a comment.
func zplValue(s string) (string, error) {
	if s == "" {
		return "", nil
	}
	if q := s[0]; q == '"' || q == '\'' {
		end := strings.IndexByte(s[1:], q)
		if end < 0 {
			return "", errors.New("unterminated quoted value")
		}
		v := s[1 : end+1]
		tail := strings.TrimLeft(s[end+2:], " ")
		if tail != "" && tail[0] != '#' {
			return "", fmt.Errorf("unexpected text after quoted value: %q", tail)
		}
		return v, nil
	}
	// A bare value ends at a comment introduced by whitespace.
	if i := strings.Index(s, " #"); i >= 0 {
		s = s[:i]
	}
	return strings.TrimRight(s, " "), nil
}

func isNameChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		strings.IndexByte("$-_@.&+/", c) >= 0
}

func validName(s string) bool {
	if s == "" || len(s) > 255 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isNameChar(s[i]) {
			return false
		}
	}
	return true
}
