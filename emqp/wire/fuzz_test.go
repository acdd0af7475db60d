package wire

import (
	"bytes"
	"errors"
	"path/filepath"
	"testing"

	"github.com/majordomo-go/majordomo/internal/fuzzseed"
)

// fuzzSeeds are the decode test tables in the fuzz framing (see
// fuzzseed.Split).
func fuzzSeeds() []fuzzseed.Seed {
	var seeds []fuzzseed.Seed
	for _, tc := range validCases {
		seeds = append(seeds, fuzzseed.Seed{Name: "valid-" + tc.name, Data: fuzzseed.Join(tc.frames)})
	}
	for _, tc := range malformedCases {
		if tc.name == "long-msgid" {
			continue // A 256-byte frame does not fit the framing.
		}
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

// TestFuzzSeedCorpus keeps testdata/fuzz/FuzzDecode in step with the seed
// tables, so that `go test` replays exactly the shapes tested above.
func TestFuzzSeedCorpus(t *testing.T) {
	fuzzseed.CheckCorpus(t, filepath.Join("testdata", "fuzz", "FuzzDecode"), fuzzSeeds())
}

func TestFuzzFraming(t *testing.T) {
	for _, tc := range validCases {
		if d := diffFrames(fuzzseed.Split(fuzzseed.Join(tc.frames)), tc.frames); d != "" {
			t.Errorf("%s: %s", tc.name, d)
		}
	}
	if d := diffFrames(fuzzseed.Split([]byte("\x00\x09READY")), fr("", "READY")); d != "" {
		t.Error(d)
	}
}
