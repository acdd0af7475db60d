package config

import (
	"fmt"
	"io"
	"strings"
)

// WriteTOML writes c as a TOML config file that Load reads back to the same
// configuration: every setting with its usage as a comment and, if sources
// is not nil, where its value came from.
func WriteTOML(w io.Writer, c Config, sources map[string]Source) error {
	var b strings.Builder
	b.WriteString("# mdbroker configuration. Precedence: flags > MDBROKER_* environment > this file > defaults.\n")
	for _, s := range settings {
		fmt.Fprintf(&b, "\n# %s", s.usage)
		if !s.reload {
			b.WriteString(" (restart to change)")
		}
		b.WriteString(".\n")
		fmt.Fprintf(&b, "%s = %s", s.name, s.toml(&c))
		if src, ok := sources[s.name]; ok {
			fmt.Fprintf(&b, "  # %s", src)
		}
		b.WriteString("\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// Format returns the value of the named setting in c as a config file
// would spell it, without quotes (lists are comma-separated), or "" for an
// unknown name.
func Format(c Config, name string) string {
	if s := lookup(name); s != nil {
		return s.format(&c)
	}
	return ""
}
