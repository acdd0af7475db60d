// Package secure applies the public auth package (keys, certificates,
// ServerSecurity, the Authenticator) to the transport adapter
// (internal/transport): the security settings of client and server sockets,
// and the Authenticator as the authentication hook of a transport context.
// It is internal because its signatures use the transport's types, which
// code outside the module cannot name; public code configures security
// through auth types and the options of client, worker, broker and emqp.
package secure

import (
	"fmt"

	"github.com/majordomo-go/majordomo/auth"
	"github.com/majordomo-go/majordomo/internal/transport"
)

// CurveClient returns the transport security of a CURVE client (25/ZMTP-CURVE):
// serverKey is the broker's public key, cert the peer's own secret
// certificate. who names the peer ("client", "worker") in errors, which
// wrap auth.ErrCredentials.
func CurveClient(serverKey auth.Key, cert *auth.Cert, who string) (*transport.Security, error) {
	if cert == nil {
		return nil, fmt.Errorf("%w: CURVE needs the %s's certificate", auth.ErrCredentials, who)
	}
	sec, ok := cert.Secret()
	if !ok {
		return nil, fmt.Errorf("%w: CURVE needs the %s's secret certificate, not the public one", auth.ErrCredentials, who)
	}
	if serverKey.IsZero() {
		return nil, fmt.Errorf("%w: CURVE needs the broker's public key", auth.ErrCredentials)
	}
	return &transport.Security{Mechanism: transport.Curve,
		PublicKey: cert.Public[:], SecretKey: sec[:], ServerKey: serverKey[:]}, nil
}

// PlainClient returns the transport security of a PLAIN client
// (24/ZMTP-PLAIN: user name and password of 1 to 255 and 0 to 255 bytes).
// Errors wrap auth.ErrCredentials.
func PlainClient(username, password string) (*transport.Security, error) {
	if username == "" || len(username) > 255 || len(password) > 255 {
		return nil, fmt.Errorf("%w: PLAIN user name must be 1 to 255 bytes, password at most 255", auth.ErrCredentials)
	}
	return &transport.Security{Mechanism: transport.Plain, Username: username, Password: password}, nil
}
