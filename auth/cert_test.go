package auth

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestCertSaveLoadRoundTrip(t *testing.T) {
	dir := t.TempDir()
	c, err := NewCert("name", "alice", "email", "alice@example.com")
	if err != nil {
		t.Fatal(err)
	}
	base := filepath.Join(dir, "alice")
	if err := c.Save(base); err != nil {
		t.Fatal(err)
	}
	for path, mode := range map[string]os.FileMode{base: 0o644, base + SecretSuffix: 0o600} {
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != mode {
			t.Fatalf("%s: mode %o, want %o", path, st.Mode().Perm(), mode)
		}
	}
	pub, err := LoadCert(base)
	if err != nil {
		t.Fatal(err)
	}
	if pub.Public != c.Public || pub.Name() != "alice" || pub.Meta("email") != "alice@example.com" {
		t.Fatalf("public cert: %+v", pub)
	}
	if _, ok := pub.Secret(); ok {
		t.Fatal("public certificate has a secret key")
	}
	sec, err := LoadSecretCert(base + SecretSuffix)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := c.Secret()
	if got, ok := sec.Secret(); !ok || got != want || sec.Public != c.Public {
		t.Fatal("secret cert does not round-trip")
	}
	// The exact layout czmq's zconfig_save produces.
	data, _ := os.ReadFile(base + SecretSuffix)
	text := string(data)
	for _, want := range []string{
		"#   ZeroMQ CURVE **Secret** Certificate\n",
		"\nmetadata\n    name = \"alice\"\n    email = \"alice@example.com\"\ncurve\n    public-key = \"" + c.Public.String() + "\"\n    secret-key = \"",
	} {
		if !strings.Contains(text, want) {
			t.Fatalf("secret file lacks %q:\n%s", want, text)
		}
	}
	// Never overwrite.
	if err := c.Save(base); err == nil {
		t.Fatal("Save overwrote an existing certificate")
	}
	// A public certificate given where the secret one is needed: the error
	// points at the _secret file.
	if _, err = LoadSecretCert(base); !errors.Is(err, ErrCert) || !strings.Contains(err.Error(), base+SecretSuffix) {
		t.Fatalf("error does not point at the secret file: %v", err)
	}
}

func TestSecretCertPermissions(t *testing.T) {
	dir := t.TempDir()
	c, _ := NewCert()
	base := filepath.Join(dir, "k")
	if err := c.Save(base); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []os.FileMode{0o644, 0o640, 0o604, 0o620, 0o602} {
		os.Chmod(base+SecretSuffix, mode)
		_, err := LoadSecretCert(base + SecretSuffix)
		if !errors.Is(err, ErrPermissions) {
			t.Fatalf("mode %o: %v", mode, err)
		}
		if !strings.Contains(err.Error(), "chmod 600") {
			t.Fatalf("error gives no remedy: %v", err)
		}
	}
	os.Chmod(base+SecretSuffix, 0o400)
	if _, err := LoadSecretCert(base + SecretSuffix); err != nil {
		t.Fatalf("mode 0400: %v", err)
	}
	if _, err := LoadSecretCert(filepath.Join(dir, "missing")); err == nil || !os.IsNotExist(errors.Unwrap(err)) {
		t.Fatalf("missing file: %v", err)
	}
}

