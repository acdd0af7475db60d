package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strings"

	"github.com/BurntSushi/toml"
)

// ErrHelp is returned by Load when the arguments ask for help (-h, --help).
var ErrHelp = flag.ErrHelp

// Loaded is the result of Load.
type Loaded struct {
	Config Config
	// File is the config file read, or "" if none.
	File string
	// PrintConfig is set by --print-config: print the configuration and exit.
	PrintConfig bool
	// Sources says where each setting's value came from, by setting name.
	Sources map[string]Source
}

// MaxProcs returns what runtime.GOMAXPROCS should be set to, or 0 to leave
// it alone: procs, unless it was not set and environ has GOMAXPROCS.
func (l *Loaded) MaxProcs(environ []string) int {
	if l.Sources["procs"].Kind == "default" {
		for _, kv := range environ {
			if strings.HasPrefix(kv, "GOMAXPROCS=") {
				return 0
			}
		}
	}
	return l.Config.Procs
}

// Errors is the list of problems Load found, one per bad flag, variable,
// key or value. Error joins them with newlines.
type Errors []error

// Error returns the problems, one per line.
func (e Errors) Error() string {
	msgs := make([]string, len(e))
	for i, err := range e {
		msgs[i] = err.Error()
	}
	return strings.Join(msgs, "\n")
}

// Unwrap returns the individual errors.
func (e Errors) Unwrap() []error { return e }

// flagValue records a flag's raw values after checking them, so that flags
// can be applied after the file and the environment.
type flagValue struct {
	s      *setting
	values []any // Parsed values, in order; a list setting appends.
}

func (f *flagValue) String() string { return "" }

func (f *flagValue) Set(text string) error {
	v, err := f.s.parseText(text)
	if err != nil {
		return err
	}
	f.values = append(f.values, v)
	return nil
}

func (f *flagValue) IsBoolFlag() bool { return f.s.kind == kBool }

// Load builds the effective configuration from args (without the program
// name) and environ (as os.Environ returns it). The config file is the one
// named by --config, else by MDBROKER_CONFIG; there is none by default. It
// returns ErrHelp if args ask for help, a one-line error for a bad flag, and
// Errors listing every bad variable, key and value otherwise.
func Load(args []string, environ []string) (*Loaded, error) {
	fs := flag.NewFlagSet("mdbroker", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	values := make([]*flagValue, len(settings))
	for i, s := range settings {
		values[i] = &flagValue{s: s}
		fs.Var(values[i], s.name, s.usage)
	}
	configFile := fs.String("config", "", "")
	printConfig := fs.Bool("print-config", false, "")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, ErrHelp
		}
		return nil, flagError(err)
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q (flags start with --)", fs.Arg(0))
	}
	l := &Loaded{Config: Defaults(), PrintConfig: *printConfig, Sources: make(map[string]Source)}
	for _, s := range settings {
		l.Sources[s.name] = Source{Kind: "default"}
	}
	env := envMap(environ)
	l.File = *configFile
	if l.File == "" {
		l.File = env[EnvConfigFile]
	}
	var errs Errors
	if l.File != "" {
		errs = append(errs, l.loadFile(l.File)...)
	}
	errs = append(errs, l.loadEnv(env)...)
	for _, fv := range values {
		if len(fv.values) == 0 {
			continue
		}
		v := fv.values[len(fv.values)-1]
		if fv.s.kind == kList {
			var all []string
			for _, e := range fv.values {
				all = append(all, e.([]string)...)
			}
			v = all
		}
		fv.s.set(&l.Config, v)
		l.Sources[fv.s.name] = Source{Kind: "flag", Name: "--" + fv.s.name}
	}
	errs = append(errs, l.Config.crossCheck()...)
	if len(errs) > 0 {
		return nil, errs
	}
	// A backstop: the broker's own validation must agree with ours.
	if err := l.Config.Broker(nil).Validate(); err != nil {
		return nil, Explain(err)
	}
	return l, nil
}

// crossCheck reports the problems no single setting shows: settings that
// exclude or need one another.
func (c Config) crossCheck() Errors {
	var errs Errors
	if c.TitanicDir != "" && c.TitanicStore != "" {
		errs = append(errs, errors.New("titanic-dir and titanic-store cannot both be set: choose one Titanic store"))
	}
	// Only with the eMQP fronts on: off, their settings are not used.
	if c.EMQPFrontend != "" || c.EMQPBackend != "" {
		if c.EMQPPubIn != "" && c.EMQPPubOut == "" {
			errs = append(errs, errors.New("emqp-pub-in needs emqp-pub-out: where subscribers receive what is published"))
		}
		if c.SchedulerStore != "" && !c.Scheduler {
			errs = append(errs, errors.New("scheduler-store needs scheduler = true: only the built-in scheduler keeps schedules"))
		}
	}
	return errs
}

var undefinedFlag = regexp.MustCompile(`^flag provided but not defined: -+(.+)$`)

