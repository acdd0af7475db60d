package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/majordomo-go/majordomo/auth"
)

// TestSecurityFilesRefused: a missing, public or world-readable key is
// refused at start with one line naming the file, and exit status 2.
func TestSecurityFilesRefused(t *testing.T) {
	dir := t.TempDir()
	cert, err := auth.NewCert("name", "broker")
	if err != nil {
		t.Fatal(err)
	}
	if err := cert.Save(filepath.Join(dir, "broker")); err != nil {
		t.Fatal(err)
	}
	secret := filepath.Join(dir, "broker_secret")
	loose := filepath.Join(dir, "loose_secret")
	data, err := os.ReadFile(secret)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(loose, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(loose, 0o644); err != nil {
		t.Fatal(err)
	}
	for name, key := range map[string]string{
		"missing":        filepath.Join(dir, "nope_secret"),
		"public":         filepath.Join(dir, "broker"),
		"world-readable": loose,
	} {
		var stderr bytes.Buffer
		code := runWith([]string{"--endpoint", "tcp://127.0.0.1:*", "--curve-secret-key", key}, nil, &stderr, &stderr)
		out := strings.TrimSpace(stderr.String())
		if code != 2 || out == "" || strings.Contains(out, "\n") || !strings.Contains(out, filepath.Base(key)) {
			t.Errorf("%s: exit %d, output %q; want 2 and one line naming the file", name, code, out)
		}
	}
}
