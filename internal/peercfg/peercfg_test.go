package peercfg

import (
	"strings"
	"testing"
)

func TestEndpoints(t *testing.T) {
	var c Common
	if err := c.AddBrokers([]string{"tcp://b:1", ""}); err == nil {
		t.Fatal("empty broker accepted")
	}
	if err := c.AddBrokers([]string{"tcp://b:1", "tcp://c:1"}); err != nil {
		t.Fatal(err)
	}
	eps, err := c.Endpoints("tcp://a:1", 3)
	if err != nil || strings.Join(eps, " ") != "tcp://a:1 tcp://b:1 tcp://c:1" || c.Log == nil {
		t.Fatalf("%v %v log %v", eps, err, c.Log)
	}
	for _, tc := range []struct {
		first string
		max   int
		want  string
	}{
		{"", 0, "empty broker endpoint"},
		{"tcp://a:1", 2, "3 brokers, at most 2"},
		{"tcp://b:1", 0, `broker "tcp://b:1" listed twice`},
	} {
		if _, err := c.Endpoints(tc.first, tc.max); err == nil || err.Error() != tc.want {
			t.Errorf("Endpoints(%q, %d) = %v, want %s", tc.first, tc.max, err, tc.want)
		}
	}
	if err := c.SetLogger(nil); err == nil {
		t.Error("nil logger accepted")
	}
}
