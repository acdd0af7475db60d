package app

import (
	"errors"
	"log/slog"

	"github.com/majordomo-go/majordomo/auth"
	"github.com/majordomo-go/majordomo/broker"
	"github.com/majordomo-go/majordomo/emqp"
	"github.com/majordomo-go/majordomo/internal/config"
)

// loadSecurity reads the security settings of c (keys, allow-list,
// passwords, policy, address lists) into the broker's Security, or returns
// nil if c asks for none. Every error is one line naming the flag or the
// file at fault: a missing or malformed key, a secret key or password file
// that other users can read (auth.ErrPermissions), a missing allow-list
// directory, a malformed policy. Without curve-allow, CURVE admits any
// client key (the Authenticator logs a warning).
func loadSecurity(c config.Config, log *slog.Logger) (*broker.Security, error) {
	if c.CurveSecretKey == "" && c.CurveAllow == "" && c.Policy == "" && c.PlainPasswords == "" &&
		len(c.PlainEndpoints) == 0 && len(c.AllowIPs) == 0 && len(c.DenyIPs) == 0 {
		return nil, nil
	}
	switch {
	case c.CurveAllow != "" && c.CurveSecretKey == "":
		return nil, errors.New("--curve-allow needs --curve-secret-key")
	case c.Policy != "" && c.CurveSecretKey == "" && c.PlainPasswords == "":
		return nil, errors.New("--policy needs authenticated peers: --curve-secret-key or --plain-passwords")
	case len(c.PlainEndpoints) > 0 && (c.CurveSecretKey == "" || c.PlainPasswords == ""):
		return nil, errors.New("--plain-endpoint needs --curve-secret-key and --plain-passwords (without CURVE, --plain-passwords makes every --endpoint PLAIN)")
	}
	s := &broker.Security{PlainEndpoints: c.PlainEndpoints}
	if c.CurveSecretKey != "" {
		cert, err := auth.LoadSecretCert(c.CurveSecretKey)
		if err != nil {
			return nil, err
		}
		s.CurveCert = cert
	}
	a, err := auth.NewAuthenticator(auth.Config{
		CurveAllowDir: c.CurveAllow,
		CurveAllowAny: c.CurveSecretKey != "" && c.CurveAllow == "",
		PasswordFile:  c.PlainPasswords,
		AllowIPs:      c.AllowIPs,
		DenyIPs:       c.DenyIPs,
		Logger:        log,
	})
	if err != nil {
		return nil, err
	}
	s.Authenticator = a
	if c.Policy != "" {
		z, err := auth.NewAuthorizer(c.Policy, a, log)
		if err != nil {
			return nil, err
		}
		s.Authorizer = z
	}
	return s, nil
}

// secureEMQP applies the broker's security to the eMQP fronts: the same
// mechanism, Authenticator (allow-list, passwords, IP lists) and policy,
// unless the operator chose plaintext fronts (emqp-security = "none"),
// which the IP lists still filter and the policy cannot apply to.
func (a *App) secureEMQP(ecfg *emqp.Config) {
	sec, plaintext := a.sec, a.cfg.EMQPPlaintext()
	if sec == nil {
		return
	}
	ecfg.Security = &auth.ServerSecurity{Cert: sec.CurveCert, Authenticator: sec.Authenticator, Plaintext: plaintext}
	if plaintext {
		if sec.Authorizer != nil {
			a.log.Warn("policy not applied to the eMQP fronts: emqp-security = \"none\" leaves their peers unauthenticated")
		}
		return
	}
	if sec.Authorizer != nil {
		ecfg.Authorizer = sec.Authorizer
	}
}

// warnPlaintext logs, at every start of a broker with security configured,
// one warning per listening endpoint that is neither authenticated nor
// encrypted, naming it, so that no plaintext listener goes unnoticed.
func (a *App) warnPlaintext() {
	if a.sec == nil {
		return
	}
	ls := a.b.Listeners()
	if a.e != nil {
		ls = append(ls, a.e.Listeners()...)
	}
	for _, l := range ls {
		if l.Plaintext() {
			why := "emqp-security = \"none\""
			if l.Front == broker.FrontMDP {
				why = "no curve-secret-key or plain-passwords: filtered by address only"
			}
			a.log.Warn("plaintext endpoint: neither authenticated nor encrypted", "front", l.Front,
				"endpoint", l.Endpoint, "because", why)
		}
	}
	if a.httpAddr != "" {
		a.log.Warn("plaintext endpoint: the HTTP operations server has no authentication or encryption; keep it on loopback or behind an authenticating proxy",
			"front", "http", "endpoint", a.httpAddr)
	}
}
