package bench

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/majordomo-go/majordomo/auth"
	"github.com/majordomo-go/majordomo/broker"
	"github.com/majordomo-go/majordomo/client"
	"github.com/majordomo-go/majordomo/worker"
)

// prepareCurve makes the certificates of a --curve run against a broker
// mdbench starts itself: a broker certificate and one client certificate,
// shared by every client and worker, in a temporary directory. Against an
// external broker the user gives --curve-server-key and --curve-cert. The
// returned function removes the directory.
func prepareCurve(cfg *Config) (func(), error) {
	if !cfg.Curve || cfg.Broker == BrokerExternal {
		return func() {}, nil
	}
	dir, err := os.MkdirTemp("", "mdbench-curve")
	if err != nil {
		return nil, err
	}
	cleanup := func() { os.RemoveAll(dir) }
	for _, name := range []string{"broker", "client"} {
		c, err := auth.NewCert("name", "mdbench-"+name)
		if err == nil {
			err = c.Save(filepath.Join(dir, name))
		}
		if err != nil {
			cleanup()
			return nil, fmt.Errorf("curve certificates: %w", err)
		}
	}
	cfg.CurveServerKey = filepath.Join(dir, "broker")
	cfg.CurveCert = filepath.Join(dir, "client_secret")
	cfg.CurveBrokerCert = filepath.Join(dir, "broker_secret")
	return cleanup, nil
}

// brokerSecurity is the in-process broker's security for a --curve run.
func brokerSecurity(cfg Config) (*broker.Security, error) {
	if cfg.CurveBrokerCert == "" {
		return nil, nil
	}
	cert, err := auth.LoadSecretCert(cfg.CurveBrokerCert)
	if err != nil {
		return nil, err
	}
	// Any client key is admitted: the run's clients share one certificate
	// made for it.
	a, err := auth.NewAuthenticator(auth.Config{CurveAllowAny: true, Logger: discard})
	if err != nil {
		return nil, err
	}
	return &broker.Security{CurveCert: cert, Authenticator: a}, nil
}

// peerCurve loads the CURVE credentials of clients and workers, or returns
// nil options when the run has none (and for the raw echo, which is plain).
func peerCurve(cfg Config) ([]client.Option, []worker.Option, error) {
	if cfg.CurveServerKey == "" {
		return nil, nil, nil
	}
	key, err := auth.LoadPublicKey(cfg.CurveServerKey)
	if err != nil {
		return nil, nil, err
	}
	cert, err := auth.LoadSecretCert(cfg.CurveCert)
	if err != nil {
		return nil, nil, err
	}
	return []client.Option{client.WithCurve(key, cert)}, []worker.Option{worker.WithCurve(key, cert)}, nil
}
