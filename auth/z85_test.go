package auth

import (
	"bytes"
	"strings"
	"testing"
)

func TestZ85(t *testing.T) {
	// The test vector of 32/Z85.
	in := []byte{0x86, 0x4F, 0xD2, 0x6F, 0xB5, 0x59, 0xF7, 0x5B}
	s, err := z85Encode(in)
	if err != nil || s != "HelloWorld" {
		t.Fatalf("encode: %q %v", s, err)
	}
	out, err := z85Decode("HelloWorld")
	if err != nil || !bytes.Equal(out, in) {
		t.Fatalf("decode: %x %v", out, err)
	}
	for _, bad := range []string{"HelloWorl", "Hello Worl", "Hello\"orld", ""} {
		if _, err := z85Decode(bad); err == nil {
			t.Fatalf("%q decoded", bad)
		}
	}
	if _, err := z85Decode(strings.Repeat("#", 5)); err == nil {
		t.Fatal("overflowing Z85 decoded")
	}
}
