package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/edgefaas/edgefaas/errdefs"
)

// The configuration file (--config, /etc/edgefaas/agent.conf under
// systemd) is "key = value" lines, the keys being the long flag names. It
// is deliberately not YAML: the format needs no parser dependency in the
// agent's firmware image, and every setting is a flag anyway.
//
//	# comments fill whole lines; blank lines are ignored
//	state-dir = /var/lib/edgefaas
//	retention = 72h
//
// A value is the rest of the line with surrounding blanks removed, taken
// as written (no quoting, no trailing comments). Unknown keys, a key given
// twice, a missing "=" or an empty value are errors naming the line.

// notInConfig are flags a configuration file cannot set.
var notInConfig = map[string]bool{"config": true, "version": true}

// setting is one line of a configuration file.
type setting struct {
	line       int
	key, value string
}

// applyConfigFile sets the flags of fs from the file at path, except those
// given on the command line, which win.
func applyConfigFile(fs *flag.FlagSet, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	return applyConfig(fs, path, f)
}

// applyConfig sets the flags of fs from the configuration read from r
// (name is for errors), except those the command line set.
func applyConfig(fs *flag.FlagSet, name string, r io.Reader) error {
	settings, err := parseConfig(name, r, func(key string) bool {
		return fs.Lookup(key) != nil && !notInConfig[key]
	})
	if err != nil {
		return err
	}
	onCommandLine := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { onCommandLine[f.Name] = true })
	for _, s := range settings {
		if onCommandLine[s.key] {
			continue
		}
		if err := fs.Set(s.key, s.value); err != nil {
			return fmt.Errorf("%s:%d: %s: bad value %q%s: %w", name, s.line, s.key, s.value, want(fs.Lookup(s.key)), errdefs.ErrInvalid)
		}
	}
	return nil
}

// parseConfig reads the settings of a configuration file; known says
// which keys exist.
func parseConfig(name string, r io.Reader, known func(key string) bool) ([]setting, error) {
	var out []setting
	first := map[string]int{}
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		bad := func(format string, args ...any) error {
			return fmt.Errorf("%s:%d: %s: %w", name, n, fmt.Sprintf(format, args...), errdefs.ErrInvalid)
		}
		key, value, ok := strings.Cut(line, "=")
		key, value = strings.TrimSpace(key), strings.TrimSpace(value)
		switch {
		case !ok:
			return nil, bad("want key = value, got %q", line)
		case key == "":
			return nil, bad("no key before \"=\"")
		case !known(key):
			return nil, bad("unknown key %q", key)
		case value == "":
			return nil, bad("%s: empty value", key)
		case first[key] != 0:
			return nil, bad("%s set again (first on line %d)", key, first[key])
		}
		first[key] = n
		out = append(out, setting{line: n, key: key, value: value})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return out, nil
}

// want says what a flag's values look like; the flag package's own
// errors only say "parse error".
func want(f *flag.Flag) string {
	g, ok := f.Value.(flag.Getter)
	if !ok {
		return ""
	}
	switch g.Get().(type) {
	case bool:
		return " (want true or false)"
	case time.Duration:
		return " (want a duration like 72h or 30m)"
	case int64:
		return " (want a size like 512Mi or 4Gi)"
	}
	return ""
}
