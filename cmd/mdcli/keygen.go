package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/majordomo-go/majordomo/auth"
	"github.com/majordomo-go/majordomo/client"
	"github.com/majordomo-go/majordomo/worker"
)

const keygenUsage = `Usage: mdcli keygen [flags] NAME

Make a new CURVE key pair (Curve25519, from crypto/rand) and write it as two certificates in
czmq's format: NAME, the public certificate (mode 0644), to copy into the
broker's --curve-allow directory or give to clients as --curve-server-key;
and NAME_secret, the secret certificate (mode 0600), for --curve-cert or
the broker's --curve-secret-key. Existing files are never overwritten. The
public key, in Z85, is printed on standard output.

Flags:
  --name TEXT        the certificate's "name" metadata, which a policy file
                     may use instead of the key (default: NAME's base name)
  --meta KEY=VALUE   more metadata; repeatable

The global flags (see mdcli --help) are accepted and ignored.
`

// metaFlags collects repeated --meta flags.
type metaFlags []string

func (m *metaFlags) String() string     { return strings.Join(*m, ",") }
func (m *metaFlags) Set(s string) error { *m = append(*m, s); return nil }

func (c *cli) keygen(_ context.Context, args []string) int {
	const cmd = "mdcli keygen"
	fs := c.flags(cmd, keygenUsage)
	name := fs.String("name", "", "certificate name")
	var meta metaFlags
	fs.Var(&meta, "meta", "metadata KEY=VALUE")
	if code, ok := c.parse(fs, cmd, args); !ok {
		return code
	}
	if fs.NArg() != 1 {
		return c.usageError(cmd, "want exactly one NAME")
	}
	path := fs.Arg(0)
	if *name == "" {
		*name = filepath.Base(path)
	}
	cert, err := auth.NewCert("name", *name)
	if err != nil {
		return c.fail(cmd, err)
	}
	for _, kv := range meta {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return c.usageError(cmd, fmt.Sprintf("--meta %q: want KEY=VALUE", kv))
		}
		if err := cert.SetMeta(k, v); err != nil {
			return c.usageError(cmd, err.Error())
		}
	}
	if err := cert.Save(path); err != nil {
		return c.fail(cmd, err)
	}
	fmt.Fprintln(c.stdout, cert.Public)
	return exitOK
}

// securityFlags are the CURVE flags of the commands that connect.
type securityFlags struct {
	serverKey string // --curve-server-key: Z85 key or certificate file.
	cert      string // --curve-cert: the peer's secret certificate file.
}

// load reads the key and certificate; ok is false when CURVE is not asked
// for.
func (f *securityFlags) load() (key auth.Key, cert *auth.Cert, ok bool, err error) {
	switch {
	case f.serverKey == "" && f.cert == "":
		return key, nil, false, nil
	case f.serverKey == "":
		return key, nil, false, fmt.Errorf("--curve-cert needs --curve-server-key")
	case f.cert == "":
		return key, nil, false, fmt.Errorf("--curve-server-key needs --curve-cert (make one with \"mdcli keygen\")")
	}
	if key, err = auth.LoadPublicKey(f.serverKey); err != nil {
		return key, nil, false, fmt.Errorf("--curve-server-key: %w", err)
	}
	if cert, err = auth.LoadSecretCert(f.cert); err != nil {
		return key, nil, false, fmt.Errorf("--curve-cert: %w", err)
	}
	return key, cert, true, nil
}

func (f *securityFlags) clientOptions() ([]client.Option, error) {
	key, cert, ok, err := f.load()
	if !ok {
		return nil, err
	}
	return []client.Option{client.WithCurve(key, cert)}, nil
}

func (f *securityFlags) workerOptions() ([]worker.Option, error) {
	key, cert, ok, err := f.load()
	if !ok {
		return nil, err
	}
	return []worker.Option{worker.WithCurve(key, cert)}, nil
}
