package auth

import "errors"

// ErrCredentials is wrapped by the errors of the options that set a
// client's or a worker's credentials (client.WithCurve, worker.WithPlain,
// ...) when the credentials cannot work: no certificate, a public
// certificate instead of a secret one, no server key, or a PLAIN user name
// or password of the wrong length.
var ErrCredentials = errors.New("auth: unusable credentials")
