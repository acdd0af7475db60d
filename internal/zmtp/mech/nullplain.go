package mech

import "fmt"

// NULL (23/ZMTP "The NULL Security Mechanism"): the client SHALL send READY
// and then wait for READY; the server parses the client's READY and, if there
// is no error, MUST reply with READY. libzmq sends its READY without waiting,
// so a server that reads first interoperates and never deadlocks on a
// synchronous pipe.

func nullClient(c Conn, cfg *Config) (Result, error) {
	if err := c.WriteCommand("READY", cfg.Local.Append(nil)); err != nil {
		return Result{}, err
	}
	return readReady(c, "READY")
}

func nullServer(c Conn, cfg *Config) (Result, error) {
	res, err := readReady(c, "READY")
	if err != nil {
		return Result{}, err
	}
	// libzmq 4.3 (mechanism_base_t::zap_required): NULL asks ZAP only when
	// the socket has a ZAP domain.
	if cfg.Domain != "" && cfg.Auth != nil {
		authMD, userID, err := authenticate(c, cfg, nil)
		if err != nil {
			return Result{}, err
		}
		res.Peer = append(authMD, res.Peer...)
		res.UserID = userID
	}
	if err := c.WriteCommand("READY", cfg.Local.Append(nil)); err != nil {
		return Result{}, err
	}
	return res, nil
}

// readReady reads a READY (NULL, PLAIN) or INITIATE (PLAIN server) command
// whose data is a plain metadata block.
func readReady(c Conn, want string) (Result, error) {
	name, data, err := c.ReadCommand()
	if err != nil {
		return Result{}, err
	}
	if name != want {
		return Result{}, unexpected(name, data, want)
	}
	md, err := ParseMetadata(data)
	if err != nil {
		return Result{}, fmt.Errorf("%s: %w", want, err)
	}
	return Result{Peer: md}, nil
}

// PLAIN (24/ZMTP-PLAIN):
//
//	C:HELLO username password  S:WELCOME | S:ERROR
//	C:INITIATE metadata        S:READY metadata | S:ERROR
//
// libzmq authenticates on HELLO, so its ERROR replaces WELCOME.

func plainClient(c Conn, cfg *Config) (Result, error) {
	if len(cfg.Username) > 255 || len(cfg.Password) > 255 {
		return Result{}, fmt.Errorf("%w: PLAIN username and password are at most 255 bytes", ErrConfig)
	}
	hello := make([]byte, 0, 2+len(cfg.Username)+len(cfg.Password))
	hello = append(hello, byte(len(cfg.Username)))
	hello = append(hello, cfg.Username...)
	hello = append(hello, byte(len(cfg.Password)))
	hello = append(hello, cfg.Password...)
	if err := c.WriteCommand("HELLO", hello); err != nil {
		return Result{}, err
	}
	name, data, err := c.ReadCommand()
	if err != nil {
		return Result{}, err
	}
	if name != "WELCOME" {
		return Result{}, unexpected(name, data, "WELCOME")
	}
	if len(data) != 0 {
		return Result{}, fmt.Errorf("%w: WELCOME with %d bytes of data", ErrMalformed, len(data))
	}
	if err := c.WriteCommand("INITIATE", cfg.Local.Append(nil)); err != nil {
		return Result{}, err
	}
	return readReady(c, "READY")
}

func plainServer(c Conn, cfg *Config) (Result, error) {
	name, data, err := c.ReadCommand()
	if err != nil {
		return Result{}, err
	}
	if name != "HELLO" {
		return Result{}, unexpected(name, data, "HELLO")
	}
	user, pass, err := parsePlainHello(data)
	if err != nil {
		return Result{}, err
	}
	if cfg.Auth == nil {
		return Result{}, ErrNoAuthenticator
	}
	authMD, userID, err := authenticate(c, cfg, [][]byte{user, pass})
	if err != nil {
		return Result{}, err
	}
	if err := c.WriteCommand("WELCOME", nil); err != nil {
		return Result{}, err
	}
	res, err := readReady(c, "INITIATE")
	if err != nil {
		return Result{}, err
	}
	if err := c.WriteCommand("READY", cfg.Local.Append(nil)); err != nil {
		return Result{}, err
	}
	res.Peer = append(authMD, res.Peer...)
	res.UserID = userID
	return res, nil
}

// parsePlainHello splits HELLO's data into username and password, which
// must fill it exactly (libzmq: "malformed password or extraneous data").
// The results are copies: data may live in the engine's read buffer.
func parsePlainHello(data []byte) (user, pass []byte, err error) {
	if len(data) < 1 || int(data[0]) > len(data)-1 {
		return nil, nil, fmt.Errorf("%w: PLAIN HELLO username", ErrMalformed)
	}
	ul := int(data[0])
	rest := data[1+ul:]
	if len(rest) < 1 || int(rest[0]) != len(rest)-1 {
		return nil, nil, fmt.Errorf("%w: PLAIN HELLO password", ErrMalformed)
	}
	own := append([]byte(nil), data...)
	return own[1 : 1+ul : 1+ul], own[2+ul:], nil
}
