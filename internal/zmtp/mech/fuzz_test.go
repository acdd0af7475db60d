package mech

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestMetadata(t *testing.T) {
	md := Metadata{{"Socket-Type", []byte("DEALER")}, {"Identity", nil}, {"X-Big", bytes.Repeat([]byte("v"), 300)}}
	enc := md.Append([]byte{0xAA})
	if enc[0] != 0xAA || len(enc)-1 != md.Size() {
		t.Fatalf("Append: %d bytes, Size %d", len(enc)-1, md.Size())
	}
	// 23/ZMTP's worked example: "\x0bSocket-Type\x00\x00\x00\x06DEALER".
	if !bytes.HasPrefix(enc[1:], []byte("\x0bSocket-Type\x00\x00\x00\x06DEALER\x08Identity\x00\x00\x00\x00")) {
		t.Fatalf("encoding %q", enc[1:40])
	}
	got, err := ParseMetadata(enc[1:])
	if err != nil || len(got) != 3 {
		t.Fatalf("parse: %v %v", got, err)
	}
	for i := range md {
		if got[i].Name != md[i].Name || !bytes.Equal(got[i].Value, md[i].Value) {
			t.Fatalf("property %d: %q", i, got[i].Name)
		}
	}
	enc[len(enc)-1] = 'w' // the parsed values do not alias the input
	if v, _ := got.Get("x-BIG"); v[len(v)-1] != 'v' {
		t.Fatal("value aliases the input")
	}
	if _, ok := got.Get("Resource"); ok {
		t.Fatal("Get found an absent name")
	}
	if md, err := ParseMetadata(nil); err != nil || md != nil {
		t.Fatalf("empty: %v %v", md, err)
	}
	bad := map[string][]byte{
		"empty name":        {0, 0, 0, 0, 0},
		"trailing octet":    append(Metadata{{"A", nil}}.Append(nil), 1),
		"name past end":     {5, 'a', 'b'},
		"size past end":     {1, 'a', 0, 0},
		"value past end":    {1, 'a', 0, 0, 0, 2, 'x'},
		"value above 2^31":  {1, 'a', 0x80, 0, 0, 0},
		"value 4G":          {1, 'a', 0xff, 0xff, 0xff, 0xff},
		"second is partial": append(Metadata{{"A", nil}}.Append(nil), 1, 'b', 0),
	}
	for name, b := range bad {
		_, err := ParseMetadata(b)
		var me *MetadataError
		if !errors.As(err, &me) || !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func FuzzParseMetadata(f *testing.F) {
	f.Add(localMD("DEALER", "id").Append(nil))
	f.Add([]byte{})
	f.Add([]byte{1, 'a', 0x7f, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		md, err := ParseMetadata(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		// Whatever parses re-encodes to the same bytes.
		if enc := md.Append(nil); !bytes.Equal(enc, b) {
			t.Fatalf("re-encoding differs: %x vs %x", enc, b)
		}
		if err := md.Validate(); err != nil {
			t.Fatalf("parsed metadata does not validate: %v", err)
		}
	})
}

// Fuzz scripts for server handshakes: commands as name-size octet, name,
// 2-octet big-endian data size, data. After a CURVE handshake succeeds the
// remaining commands go to Cipher.Open, so that MESSAGE parsing is fuzzed
// too. The server's randomness is fixed (fuzzRandSeed), so a recorded
// client INITIATE stays valid and the corpus reaches past the cookie.

const fuzzRandSeed = "mech-fuzz"

func encodeScript(cmds []command) []byte {
	var b []byte
	for _, c := range cmds {
		b = append(b, byte(len(c.name)))
		b = append(b, c.name...)
		b = binary.BigEndian.AppendUint16(b, uint16(len(c.data)))
		b = append(b, c.data...)
	}
	return b
}

func decodeScript(b []byte) []command {
	var cmds []command
	for len(b) > 0 {
		n := int(b[0])
		b = b[1:]
		if n > len(b) {
			break
		}
		name := string(b[:n])
		b = b[n:]
		if len(b) < 2 {
			break
		}
		sz := int(binary.BigEndian.Uint16(b))
		b = b[2:]
		if sz > len(b) {
			sz = len(b)
		}
		cmds = append(cmds, command{name, b[:sz:sz]})
		b = b[sz:]
	}
	return cmds
}

// Fixed server keys for fuzzing (derived, not secret).
func fuzzServerConfig(mech string) *Config {
	cfg := &Config{Mechanism: mech, Server: true, Local: localMD("ROUTER", ""), Domain: "d",
		Rand: newDetRand(fuzzRandSeed), Auth: allow("fuzz")}
	if mech == Curve {
		sec := make([]byte, 32)
		newDetRand("server-key").Read(sec)
		pub, _ := CurvePublic(sec)
		cfg.SecretKey, cfg.PublicKey = sec, pub
	}
	return cfg
}

func fuzzServer(t *testing.T, mech string, script []byte) {
	conn := &scriptConn{in: decodeScript(script)}
	res, err := Handshake(conn, fuzzServerConfig(mech))
	if err != nil {
		for _, e := range []error{ErrMalformed, ErrUnexpected, ErrCrypto, ErrNonce, ErrPeerError, ErrRefused} {
			if errors.Is(err, e) {
				return
			}
		}
		if errors.Is(err, io.EOF) {
			return // the script ran out
		}
		t.Fatalf("untyped error: %v", err)
	}
	if res.Cipher != nil {
		for _, c := range conn.in {
			body := append([]byte{byte(len(c.name))}, c.name...)
			body = append(body, c.data...)
			res.Cipher.Open(body)
		}
	}
}

func FuzzNullServer(f *testing.F) {
	f.Add(encodeScript([]command{{"READY", localMD("DEALER", "x").Append(nil)}}))
	f.Fuzz(func(t *testing.T, b []byte) { fuzzServer(t, Null, b) })
}

func FuzzPlainServer(f *testing.F) {
	f.Add(encodeScript([]command{{"HELLO", []byte("\x01u\x01p")}, {"INITIATE", localMD("DEALER", "x").Append(nil)}}))
	f.Fuzz(func(t *testing.T, b []byte) { fuzzServer(t, Plain, b) })
}

func FuzzCurveServer(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) { fuzzServer(t, Curve, b) })
}

// recordCurveClient records a real client's commands against the fuzzing
// server configuration, followed by two MESSAGE commands.
func recordCurveClient(t *testing.T) []command {
	scfg := fuzzServerConfig(Curve)
	ck := mustKeys(t)
	ccfg := &Config{Mechanism: Curve, PublicKey: ck.pub, SecretKey: ck.sec, ServerKey: scfg.PublicKey, Local: localMD("DEALER", "w")}
	cconn := &chanConn{in: make(chan command, 4), out: make(chan command, 4)}
	var rec []command
	sconn := &hookConn{Conn: &chanConn{in: cconn.out, out: cconn.in}, onRead: func(n string, d []byte) (string, []byte) {
		rec = append(rec, command{n, append([]byte(nil), d...)})
		return n, d
	}}
	type r struct {
		res Result
		err error
	}
	done := make(chan r, 1)
	go func() { res, err := Handshake(cconn, ccfg); done <- r{res, err} }()
	if _, err := Handshake(sconn, scfg); err != nil {
		t.Fatal(err)
	}
	c := <-done
	if c.err != nil {
		t.Fatal(c.err)
	}
	for _, body := range []string{"first", strings.Repeat("x", 300)} {
		fr, _ := c.res.Cipher.Seal(nil, 0, []byte(body))
		cmd := fr[2:]
		if fr[0]&flagLong != 0 {
			cmd = fr[9:]
		}
		rec = append(rec, command{"MESSAGE", cmd[8:]})
	}
	return rec
}

// TestFuzzCorpus checks that the committed seed corpora still reach where
// they are meant to: the CURVE seed completes the handshake and opens both
// messages. MECH_WRITE_CORPUS=1 rewrites the seeds from a fresh recording.
func TestFuzzCorpus(t *testing.T) {
	path := filepath.Join("testdata", "fuzz", "FuzzCurveServer", "handshake")
	if os.Getenv("MECH_WRITE_CORPUS") != "" {
		seeds := map[string][]byte{
			"FuzzCurveServer/handshake": encodeScript(recordCurveClient(t)),
			"FuzzNullServer/ready":      encodeScript([]command{{"READY", localMD("DEALER", "x").Append(nil)}, {"READY", nil}}),
			"FuzzNullServer/error":      encodeScript([]command{{"ERROR", []byte("\x03400")}}),
			"FuzzPlainServer/handshake": encodeScript([]command{{"HELLO", []byte("\x05admin\x06secret")}, {"INITIATE", localMD("DEALER", "x").Append(nil)}}),
			"FuzzPlainServer/empty":     encodeScript([]command{{"HELLO", []byte{0, 0}}, {"INITIATE", nil}}),
			"FuzzParseMetadata/basic":   localMD("DEALER", "worker").Append(nil),
			"FuzzParseMetadata/big":     Metadata{{"X-A", make([]byte, 300)}, {"b", nil}}.Append(nil),
		}
		for name, b := range seeds {
			p := filepath.Join("testdata", "fuzz", name)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			content := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", b)
			if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitN(string(raw), "\n", 3)
	if len(lines) < 2 || lines[0] != "go test fuzz v1" || !strings.HasPrefix(lines[1], "[]byte(") {
		t.Fatalf("corpus file format: %q", raw[:min(len(raw), 40)])
	}
	var script string
	if _, err := fmt.Sscanf(strings.TrimSuffix(strings.TrimPrefix(lines[1], "[]byte("), ")"), "%q", &script); err != nil {
		t.Fatal(err)
	}
	conn := &scriptConn{in: decodeScript([]byte(script))}
	res, err := Handshake(conn, fuzzServerConfig(Curve))
	if err != nil || len(conn.in) != 2 {
		t.Fatalf("seed handshake: %v, %d commands left", err, len(conn.in))
	}
	for _, c := range conn.in {
		body := append([]byte("\x07MESSAGE"), c.data...)
		if _, _, err := res.Cipher.Open(body); err != nil {
			t.Fatalf("seed MESSAGE: %v", err)
		}
	}
}
