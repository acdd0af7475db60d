package mdp_test

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/majordomo-go/majordomo/mdp"
)

// updateCorpus rewrites testdata/fuzz/FuzzDecode from the seed tables:
//
//	go test -run TestFuzzSeedCorpus -update-corpus ./mdp
var updateCorpus = flag.Bool("update-corpus", false, "rewrite testdata/fuzz/FuzzDecode seed files")

// Fuzz input framing. The fuzzer hands over one byte string; a multipart
// message is read from it as a sequence of frames, each one length byte n
// followed by n bytes of content. A last frame whose length byte promises
// more than remains takes what is left. So every input is some message
// (the empty input is the message of no frames), a mutated length byte moves
// a frame boundary, and any frame content up to 255 bytes, including empty
// frames and bytes that look like separators, can be expressed, which a
// separator-based split could not do without escaping.
func splitFrames(data []byte) [][]byte {
	var frames [][]byte
	for len(data) > 0 {
		n := int(data[0])
		data = data[1:]
		n = min(n, len(data))
		frames = append(frames, data[:n:n])
		data = data[n:]
	}
	return frames
}

// joinFrames is splitFrames' inverse, used to build seeds.
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

// fuzzSeeds are the decode test tables, valid shapes then malformed ones,
// in the fuzz framing. The direction is dropped: the target tries both.
func fuzzSeeds() []fuzzSeed {
	var seeds []fuzzSeed
	for _, tc := range validCases {
		seeds = append(seeds, fuzzSeed{"valid-" + tc.name, joinFrames(tc.frames)})
	}
	for _, tc := range malformedCases {
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
		for _, dir := range []mdp.Direction{mdp.ToBroker, mdp.FromBroker} {
			checkDecode(t, dir, frames)
		}
		// Decode and Encode only slice their input; they must not write it.
		if !bytes.Equal(data, orig) {
			t.Fatalf("input changed from %q to %q", orig, data)
		}
	})
}

// checkDecode holds the properties every input must satisfy: Decode does not
// panic (a panic fails the fuzz run by itself), fails only with a
// sentinel-carrying *DecodeError, and whatever it accepts encodes and
// decodes back to the same message.
func checkDecode(t *testing.T, dir mdp.Direction, frames [][]byte) {
	t.Helper()
	m, err := mdp.Decode(dir, frames)
	if err != nil {
		var de *mdp.DecodeError
		if !errors.As(err, &de) {
			t.Fatalf("dir %d: error %T %v is not a *DecodeError", dir, err, err)
		}
		for _, s := range sentinels {
			if de.Err == s && errors.Is(err, s) {
				return
			}
		}
		t.Fatalf("dir %d: DecodeError %v does not wrap a sentinel", dir, err)
	}

	enc, err := mdp.Encode(&m)
	if err != nil {
		t.Fatalf("dir %d: Encode of decoded %q: %v", dir, frames, err)
	}
	// Encoding is canonical: it reproduces the input frames. The only
	// decodable message without frame 0 that 7/MDP puts on the wire anyway
	// is a reply read through a REQ socket.
	want := frames
	if m.Version == mdp.V1 && !m.Delimited {
		want = append([][]byte{{}}, frames...)
	}
	if d := diffFrames(enc, want); d != "" {
		t.Fatalf("dir %d: Encode(Decode(%q)): %s", dir, frames, d)
	}
	m2, err := mdp.Decode(dir, enc)
	if err != nil {
		t.Fatalf("dir %d: Decode(Encode(Decode(%q))) = %v", dir, frames, err)
	}
	wantMsg := m
	wantMsg.Delimited = m.Delimited || m.Version == mdp.V1
	if d := diffMessage(m2, wantMsg); d != "" {
		t.Fatalf("dir %d: round trip of %q: %s", dir, frames, d)
	}
}

// corpusFile renders a seed in the "go test fuzz v1" format that the go
// command reads from testdata/fuzz/<Target>/ (one Go literal per argument).
func corpusFile(data []byte) []byte {
	return fmt.Appendf(nil, "go test fuzz v1\n[]byte(%q)\n", data)
}

// TestFuzzSeedCorpus keeps testdata/fuzz/FuzzDecode in step with the seed
// tables, so that the checked-in corpus, which `go test` replays without
// -fuzz, is exactly the valid and malformed shapes tested above. Extra files
// there (failures the fuzzer recorded) are left alone.
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
			t.Errorf("%s is stale:\n%s\nwant:\n%s(run with -update-corpus)", s.name, got, want)
		}
	}
}

// The framing itself must round-trip, or seeds would not mean what the
// tables say.
func TestFuzzFraming(t *testing.T) {
	for _, tc := range validCases {
		if d := diffFrames(splitFrames(joinFrames(tc.frames)), tc.frames); d != "" {
			t.Errorf("%s: %s", tc.name, d)
		}
	}
	if got := splitFrames(nil); len(got) != 0 {
		t.Errorf("splitFrames(nil) = %q, want no frames", got)
	}
	// A length byte past the end takes the rest.
	if d := diffFrames(splitFrames([]byte("\x00\x09MDPW02")), fr("", "MDPW02")); d != "" {
		t.Error(d)
	}
}
