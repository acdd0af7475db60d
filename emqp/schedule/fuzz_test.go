package schedule

import (
	"encoding/json"
	"errors"
	"testing"
)

// FuzzKey: any job frame is keyed or refused with ErrSpec, never a panic,
// and PyJSON of what it decodes is valid JSON that decodes to the same
// value.
func FuzzKey(f *testing.F) {
	for _, s := range []string{job, `["run", {}]`, `["run", {"args": [1e400, -0, "\u00e9\ud83d\ude00"]}]`, `{}`, `[`, `"x"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if _, err := Key(b); err != nil && !errors.Is(err, ErrSpec) {
			t.Fatalf("Key error %v", err)
		}
		var v any
		if unmarshal(b, &v) != nil {
			return
		}
		out := PyJSON(nil, v)
		var back any
		if err := unmarshal(out, &back); err != nil {
			// Python writes Infinity for out-of-range floats, which is
			// not JSON; nothing else may fail.
			if !json.Valid(out) && containsInfinity(out) {
				return
			}
			t.Fatalf("PyJSON(%s) = %s: %v", b, out, err)
		}
		if again := PyJSON(nil, back); string(again) != string(out) {
			t.Fatalf("PyJSON not stable: %s then %s", out, again)
		}
	})
}

func containsInfinity(b []byte) bool {
	for i := 0; i+8 <= len(b); i++ {
		if string(b[i:i+8]) == "Infinity" {
			return true
		}
	}
	return false
}
