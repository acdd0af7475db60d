package mdp_test

import (
	"bytes"
	"errors"
	"path/filepath"
	"testing"

	"github.com/majordomo-go/majordomo/internal/fuzzseed"
	"github.com/majordomo-go/majordomo/mdp"
)

// fuzzSeeds are the decode test tables, valid shapes then malformed ones,
// in the fuzz framing. The direction is dropped: the target tries both.
func fuzzSeeds() []fuzzseed.Seed {
	var seeds []fuzzseed.Seed
	for _, tc := range validCases {
		seeds = append(seeds, fuzzseed.Seed{Name: "valid-" + tc.name, Data: fuzzseed.Join(tc.frames)})
	}
	for _, tc := range malformedCases {
		seeds = append(seeds, fuzzseed.Seed{Name: "bad-" + tc.name, Data: fuzzseed.Join(tc.frames)})
	}
	return seeds
}

func FuzzDecode(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add(s.Data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		orig := bytes.Clone(data)
		frames := fuzzseed.Split(data)
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

// TestFuzzSeedCorpus keeps testdata/fuzz/FuzzDecode in step with the seed
// tables, so that the checked-in corpus, which `go test` replays without
// -fuzz, is exactly the valid and malformed shapes tested above. Extra files
// there (failures the fuzzer recorded) are left alone.
func TestFuzzSeedCorpus(t *testing.T) {
	fuzzseed.CheckCorpus(t, filepath.Join("testdata", "fuzz", "FuzzDecode"), fuzzSeeds())
}

// The framing itself must round-trip, or seeds would not mean what the
// tables say.
func TestFuzzFraming(t *testing.T) {
	for _, tc := range validCases {
		if d := diffFrames(fuzzseed.Split(fuzzseed.Join(tc.frames)), tc.frames); d != "" {
			t.Errorf("%s: %s", tc.name, d)
		}
	}
	if got := fuzzseed.Split(nil); len(got) != 0 {
		t.Errorf("fuzzseed.Split(nil) = %q, want no frames", got)
	}
	// A length byte past the end takes the rest.
	if d := diffFrames(fuzzseed.Split([]byte("\x00\x09MDPW02")), fr("", "MDPW02")); d != "" {
		t.Error(d)
	}
}
