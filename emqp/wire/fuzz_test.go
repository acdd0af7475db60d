package wire

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// updateCorpus rewrites testdata/fuzz/FuzzDecode from the seed tables:
//
//	go test -run TestFuzzSeedCorpus -update-corpus ./emqp/wire
var updateCorpus = flag.Bool("update-corpus", false, "rewrite testdata/fuzz/FuzzDecode seed files")

// The fuzzer's byte string is read as frames, each a length byte n and n
// bytes (a last frame promising more than remains takes the rest), as in
// package mdp: every input is some message, and any frame content can be
// expressed.
func splitFrames(data []byte) [][]byte {
	var frames [][]byte
	for len(data) > 0 {
		n := min(int(data[0]), len(data)-1)
		frames = append(frames, data[1:1+n:1+n])
		data = data[1+n:]
	}
	return frames
}

func joinFrames(frames [][]byte) []byte {
	var out []byte
	for _, f := range frames {
		if len(f) > 255 {
			panic("joinFrames: frame longer than 255 bytes")
		}
		out = append(out, byte(len(f)))
		out = append(out, f...)
	}
	return out
}

type fuzzSeed struct {
	name string
	data []byte
}

func fuzzSeeds() []fuzzSeed {
	var seeds []fuzzSeed
	for _, tc := range validCases {
		seeds = append(seeds, fuzzSeed{"valid-" + tc.name, joinFrames(tc.frames)})
	}
	for _, tc := range malformedCases {
		if tc.name == "long-msgid" {
			continue // A 256-byte frame does not fit the framing.
		}
		seeds = append(seeds, fuzzSeed{"bad-" + tc.name, joinFrames(tc.frames)})
	}
	return seeds
}

func FuzzDecode(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add(s.data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		orig := bytes.Clone(data)
		frames := splitFrames(data)
		m, err := Decode(frames)
		if err != nil {
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("error %T %v is not a *DecodeError", err, err)
			}
			for _, s := range Sentinels() {
				if de.Err == s && errors.Is(err, s) {
					return
				}
			}
			t.Fatalf("DecodeError %v does not wrap a sentinel", err)
		}
		// Whatever decodes encodes back to the same frames.
		enc, err := Encode(&m)
		if err != nil {
			t.Fatalf("Encode(Decode(%q)): %v", frames, err)
		}
		if d := diffFrames(enc, frames); d != "" {
			t.Fatalf("Encode(Decode(%q)): %s", frames, d)
		}
		// The field parsers take any argument without panicking.
		for _, a := range m.Args {
			ParseHeaders(a)
			if qs, err := ParseQueues(a); err == nil {
				for _, q := range qs {
					if q.Weight < 1 || q.Name == "" {
						t.Fatalf("ParseQueues(%q) accepted %+v", a, q)
					}
				}
			} else if !errors.Is(err, ErrQueues) {
				t.Fatalf("ParseQueues error %v", err)
			}
			WithHeader(a, HeaderReplyRequested)
		}
		if !bytes.Equal(data, orig) {
			t.Fatalf("input changed from %q to %q", orig, data)
		}
	})
}

func corpusFile(data []byte) []byte {
	return fmt.Appendf(nil, "go test fuzz v1\n[]byte(%q)\n", data)
}

// TestFuzzSeedCorpus keeps testdata/fuzz/FuzzDecode in step with the seed
// tables, so that `go test` replays exactly the shapes tested above.
func TestFuzzSeedCorpus(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzDecode")
	seeds := fuzzSeeds()
	if *updateCorpus {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, s := range seeds {
			if err := os.WriteFile(filepath.Join(dir, s.name), corpusFile(s.data), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, s := range seeds {
		got, err := os.ReadFile(filepath.Join(dir, s.name))
		if err != nil {
			t.Errorf("%v (run with -update-corpus)", err)
			continue
		}
		if want := corpusFile(s.data); !bytes.Equal(got, want) {
			t.Errorf("%s is stale (run with -update-corpus)", s.name)
		}
	}
}

func TestFuzzFraming(t *testing.T) {
	for _, tc := range validCases {
		if d := diffFrames(splitFrames(joinFrames(tc.frames)), tc.frames); d != "" {
			t.Errorf("%s: %s", tc.name, d)
		}
	}
	if d := diffFrames(splitFrames([]byte("\x00\x09READY")), fr("", "READY")); d != "" {
		t.Error(d)
	}
}
