// Package fuzzseed is what the codecs' fuzz tests share: the framing that
// turns the fuzzer's one byte string into a multipart message, and the
// check that keeps a checked-in seed corpus in step with the test tables.
package fuzzseed

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// Split turns fuzz input into frames: each frame is one length byte
// followed by that many bytes (fewer at the end of the input). Every input
// is some message, and any frame content up to 255 bytes, empty frames and
// bytes that look like separators included, can be expressed, which a
// separator-based split could not do without escaping.
func Split(data []byte) [][]byte {
	var frames [][]byte
	for len(data) > 0 {
		n := min(int(data[0]), len(data)-1)
		frames = append(frames, data[1:1+n:1+n])
		data = data[1+n:]
	}
	return frames
}

// Join is Split's inverse, used to build seeds. It panics on a frame longer
// than 255 bytes: seeds are written by the tests themselves.
func Join(frames [][]byte) []byte {
	var out []byte
	for _, f := range frames {
		if len(f) > 255 {
			panic("fuzzseed.Join: frame longer than 255 bytes")
		}
		out = append(out, byte(len(f)))
		out = append(out, f...)
	}
	return out
}

// update makes CheckCorpus rewrite the corpus from the seed tables:
//
//	go test -run TestFuzzSeedCorpus ./mdp -update-corpus
var update = flag.Bool("update-corpus", false, "rewrite testdata/fuzz/<Target> seed files from the test tables")

// Seed is one named fuzz input.
type Seed struct {
	Name string
	Data []byte
}

// corpusFile renders a seed in the "go test fuzz v1" format that the go
// command reads from testdata/fuzz/<Target>/ (one Go literal per argument).
func corpusFile(data []byte) []byte {
	return fmt.Appendf(nil, "go test fuzz v1\n[]byte(%q)\n", data)
}

// CheckCorpus checks that dir (testdata/fuzz/<Target>) holds every seed as
// the go command's corpus file, so that `go test`, which replays that
// corpus without -fuzz, runs exactly the shapes the tables hold. Other files there (failures the fuzzer
// recorded) are left alone. With -update-corpus it first writes them.
func CheckCorpus(t *testing.T, dir string, seeds []Seed) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, s := range seeds {
			if err := os.WriteFile(filepath.Join(dir, s.Name), corpusFile(s.Data), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, s := range seeds {
		got, err := os.ReadFile(filepath.Join(dir, s.Name))
		if err != nil {
			t.Errorf("%v (run with -update-corpus)", err)
			continue
		}
		if want := corpusFile(s.Data); !bytes.Equal(got, want) {
			t.Errorf("%s is stale (run with -update-corpus)", s.Name)
		}
	}
}
