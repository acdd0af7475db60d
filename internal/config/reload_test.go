package config

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/majordomo-go/majordomo/broker"
	"github.com/majordomo-go/majordomo/emqp"
)

// otherValue returns a valid value for s that differs from its value in c.
func otherValue(t *testing.T, s *setting, c *Config) any {
	t.Helper()
	switch v := s.value(c).(type) {
	case time.Duration:
		return v + time.Second
	case int:
		return v + 7
	case int64:
		return v + 1<<20
	case bool:
		return !v
	case []string:
		return append(append([]string(nil), v...), "tcp://127.0.0.1:1")
	default:
		switch s.name {
		case "log-level":
			return mustParse(t, s, "debug")
		case "emqp-security":
			return EMQPSecurityNone
		case "titanic-store":
			return "postgres://u@h/db"
		case "http":
			return "127.0.0.1:1"
		}
		return "/some/path"
	}
}

func mustParse(t *testing.T, s *setting, text string) any {
	t.Helper()
	v, err := s.parseText(text)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestReloadFollowsTheTable changes each setting alone: one whose reload
// bit is set is applied and listed as changed, any other keeps its running
// value and is listed as needing a restart.
func TestReloadFollowsTheTable(t *testing.T) {
	running := Defaults()
	for _, s := range settings {
		next := running
		s.set(&next, otherValue(t, s, &next))
		if s.format(&next) == s.format(&running) {
			t.Fatalf("%s: test value equals the default", s.name)
		}
		apply, changed, restart := Reload(running, next)
		if s.reload {
			want := fmt.Sprintf("%s: %s -> %s", s.name, s.format(&running), s.format(&next))
			if len(changed) != 1 || changed[0] != want || len(restart) != 0 {
				t.Errorf("%s: changed %q restart %q, want changed [%s]", s.name, changed, restart, want)
			}
			if s.format(&apply) != s.format(&next) {
				t.Errorf("%s: not applied: %s", s.name, s.format(&apply))
			}
			continue
		}
		if len(restart) != 1 || restart[0] != s.name || len(changed) != 0 {
			t.Errorf("%s: changed %q restart %q, want restart [%s]", s.name, changed, restart, s.name)
		}
		if !reflect.DeepEqual(apply, running) {
			t.Errorf("%s: a restart setting changed the running configuration: %s", s.name, s.format(&apply))
		}
	}
}

func TestReloadMixed(t *testing.T) {
	running := Defaults()
	next := running
	next.MaxQueue, next.Endpoints, next.EMQPFrontend, next.DrainTimeout = 5, []string{"ipc:///tmp/x"}, "tcp://*:1", time.Second
	apply, changed, restart := Reload(running, next)
	if strings.Join(changed, "; ") != "max-queue: 10000 -> 5; drain-timeout: 10s -> 1s" {
		t.Errorf("changed %q", changed)
	}
	if strings.Join(restart, " ") != "endpoint emqp-frontend" {
		t.Errorf("restart %q", restart)
	}
	if apply.MaxQueue != 5 || apply.DrainTimeout != time.Second || apply.EMQPFrontend != "" ||
		!reflect.DeepEqual(apply.Endpoints, running.Endpoints) {
		t.Errorf("apply %+v", apply)
	}
	if _, c, r := Reload(running, running); len(c)+len(r) != 0 {
		t.Errorf("no change: %q %q", c, r)
	}
}

// TestLibFieldsExist keeps the table's library field names true to the
// libraries' Config structs.
func TestLibFieldsExist(t *testing.T) {
	types := map[string]reflect.Type{"broker": reflect.TypeOf(broker.Config{}), "emqp": reflect.TypeOf(emqp.Config{})}
	for _, s := range settings {
		for _, f := range s.lib {
			lib, path, _ := strings.Cut(f, ".")
			typ := types[lib]
			if typ == nil {
				t.Errorf("%s: unknown library in %q", s.name, f)
				continue
			}
			for _, name := range strings.Split(path, ".") {
				for typ.Kind() == reflect.Pointer {
					typ = typ.Elem()
				}
				sf, ok := typ.FieldByName(name)
				if !ok {
					t.Errorf("%s: %q: no field %s in %s", s.name, f, name, typ)
					break
				}
				typ = sf.Type
			}
		}
	}
}

func TestExplain(t *testing.T) {
	bcfg := Defaults().Broker(nil)
	bcfg.HeartbeatInterval = 5 * time.Millisecond
	err := Explain(bcfg.Validate())
	if err.Error() != "broker: invalid configuration: heartbeat=5ms: must be at least 10ms" || !errors.Is(err, broker.ErrConfig) {
		t.Errorf("broker: %v", err)
	}
	_, err = emqp.New(emqp.Config{Frontend: "tcp://127.0.0.1:*", Backend: "tcp://127.0.0.1:*",
		HeartbeatInterval: time.Second, HeartbeatTimeout: time.Second})
	err = Explain(err)
	if !strings.Contains(err.Error(), "emqp-heartbeat-timeout=1s") || !errors.Is(err, emqp.ErrConfig) {
		t.Errorf("emqp: %v", err)
	}
	// A field no setting sets keeps its name.
	_, err = emqp.New(emqp.Config{Frontend: "tcp://127.0.0.1:*", Backend: "tcp://127.0.0.1:*", MaxQueues: -1})
	if got := Explain(err); got != err || !strings.Contains(got.Error(), "MaxQueues=-1") {
		t.Errorf("unmapped: %v", got)
	}
	plain := errors.New("other")
	if Explain(plain) != plain {
		t.Error("Explain changed an error it does not know")
	}
}

func TestEMQPCrossChecks(t *testing.T) {
	for _, tc := range []struct {
		env  []string
		want string
	}{
		{[]string{"MDBROKER_EMQP_FRONTEND=tcp://*:1", "MDBROKER_EMQP_BACKEND=tcp://*:2", "MDBROKER_EMQP_PUB_IN=tcp://*:3"}, "emqp-pub-in needs emqp-pub-out"},
		{[]string{"MDBROKER_EMQP_FRONTEND=tcp://*:1", "MDBROKER_EMQP_BACKEND=tcp://*:2", "MDBROKER_SCHEDULER_STORE=/x"}, "scheduler-store needs scheduler"},
	} {
		_, err := Load(nil, tc.env)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want %q", tc.env, err, tc.want)
		}
	}
	// With the fronts off their settings are not used, so not checked.
	if _, err := Load(nil, []string{"MDBROKER_SCHEDULER_STORE=/x"}); err != nil {
		t.Errorf("fronts off: %v", err)
	}
}
