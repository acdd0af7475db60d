package auth

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/majordomo-go/majordomo/internal/testutil"
)

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

func writeFile(t *testing.T, path, text string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), mode); err != nil {
		t.Fatal(err)
	}
	os.Chmod(path, mode)
}

func curveReq(k Key, addr string) *Request {
	return &Request{Mechanism: "CURVE", Address: addr, Credentials: [][]byte{k[:]}}
}

func TestAuthenticatorCurveAllowList(t *testing.T) {
	dir := t.TempDir()
	alice, _ := NewCert("name", "alice")
	alice.Save(filepath.Join(dir, "alice"))
	os.Remove(filepath.Join(dir, "alice"+SecretSuffix)) // Only public certs belong here...
	bob, _ := NewCert("name", "bob")
	bob.Save(filepath.Join(t.TempDir(), "bob"))
	// ...and junk is skipped with a warning, not fatal.
	writeFile(t, filepath.Join(dir, "README"), "not a certificate\n", 0o644)
	writeFile(t, filepath.Join(dir, ".hidden"), "ignored", 0o644)

	var logs testutil.SyncBuffer
	a, err := NewAuthenticator(Config{CurveAllowDir: dir, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "README") {
		t.Fatalf("junk file not reported:\n%s", logs.String())
	}
	if r := a.Authenticate(curveReq(alice.Public, "127.0.0.1")); r.Status != "200" || r.UserID != alice.Public.String() {
		t.Fatalf("alice: %+v", r)
	}
	if a.Name(alice.Public.String()) != "alice" {
		t.Fatal("name of alice's key")
	}
	r := a.Authenticate(curveReq(bob.Public, "10.1.2.3"))
	if r.Status != "400" || r.UserID != "" || r.Reason != RefusedUnknownKey {
		t.Fatalf("bob: %+v", r)
	}
	out := logs.String()
	for _, want := range []string{"handshake refused", bob.Public.String(), "10.1.2.3", "unknown_key"} {
		if !strings.Contains(out, want) {
			t.Fatalf("refusal log lacks %q:\n%s", want, out)
		}
	}
	// Malformed credentials, and mechanisms not configured.
	for _, req := range []*Request{
		{Mechanism: "CURVE", Credentials: [][]byte{[]byte("short")}},
		{Mechanism: "CURVE"},
		{Mechanism: "PLAIN", Credentials: [][]byte{[]byte("u"), []byte("p")}},
		{Mechanism: "GSSAPI"},
	} {
		if r := a.Authenticate(req); r.Status == "200" {
			t.Fatalf("%+v admitted", req)
		}
	}
	// Reload picks up bob.
	bob.PublicOnly().SavePublic(filepath.Join(dir, "bob"))
	if err := a.Reload(); err != nil {
		t.Fatal(err)
	}
	if r := a.Authenticate(curveReq(bob.Public, "10.1.2.3")); r.Status != "200" {
		t.Fatalf("bob after reload: %+v", r)
	}
	// A reload that fails keeps the lists in force.
	os.RemoveAll(dir)
	if err := a.Reload(); err == nil {
		t.Fatal("reload of a missing directory succeeded")
	}
	if r := a.Authenticate(curveReq(bob.Public, "")); r.Status != "200" {
		t.Fatalf("bob after failed reload: %+v", r)
	}
	s := a.Stats()
	if s.Accepted != 3 || s.RefusedBy(RefusedUnknownKey) != 1 || s.RefusedBy(RefusedMalformed) != 2 ||
		s.RefusedBy(RefusedMechanism) != 2 || s.Reloads != 1 || s.Keys != 2 {
		t.Fatalf("stats %+v", s)
	}
}

func TestAuthenticatorRefusesMissingDir(t *testing.T) {
	if _, err := NewAuthenticator(Config{CurveAllowDir: filepath.Join(t.TempDir(), "nope"), Logger: quiet()}); err == nil {
		t.Fatal("missing allow-list directory accepted")
	}
	if _, err := NewAuthenticator(Config{Logger: quiet()}); !errors.Is(err, errNoMechanism) {
		t.Fatalf("empty config: %v", err)
	}
}

func TestAuthenticatorPlain(t *testing.T) {
	dir := t.TempDir()
	pw := filepath.Join(dir, "passwords")
	writeFile(t, pw, "# users\nadmin=s3cret\nops = with=equals\n\n", 0o600)
	a, err := NewAuthenticator(Config{PasswordFile: pw, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	plain := func(u, p string) Result {
		return a.Authenticate(&Request{Mechanism: "PLAIN", Credentials: [][]byte{[]byte(u), []byte(p)}})
	}
	if r := plain("admin", "s3cret"); r.Status != "200" || r.UserID != "admin" {
		t.Fatalf("admin: %+v", r)
	}
	if r := plain("ops", " with=equals"); r.Status != "200" {
		t.Fatalf("ops: %+v", r)
	}
	if r := plain("admin", "wrong"); r.Status != "400" || r.Reason != RefusedBadPassword {
		t.Fatalf("wrong password: %+v", r)
	}
	if r := plain("eve", "s3cret"); r.Status != "400" || r.Reason != RefusedUnknownUser {
		t.Fatalf("unknown user: %+v", r)
	}
	if r := a.Authenticate(curveReq(Key{1}, "")); r.Status != "400" {
		t.Fatalf("CURVE without allow-list: %+v", r)
	}
	// The password file is a secret.
	os.Chmod(pw, 0o644)
	if _, err := NewAuthenticator(Config{PasswordFile: pw, Logger: quiet()}); !errors.Is(err, ErrPermissions) {
		t.Fatalf("world-readable password file: %v", err)
	}
	for name, text := range map[string]string{
		"no equals":   "admin\n",
		"empty user":  "=x\n",
		"duplicate":   "a=1\na=2\n",
		"key as user": strings.Repeat("a", 40) + "=x\n",
	} {
		writeFile(t, pw, text, 0o600)
		if _, err := LoadPasswords(pw); err == nil {
			t.Errorf("%s accepted", name)
		}
	}
}

func TestIPFilter(t *testing.T) {
	if _, err := ParseIPFilter([]string{"not-an-ip"}, nil); err == nil {
		t.Fatal("bad address accepted")
	}
	deny, _ := ParseIPFilter(nil, []string{"10.0.0.0/8", "192.168.1.7", "::1"})
	allow, _ := ParseIPFilter([]string{"127.0.0.1", "fd00::/8"}, []string{"127.0.0.1"})
	cases := []struct {
		f    *IPFilter
		addr string
		want Reason
	}{
		{deny, "10.3.4.5", RefusedAddressDenied},
		{deny, "192.168.1.7", RefusedAddressDenied},
		{deny, "192.168.1.8", refusedNone},
		{deny, "::1", RefusedAddressDenied},
		{deny, "::ffff:10.1.1.1", RefusedAddressDenied},
		{deny, "", refusedNone},           // ipc://
		{allow, "127.0.0.1", refusedNone}, // The allow list wins.
		{allow, "fd12::1", refusedNone},
		{allow, "127.0.0.2", RefusedAddressNotAllowed},
		{allow, "", refusedNone},
	}
	for _, c := range cases {
		if got := c.f.check(c.addr); got != c.want {
			t.Errorf("%q: %v, want %v", c.addr, got, c.want)
		}
	}
	// Through an Authenticator: NULL peers are filtered by address alone.
	a, err := NewAuthenticator(Config{DenyIPs: []string{"10.0.0.0/8"}, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	if r := a.Authenticate(&Request{Mechanism: "NULL", Address: "10.0.0.1"}); r.Status != "400" || r.Reason != RefusedAddressDenied {
		t.Fatalf("denied NULL peer: %+v", r)
	}
	if r := a.Authenticate(&Request{Mechanism: "NULL", Address: "127.0.0.1"}); r.Status != "200" || r.UserID != "" {
		t.Fatalf("NULL peer: %+v", r)
	}
}

func TestRefusalLogRateLimit(t *testing.T) {
	var logs testutil.SyncBuffer
	a, _ := NewAuthenticator(Config{CurveAllowAny: false, DenyIPs: []string{"10.0.0.1"}, LogRate: 5,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	for i := 0; i < 100; i++ {
		a.Authenticate(&Request{Mechanism: "NULL", Address: "10.0.0.1"})
	}
	if n := strings.Count(logs.String(), "handshake refused"); n != 5 {
		t.Fatalf("%d lines logged, want 5", n)
	}
	if a.Stats().TotalRefused() != 100 {
		t.Fatalf("counted %d", a.Stats().TotalRefused())
	}
}

func TestPolicy(t *testing.T) {
	alice, _ := NewCert("name", "alice")
	text := `
# identity  permission  patterns
alice       call        echo db.*
alice       register    echo
"Build Bot" register    build.*.x
` + alice.Public.String() + ` call key-only
*           call        public.*
carol       call        *
`
	p, err := ParsePolicy(strings.NewReader(text), "policy")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		ids      []string
		service  string
		call, rg bool
	}{
		{[]string{"alice"}, "echo", true, true},
		{[]string{"alice"}, "db.read", true, false},
		{[]string{"alice"}, "db", false, false},
		{[]string{"alice"}, "echo2", false, false},
		{[]string{"alice"}, "public.time", true, false},
		{[]string{alice.Public.String(), "alice"}, "key-only", true, false},
		{[]string{"alice"}, "key-only", false, false},
		{[]string{"Build Bot"}, "build.linux.x", false, true},
		{[]string{"Build Bot"}, "build.x", false, false},
		{[]string{"nobody"}, "echo", false, false},
		{[]string{"nobody"}, "public.x", true, false},
		{[]string{"carol"}, "anything", true, false},
	}
	for _, c := range cases {
		if got := p.MayCall(c.service, c.ids...); got != c.call {
			t.Errorf("%v call %s: %v", c.ids, c.service, got)
		}
		if got := p.MayRegister(c.service, c.ids...); got != c.rg {
			t.Errorf("%v register %s: %v", c.ids, c.service, got)
		}
	}
	for name, bad := range map[string]string{
		"short":      "alice call\n",
		"verb":       "alice serve echo\n",
		"quote":      "\"alice call echo\n",
		"empty id":   "\"\" call echo\n",
		"glued":      "\"a\"b call echo\n",
		"empty pat":  "alice call \"\"\n",
		"register*2": "bob register\n",
	} {
		if _, err := ParsePolicy(strings.NewReader(bad), name); !errors.Is(err, ErrPolicy) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestAuthorizerResolvesNames(t *testing.T) {
	dir := t.TempDir()
	alice, _ := NewCert("name", "alice")
	alice.PublicOnly().SavePublic(filepath.Join(dir, "alice"))
	a, err := NewAuthenticator(Config{CurveAllowDir: dir, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	pol := filepath.Join(t.TempDir(), "policy")
	writeFile(t, pol, "alice call echo\n", 0o644)
	z, err := NewAuthorizer(pol, a, quiet())
	if err != nil {
		t.Fatal(err)
	}
	id := alice.Public.String()
	if !z.MayCall(id, "echo") || z.MayCall(id, "other") || z.MayCall("", "echo") {
		t.Fatal("name-based rule")
	}
	writeFile(t, pol, "alice call other\n", 0o644)
	if err := z.Reload(); err != nil {
		t.Fatal(err)
	}
	if z.MayCall(id, "echo") || !z.MayCall(id, "other") {
		t.Fatal("reloaded policy not applied")
	}
	writeFile(t, pol, "alice nonsense\n", 0o644)
	if err := z.Reload(); err == nil || !z.MayCall(id, "other") {
		t.Fatalf("bad reload: %v", err)
	}
}

func TestPolicyKeyStartingWithHash(t *testing.T) {
	var k Key
	for i := 0; ; i++ {
		c, _ := NewCert()
		if c.Public.String()[0] == '#' {
			k = c.Public
			break
		}
		if i > 5000 {
			t.Skip("no key starting with # found")
		}
	}
	p, err := ParsePolicy(strings.NewReader("#comment\n"+k.String()+" call echo\n"), "p")
	if err != nil || !p.MayCall("echo", k.String()) {
		t.Fatalf("key starting with #: %v", err)
	}
}

// TestFrontsCountedApart: decisions are counted per ZAP domain (front),
// and the number of domains counted apart is bounded.
func TestFrontsCountedApart(t *testing.T) {
	a, err := NewAuthenticator(Config{DenyIPs: []string{"10.0.0.0/8"}, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	a.Authenticate(&Request{Domain: "mdp", Address: "127.0.0.1", Mechanism: "NULL"})
	a.Authenticate(&Request{Domain: "emqp-backend", Address: "10.1.2.3", Mechanism: "NULL"})
	a.Authenticate(&Request{Domain: "emqp-backend", Address: "127.0.0.1", Mechanism: "NULL"})
	s := a.Stats()
	if f := s.Front("mdp"); f.Accepted != 1 || f.TotalRefused() != 0 {
		t.Fatalf("mdp %+v", f)
	}
	if f := s.Front("emqp-backend"); f.Accepted != 1 || f.RefusedBy(RefusedAddressDenied) != 1 {
		t.Fatalf("emqp-backend %+v", f)
	}
	for i := range 100 {
		a.Authenticate(&Request{Domain: fmt.Sprintf("d%d", i), Mechanism: "NULL"})
	}
	if n := len(a.Stats().Fronts); n > maxFronts+1 {
		t.Fatalf("%d fronts counted apart", n)
	}
	if f := a.Stats().Front(otherFront); f.Accepted == 0 {
		t.Fatalf("no %s front: %+v", otherFront, a.Stats().Fronts)
	}
}
