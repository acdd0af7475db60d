package config

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/majordomo-go/majordomo/broker"
)

func writeFile(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "mdbroker.toml")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDefaults(t *testing.T) {
	l, err := Load(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(l.Config, Defaults()) {
		t.Fatalf("got %+v, want defaults", l.Config)
	}
	// The defaults are the broker's: no setting silently differs.
	got := l.Config.Broker(nil)
	want := broker.Config{Endpoints: []string{broker.DefaultEndpoint}, HeartbeatInterval: broker.DefaultHeartbeatInterval,
		HeartbeatLiveness: broker.DefaultHeartbeatLiveness, RequestTimeout: broker.DefaultRequestTimeout,
		MaxQueue: broker.DefaultMaxQueue, MaxQueuedBytes: broker.DefaultMaxQueuedBytes, MaxServices: broker.DefaultMaxServices, MaxServiceName: broker.DefaultMaxServiceName,
		ServiceTTL: broker.DefaultServiceTTL, MaxAttempts: broker.DefaultMaxAttempts, MaxFrames: broker.DefaultMaxFrames,
		MaxFrameSize: broker.DefaultMaxFrameSize, MaxClientInFlight: broker.DefaultMaxClientInFlight}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("broker config %+v, want %+v", got, want)
	}
	for name, src := range l.Sources {
		if src.Kind != "default" {
			t.Errorf("%s from %v", name, src)
		}
	}
}

// TestPrecedence sets each layer for overlapping settings and checks that
// flags beat the environment, which beats the file, which beats defaults.
func TestPrecedence(t *testing.T) {
	file := writeFile(t, `
endpoint = ["tcp://127.0.0.1:7001", "ipc:///tmp/x"]
heartbeat = "1s"
liveness = 5
max-queue = 11
max-queued-bytes = "1MiB"
log-level = "warn"
http = "127.0.0.1:9000"
`)
	env := []string{
		"MDBROKER_CONFIG=" + file,
		"MDBROKER_LIVENESS=6",
		"MDBROKER_MAX_QUEUE=12",
		"MDBROKER_DRAIN_TIMEOUT=3s",
		"MDBROKER_ENDPOINT=tcp://127.0.0.1:7002, tcp://127.0.0.1:7003",
		"PATH=/bin", // Not ours: ignored.
	}
	l, err := Load([]string{"--max-queue", "13", "--endpoint", "tcp://127.0.0.1:7004", "--no-redelivery"}, env)
	if err != nil {
		t.Fatal(err)
	}
	c := l.Config
	check := func(name string, got, want any, src string) {
		t.Helper()
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
		if s := l.Sources[name].Kind; s != src {
			t.Errorf("%s from %s, want %s", name, s, src)
		}
	}
	check("heartbeat", c.Heartbeat, time.Second, "file")
	check("liveness", c.Liveness, 6, "env")
	check("max-queue", c.MaxQueue, 13, "flag")
	check("max-queued-bytes", c.MaxQueuedBytes, int64(1<<20), "file")
	check("log-level", c.LogLevel, slog.LevelWarn, "file")
	check("http", c.HTTP, "127.0.0.1:9000", "file")
	check("drain-timeout", c.DrainTimeout, 3*time.Second, "env")
	check("endpoint", c.Endpoints, []string{"tcp://127.0.0.1:7004"}, "flag")
	check("no-redelivery", c.NoRedelivery, true, "flag")
	check("max-services", c.MaxServices, broker.DefaultMaxServices, "default")
	if l.File != file {
		t.Errorf("file %q", l.File)
	}
	// --config beats MDBROKER_CONFIG; repeated --endpoint accumulates.
	other := writeFile(t, "max-queue = 99\n")
	l, err = Load([]string{"--config", other, "--endpoint", "tcp://a:1", "--endpoint", "tcp://b:2"}, env)
	if err != nil {
		t.Fatal(err)
	}
	if l.File != other || l.Config.MaxQueue != 12 || l.Config.Liveness != 6 {
		t.Errorf("--config: file %s max-queue %d liveness %d", l.File, l.Config.MaxQueue, l.Config.Liveness)
	}
	if !reflect.DeepEqual(l.Config.Endpoints, []string{"tcp://a:1", "tcp://b:2"}) {
		t.Errorf("endpoints %v", l.Config.Endpoints)
	}
	// The file's endpoint list, with the environment's removed.
	l, err = Load(nil, []string{"MDBROKER_CONFIG=" + file})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(l.Config.Endpoints, []string{"tcp://127.0.0.1:7001", "ipc:///tmp/x"}) {
		t.Errorf("endpoints %v", l.Config.Endpoints)
	}
}