func TestMalformedCerts(t *testing.T) {
	good, _ := NewCert()
	sec, _ := good.Secret()
	other, _ := NewCert()
	otherSec, _ := other.Secret()
	cases := map[string]string{
		"empty":          "",
		"no curve":       "metadata\n    name = \"x\"\n",
		"short key":      "curve\n    public-key = \"abc\"\n",
		"bad z85":        "curve\n    public-key = \"" + strings.Repeat("~", 40) + "\"\n",
		"null key":       "curve\n    public-key = \"" + strings.Repeat("0", 40) + "\"\n",
		"tab indent":     "curve\n\tpublic-key = \"" + good.Public.String() + "\"\n",
		"odd indent":     "curve\n  public-key = \"" + good.Public.String() + "\"\n",
		"too deep":       "curve\n        public-key = \"" + good.Public.String() + "\"\n",
		"unterminated":   "curve\n    public-key = \"" + good.Public.String() + "\n",
		"two keys":       "curve\n    public-key = \"" + good.Public.String() + "\"\n    public-key = \"" + good.Public.String() + "\"\n",
		"garbage":        "curve\n    public-key = \"" + good.Public.String() + "\" trailing\n",
		"bad name":       "curve\n    (public-key) = 1\n",
		"mismatched":     "curve\n    public-key = \"" + good.Public.String() + "\"\n    secret-key = \"" + otherSec.String() + "\"\n",
		"bad secret z85": "curve\n    public-key = \"" + good.Public.String() + "\"\n    secret-key = \"" + strings.Repeat("~", 40) + "\"\n",
	}
	for name, text := range cases {
		_, err := ParseCert([]byte(text), name)
		if !errors.Is(err, ErrCert) {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if strings.Contains(err.Error(), otherSec.String()) || strings.Contains(err.Error(), sec.String()) {
			t.Errorf("%s: error reveals a secret key: %v", name, err)
		}
	}
	// Comments anywhere, CRLF, unknown sections and single quotes are fine.
	ok := "# comment\r\n\r\nmetadata\r\n    # indented comment\r\n    name = 'bob' # trailing\r\nother\r\n    x = 1\r\ncurve\r\n    public-key = \"" +
		good.Public.String() + "\"\r\n"
	c, err := ParseCert([]byte(ok), "ok")
	if err != nil || c.Name() != "bob" || c.Public != good.Public {
		t.Fatalf("tolerant parse: %v %+v", err, c)
	}
}

// TestPyzmqCertificates reads the certificates pyzmq's zmq.auth writes
// (unquoted metadata values, .key / .key_secret names), and checks that
// pyzmq reads ours.
func TestPyzmqCertificates(t *testing.T) {
	py := python(t)
	dir := t.TempDir()
	script := `
import sys, zmq.auth
pub, sec = zmq.auth.create_certificates(sys.argv[1], "py", metadata={"name": "py client"})
print(pub); print(sec)
k, s = zmq.auth.load_certificate(sys.argv[2])
print(k.decode()); print(s.decode())
`
	mine, _ := NewCert("name", "go")
	if err := mine.Save(filepath.Join(dir, "go")); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(py, "-c", script, dir, filepath.Join(dir, "go"+SecretSuffix)).CombinedOutput()
	if err != nil {
		t.Fatalf("python: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 4 {
		t.Fatalf("python said %q", out)
	}
	mySec, _ := mine.Secret()
	if lines[2] != mine.Public.String() || lines[3] != mySec.String() {
		t.Fatalf("pyzmq read %q %q from our certificate", lines[2], lines[3])
	}
	pub, err := LoadCert(lines[0])
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(lines[1], 0o600)
	sec, err := LoadSecretCert(lines[1])
	if err != nil {
		t.Fatal(err)
	}
	if pub.Public != sec.Public || sec.Name() != "py client" {
		t.Fatalf("pyzmq certificates: %+v %+v", pub, sec)
	}
}

func TestLoadPublicKey(t *testing.T) {
	c, _ := NewCert()
	k, err := LoadPublicKey(c.Public.String())
	if err != nil || k != c.Public {
		t.Fatalf("from Z85: %v", err)
	}
	path := filepath.Join(t.TempDir(), "server")
	c.Save(path)
	for _, p := range []string{path, path + SecretSuffix} {
		if k, err := LoadPublicKey(p); err != nil || k != c.Public {
			t.Fatalf("from %s: %v", p, err)
		}
	}
	if _, err := LoadPublicKey("nonsense"); err == nil || !strings.Contains(err.Error(), "neither") {
		t.Fatalf("nonsense: %v", err)
	}
}

func TestSetMetaValidation(t *testing.T) {
	c, _ := NewCert()
	for _, bad := range [][2]string{{"", "x"}, {"a b", "x"}, {"n", "quote\""}, {"n", "new\nline"}} {
		if err := c.SetMeta(bad[0], bad[1]); err == nil {
			t.Errorf("SetMeta(%q, %q) accepted", bad[0], bad[1])
		}
	}
}

func python(t *testing.T) string {
	t.Helper()
	for _, p := range []string{os.Getenv("MDP_TEST_PYTHON"), "/usr/bin/python3", "python3"} {
		if p == "" {
			continue
		}
		if exec.Command(p, "-c", "import zmq, zmq.auth").Run() == nil {
			return p
		}
	}
	t.Fatal("no python3 with pyzmq (install Debian python3-zmq, or set MDP_TEST_PYTHON)")
	return ""
}
