package zmtp_test

import (
	"path/filepath"
	"testing"

	"github.com/majordomo-go/majordomo/auth"
	"github.com/majordomo-go/majordomo/internal/zmtp"
)

// keygenCert makes a certificate pair the way "mdcli keygen NAME" does
// (auth.NewCert, then Save: NAME and NAME_secret) and reads the secret one
// back as the broker's --curve-secret-key or a client's --curve-cert would.
func keygenCert(t *testing.T, name string) (pub, sec []byte) {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	c, err := auth.NewCert("name", name)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Save(path); err != nil {
		t.Fatal(err)
	}
	loaded, err := auth.LoadSecretCert(path + auth.SecretSuffix)
	if err != nil {
		t.Fatal(err)
	}
	s, ok := loaded.Secret()
	if !ok {
		t.Fatal("no secret key in the secret certificate")
	}
	return loaded.Public[:], s[:]
}

// CURVE both ways against libzmq with keys made as mdcli keygen makes them
// (the pyzmq-made keys run in TestInteropSecurity).
func TestInteropCurveMdcliKeygenKeys(t *testing.T) {
	spub, ssec := keygenCert(t, "server")
	cpub, csec := keygenCert(t, "client")
	zmtp.SecurityInteropForTest(t, spub, ssec, cpub, csec)
}