func TestUnknownKeysSuggest(t *testing.T) {
	file := writeFile(t, `# comment
heartbeat = "1s"
max_queue = 10
hearbeat = "2s"
completely-unrelated = 1
config = "x.toml"

[http]
listen = ":8080"
`)
	_, err := Load([]string{"--config", file}, nil)
	var errs Errors
	if !errors.As(err, &errs) {
		t.Fatalf("got %v", err)
	}
	want := []string{
		file + `:3: unknown key "max_queue" (did you mean "max-queue"?)`,
		file + `:4: unknown key "hearbeat" (did you mean "heartbeat"?)`,
		file + `:5: unknown key "completely-unrelated"`,
		file + `:6: unknown key "config" (the config file cannot name another)`,
		file + `:8: invalid value for http: want a string, not a TOML table`,
	}
	if len(errs) != len(want) {
		t.Fatalf("got %d errors:\n%v", len(errs), err)
	}
	for i := range want {
		if errs[i].Error() != want[i] {
			t.Errorf("error %d:\n got %s\nwant %s", i, errs[i], want[i])
		}
	}

	_, err = Load(nil, []string{"MDBROKER_MAXQUEUE=1", "MDBROKER_LOGLEVEL=debug", "MDBROKER_NOPE_NOT_AT_ALL=1"})
	for _, w := range []string{
		"unknown environment variable MDBROKER_MAXQUEUE (did you mean MDBROKER_MAX_QUEUE?)",
		"unknown environment variable MDBROKER_LOGLEVEL (did you mean MDBROKER_LOG_LEVEL?)",
		"unknown environment variable MDBROKER_NOPE_NOT_AT_ALL\n",
	} {
		if !strings.Contains(err.Error()+"\n", w) {
			t.Errorf("missing %q in:\n%v", w, err)
		}
	}

	_, err = Load([]string{"--max-qeueu=3"}, nil)
	if err == nil || err.Error() != "unknown flag --max-qeueu=3 (did you mean --max-queue?)" && err.Error() != "unknown flag --max-qeueu (did you mean --max-queue?)" {
		t.Errorf("flag: %v", err)
	}
}