// flagError rewrites the flag package's errors to say --flag and to suggest
// the nearest flag for an unknown one.
func flagError(err error) error {
	msg := strings.Replace(err.Error(), "for flag -", "for flag --", 1)
	if m := undefinedFlag.FindStringSubmatch(msg); m != nil {
		msg = fmt.Sprintf("unknown flag --%s", m[1])
		if s := suggest(m[1], append(names(), "config", "print-config", "help")); s != "" {
			msg += fmt.Sprintf(" (did you mean --%s?)", s)
		}
	}
	return errors.New(msg)
}

// envMap returns the MDBROKER_* variables of environ.
func envMap(environ []string) map[string]string {
	env := make(map[string]string)
	for _, kv := range environ {
		k, v, ok := strings.Cut(kv, "=")
		if ok && strings.HasPrefix(k, EnvPrefix) {
			env[k] = v
		}
	}
	return env
}

func (l *Loaded) loadEnv(env map[string]string) Errors {
	byEnv := make(map[string]*setting, len(settings))
	valid := []string{EnvConfigFile}
	for _, s := range settings {
		byEnv[EnvName(s.name)] = s
		valid = append(valid, EnvName(s.name))
	}
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var errs Errors
	for _, k := range keys {
		if k == EnvConfigFile {
			continue
		}
		s := byEnv[k]
		if s == nil {
			msg := fmt.Sprintf("unknown environment variable %s", k)
			if sug := suggest(k, valid); sug != "" {
				msg += fmt.Sprintf(" (did you mean %s?)", sug)
			}
			errs = append(errs, errors.New(msg))
			continue
		}
		v, err := s.parseText(env[k])
		if err != nil {
			errs = append(errs, fmt.Errorf("invalid value %q for %s: %v", env[k], k, err))
			continue
		}
		s.set(&l.Config, v)
		l.Sources[s.name] = Source{Kind: "env", Name: k}
	}
	return errs
}

func (l *Loaded) loadFile(path string) Errors {
	data, err := os.ReadFile(path)
	if err != nil {
		return Errors{fmt.Errorf("config file: %w", err)}
	}
	var doc map[string]any
	md, err := toml.Decode(string(data), &doc)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return Errors{fmt.Errorf("%s:%d: %s", path, pe.Position.Line, pe.Message)}
		}
		return Errors{fmt.Errorf("%s: %v", path, err)}
	}
	// Report problems in the order of the file.
	var keys []string
	seen := make(map[string]bool)
	for _, k := range md.Keys() {
		if top := k[0]; !seen[top] {
			seen[top] = true
			keys = append(keys, top)
		}
	}
	lines := strings.Split(string(data), "\n")
	var errs Errors
	for _, k := range keys {
		where := path
		if n := keyLine(lines, k); n > 0 {
			where = fmt.Sprintf("%s:%d", path, n)
		}
		s := lookup(k)
		if s == nil {
			msg := fmt.Sprintf("%s: unknown key %q", where, k)
			if k == "config" {
				msg += " (the config file cannot name another)"
			} else if sug := suggest(k, names()); sug != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", sug)
			}
			errs = append(errs, errors.New(msg))
			continue
		}
		v, err := s.parseTOML(doc[k])
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: invalid value for %s: %v", where, k, err))
			continue
		}
		s.set(&l.Config, v)
		l.Sources[s.name] = Source{Kind: "file", Name: path}
	}
	return errs
}

// keyLine returns the 1-based line on which key is defined at the top level
// (or as a table header), or 0 if it cannot tell. The schema is flat, so a
// line scan is enough to point at the right place.
func keyLine(lines []string, key string) int {
	q := regexp.QuoteMeta(key)
	re := regexp.MustCompile(`^\s*(\[\[?\s*)?("` + q + `"|'` + q + `'|` + q + `)\s*[=.\]]`)
	for i, line := range lines {
		if re.MatchString(line) {
			return i + 1
		}
	}
	return 0
}

// Usage writes the usage text: every flag with its type, default and
// environment variable.
func Usage(w io.Writer) {
	fmt.Fprintf(w, "Usage: mdbroker [flags]\n\nA Majordomo (7/MDP, 18/MDP, 8/MMI) broker.\n\n")
	fmt.Fprintf(w, "Settings come from flags, then %s* environment variables, then the\nconfig file, then defaults. Each flag --name is the file key name and the\nvariable %s.\n\nFlags:\n", EnvPrefix, EnvName("name"))
	fmt.Fprintf(w, "  --config FILE\n\tTOML config file (env %s)\n", EnvConfigFile)
	fmt.Fprintf(w, "  --print-config\n\tprint the effective configuration as TOML and exit\n")
	for _, s := range Settings() {
		arg := ""
		if s.Metavar != "" {
			arg = " " + s.Metavar
		}
		def := s.Default
		if def == "" {
			def = `""`
		}
		fmt.Fprintf(w, "  --%s%s\n\t%s (default %s; env %s)\n", s.Name, arg, s.Usage, def, EnvName(s.Name))
	}
}
