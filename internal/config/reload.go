package config

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/majordomo-go/majordomo/broker"
	"github.com/majordomo-go/majordomo/emqp"
)

// Reload compares the running configuration with next, as a reload read
// it, setting by setting, and lets each setting's reload bit in the table
// decide: a setting that can change at run time takes next's value and is
// listed in changed as "name: old -> new"; one that needs a restart keeps
// its running value and is listed by name in restart. It returns the
// configuration to run with from now on. No list other than the table says
// what a reload applies.
func Reload(running, next Config) (apply Config, changed, restart []string) {
	apply = next
	for _, s := range settings {
		was, now := s.format(&running), s.format(&next)
		if was == now {
			continue
		}
		if s.reload {
			changed = append(changed, fmt.Sprintf("%s: %s -> %s", s.name, was, now))
			continue
		}
		restart = append(restart, s.name)
		s.set(&apply, s.value(&running))
	}
	return apply, changed, restart
}

// value returns the setting's value in c, of the type set takes.
func (s *setting) value(c *Config) any {
	switch p := s.field(c).(type) {
	case *time.Duration:
		return *p
	case *int:
		return *p
	case *int64:
		return *p
	case *bool:
		return *p
	case *string:
		return *p
	case *[]string:
		return *p
	case *slog.Level:
		return *p
	}
	return nil
}

// Explain rewrites an error of the broker or eMQP library that names one
// of its Config fields (a *broker.ConfigError or *emqp.ConfigError) to
// name the setting that field comes from, so that the operator reads the
// flag, variable and key they know. Any other error, and a field no
// setting sets, is returned as it is. The result wraps err.
func Explain(err error) error {
	var (
		lib, field, reason string
		value              any
		base               error
	)
	var be *broker.ConfigError
	var ee *emqp.ConfigError
	switch {
	case errors.As(err, &be):
		lib, field, value, reason, base = "broker", be.Field, be.Value, be.Reason, broker.ErrConfig
	case errors.As(err, &ee):
		lib, field, value, reason, base = "emqp", ee.Field, ee.Value, ee.Reason, emqp.ErrConfig
	default:
		return err
	}
	name := settingOf(lib + "." + field)
	if name == "" {
		return err
	}
	return &settingError{name: name, value: value, reason: reason, base: base, err: err}
}

// settingOf returns the name of the setting that becomes the library field
// (as "broker.MaxQueue"), or "".
func settingOf(libField string) string {
	for _, s := range settings {
		for _, f := range s.lib {
			if f == libField {
				return s.name
			}
		}
	}
	return ""
}

// settingError is a library's configuration error told in settings.
type settingError struct {
	name   string
	value  any
	reason string
	base   error // The library's ErrConfig, for its prefix.
	err    error // The library's error.
}

func (e *settingError) Error() string {
	if e.value == nil {
		return fmt.Sprintf("%v: %s: %s", e.base, e.name, e.reason)
	}
	return fmt.Sprintf("%v: %s=%v: %s", e.base, e.name, e.value, e.reason)
}

func (e *settingError) Unwrap() error { return e.err }