// TestBadValues checks one error per bad value, each naming its source.
func TestBadValues(t *testing.T) {
	file := writeFile(t, `heartbeat = 5
liveness = 0
max-queued-bytes = "lots"
endpoint = ["udp://x"]
no-redelivery = "yes"
log-level = "loud"
http = "nohost"
drain-timeout = "-1s"
max-frames = 2
max-frame-size = "1KiB"
metrics-max-services = 1.5
`)
	_, err := Load([]string{"--config", file}, []string{"MDBROKER_HEARTBEAT=fast", "MDBROKER_MAX_QUEUE=0"})
	var errs Errors
	if !errors.As(err, &errs) {
		t.Fatalf("got %v", err)
	}
	want := []string{
		`:1: invalid value for heartbeat: want a duration string such as "2.5s", not a TOML integer`,
		`:2: invalid value for liveness: must be positive`,
		`:3: invalid value for max-queued-bytes: want a byte count`,
		`:4: invalid value for endpoint: zmtp: bad endpoint "udp://x": unknown transport "udp" (tcp, ipc and inproc are supported)`,
		`:5: invalid value for no-redelivery: want true or false, not a TOML string`,
		`:6: invalid value for log-level: want debug, info, warn or error`,
		`:7: invalid value for http: want host:port`,
		`:8: invalid value for drain-timeout: must not be negative`,
		`:9: invalid value for max-frames: must be at least 4`,
		``, // max-frame-size 1KiB is fine.
		`:11: invalid value for metrics-max-services: want an integer, not a TOML float`,
		`invalid value "fast" for MDBROKER_HEARTBEAT: want a duration`,
		`invalid value "0" for MDBROKER_MAX_QUEUE: must be positive`,
	}
	var wantN int
	for _, w := range want {
		if w == "" {
			continue
		}
		wantN++
		found := false
		for _, e := range errs {
			found = found || strings.Contains(e.Error(), w)
		}
		if !found {
			t.Errorf("missing %q", w)
		}
	}
	if len(errs) != wantN {
		t.Errorf("got %d errors, want %d:\n%v", len(errs), wantN, err)
	}

	for _, args := range [][]string{{"--heartbeat=abc"}, {"--liveness=0"}, {"--endpoint=udp://x"},
		{"--log-level=loud"}, {"--max-queued-bytes=-1"}, {"--http=x"}, {"--drain-timeout=-1s"}} {
		_, err := Load(args, nil)
		name := strings.TrimPrefix(strings.SplitN(args[0], "=", 2)[0], "--")
		if err == nil || strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), "--"+name) {
			t.Errorf("%v: %v", args, err)
		}
	}
	if _, err := Load([]string{"--config", filepath.Join(t.TempDir(), "missing.toml")}, nil); err == nil ||
		!strings.Contains(err.Error(), "missing.toml") {
		t.Errorf("missing file: %v", err)
	}
	if _, err := Load(nil, []string{"MDBROKER_CONFIG=" + writeFile(t, "heartbeat = \n")}); err == nil ||
		!strings.Contains(err.Error(), "mdbroker.toml:1:") {
		t.Errorf("syntax error: %v", err)
	}
	if _, err := Load([]string{"--help"}, nil); !errors.Is(err, ErrHelp) {
		t.Errorf("--help: %v", err)
	}
}

// TestPrintConfigRoundTrip writes the effective configuration and reads it
// back as a file: the same configuration results.
func TestPrintConfigRoundTrip(t *testing.T) {
	l, err := Load([]string{"--heartbeat=750ms", "--max-queued-bytes=3000", "--max-frame-size=2MiB",
		"--endpoint=tcp://127.0.0.1:1", "--endpoint=ipc:///tmp/y", "--log-level=debug", "--log-json",
		"--http=:8080", "--no-redelivery"}, []string{"MDBROKER_SERVICE_TTL=90s"})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := WriteTOML(&out, l.Config, l.Sources); err != nil {
		t.Fatal(err)
	}
	text := out.String()
	for _, w := range []string{`heartbeat = "750ms"  # flag --heartbeat`, `service-ttl = "1m30s"  # env MDBROKER_SERVICE_TTL`,
		`max-frame-size = "2MiB"`, `max-queued-bytes = 3000`, `liveness = 3  # default`,
		`endpoint = ["tcp://127.0.0.1:1", "ipc:///tmp/y"]`, `log-level = "debug"`} {
		if !strings.Contains(text, w) {
			t.Errorf("missing %q in\n%s", w, text)
		}
	}
	l2, err := Load([]string{"--config", writeFile(t, text)}, nil)
	if err != nil {
		t.Fatalf("%v\n%s", err, text)
	}
	if !reflect.DeepEqual(l.Config, l2.Config) {
		t.Fatalf("round trip:\n%+v\n%+v", l.Config, l2.Config)
	}
}

// TestSampleConfig checks that deploy/mdbroker.toml loads and sets only
// the defaults it claims, so the sample cannot rot.
func TestSampleConfig(t *testing.T) {
	l, err := Load([]string{"--config", "../../deploy/mdbroker.toml"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if l.Config.HTTP == "" {
		t.Errorf("sample config should enable the HTTP server")
	}
	for _, s := range settings {
		if l.Sources[s.name].Kind != "file" {
			t.Errorf("sample config lacks %s", s.name)
		}
	}
}

func TestSizes(t *testing.T) {
	for in, want := range map[string]int64{"1": 1, "64KiB": 64 << 10, "64 MiB": 64 << 20, "2GiB": 2 << 30,
		"5KB": 5000, "3MB": 3e6, "7B": 7, "1TiB": 1 << 40} {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "x", "1.5MiB", "MiB", "99999999999TiB"} {
		if _, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q) accepted", in)
		}
	}
	for n, want := range map[int64]string{1000: "1000", 1024: "1KiB", 256 << 20: "256MiB", 0: "0", 3 << 30: "3GiB"} {
		if got := FormatSize(n); got != want {
			t.Errorf("FormatSize(%d) = %s", n, got)
		}
	}
	for d, want := range map[time.Duration]string{time.Minute: "1m", time.Hour: "1h", 90 * time.Second: "1m30s",
		2500 * time.Millisecond: "2.5s", 0: "0s"} {
		if got := FormatDuration(d); got != want {
			t.Errorf("FormatDuration(%v) = %s", d, got)
		}
	}
}

