package auth

import (
	"errors"
	"fmt"

	"github.com/majordomo-go/majordomo/internal/transport"
)

// ErrCredentials is wrapped by CurveClient and PlainClient for unusable
// credentials.
var ErrCredentials = errors.New("auth: unusable credentials")

// CurveClient returns the transport security of a CURVE client (25/ZMTP-CURVE):
// serverKey is the broker's public key, cert the peer's own secret
// certificate. who names the peer ("client", "worker") in errors.
func CurveClient(serverKey Key, cert *Cert, who string) (*transport.Security, error) {
	if cert == nil {
		return nil, fmt.Errorf("%w: CURVE needs the %s's certificate", ErrCredentials, who)
	}
	sec, ok := cert.Secret()
	if !ok {
		return nil, fmt.Errorf("%w: CURVE needs the %s's secret certificate, not the public one", ErrCredentials, who)
	}
	if serverKey.IsZero() {
		return nil, fmt.Errorf("%w: CURVE needs the broker's public key", ErrCredentials)
	}
	return &transport.Security{Mechanism: transport.Curve,
		PublicKey: cert.Public[:], SecretKey: sec[:], ServerKey: serverKey[:]}, nil
}

// PlainClient returns the transport security of a PLAIN client
// (24/ZMTP-PLAIN: user name and password of 1 to 255 and 0 to 255 bytes).
func PlainClient(username, password string) (*transport.Security, error) {
	if username == "" || len(username) > 255 || len(password) > 255 {
		return nil, fmt.Errorf("%w: PLAIN user name must be 1 to 255 bytes, password at most 255", ErrCredentials)
	}
	return &transport.Security{Mechanism: transport.Plain, Username: username, Password: password}, nil
}