func TestUsageListsEverySetting(t *testing.T) {
	var b bytes.Buffer
	Usage(&b)
	for _, s := range Settings() {
		if !strings.Contains(b.String(), "--"+s.Name) || !strings.Contains(b.String(), EnvName(s.Name)) {
			t.Errorf("usage lacks %s", s.Name)
		}
	}
}

// Address lists show ADDRESS, endpoint lists ENDPOINT (issue 14).
func TestUsageMetavars(t *testing.T) {
	var b bytes.Buffer
	Usage(&b)
	for _, want := range []string{"--allow-ip ADDRESS\n", "--deny-ip ADDRESS\n", "--endpoint ENDPOINT\n",
		"--plain-endpoint ENDPOINT\n", "--heartbeat DURATION\n", "--emqp-ignore-admin-disconnect\n"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("usage lacks %q", want)
		}
	}
}

// The eMQP bounds the README documents are settings, and reach emqp.Config.
func TestEMQPBounds(t *testing.T) {
	l, err := Load([]string{"--emqp-frontend=tcp://127.0.0.1:*", "--emqp-backend=tcp://127.0.0.1:*",
		"--emqp-max-queued-bytes=1MiB", "--emqp-max-attempts=5", "--emqp-ignore-admin-disconnect"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	e, ok := l.Config.EMQP(nil)
	if !ok || e.MaxQueuedBytes != 1<<20 || e.MaxAttempts != 5 || !e.IgnoreAdminDisconnect {
		t.Fatalf("emqp config %+v", e)
	}
	if _, err := Load([]string{"--emqp-max-attempts=0"}, nil); err == nil {
		t.Fatal("emqp-max-attempts=0 accepted")
	}
}

func TestMaxProcs(t *testing.T) {
	cases := []struct {
		args, env []string
		want      int
	}{
		{nil, nil, DefaultProcs},
		{nil, []string{"GOMAXPROCS=4"}, 0}, // Unset: the runtime's variable wins.
		{[]string{"--procs", "3"}, []string{"GOMAXPROCS=4"}, 3},
		{nil, []string{"MDBROKER_PROCS=2", "GOMAXPROCS=4"}, 2},
		{[]string{"--procs", "0"}, nil, 0},
	}
	for _, c := range cases {
		l, err := Load(c.args, c.env)
		if err != nil {
			t.Fatalf("%v %v: %v", c.args, c.env, err)
		}
		if got := l.MaxProcs(c.env); got != c.want {
			t.Errorf("%v %v: MaxProcs %d, want %d", c.args, c.env, got, c.want)
		}
	}
	if _, err := Load([]string{"--procs", "-1"}, nil); err == nil || !strings.Contains(err.Error(), "procs") {
		t.Fatalf("--procs -1: %v", err)
	}
}

// The built-in Titanic keeps the broker running through its commits when
// it syncs a file (titanic-dir), not when PostgreSQL stores for it.
func TestTitanicSpareProc(t *testing.T) {
	for _, c := range []struct {
		cfg   Config
		on    bool
		spare bool
	}{
		{Config{}, false, false},
		{Config{TitanicDir: "/var/lib/titanic"}, true, true},
		{Config{TitanicStore: "postgres://titanic@db/titanic"}, true, false},
	} {
		tc, on := c.cfg.Titanic("tcp://127.0.0.1:5555", nil)
		if on != c.on || tc.SpareProc != c.spare {
			t.Errorf("%+v: on %v, SpareProc %v; want %v, %v", c.cfg, on, tc.SpareProc, c.on, c.spare)
		}
	}
}
