package main

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgefaas/edgefaas/errdefs"
	"github.com/edgefaas/edgefaas/systemd"
)

func writeConfig(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "agent.conf")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestConfigFile(t *testing.T) {
	tests := []struct {
		name    string
		file    string
		args    []string // besides --config
		check   func(options) string
		wantErr string // a substring; "" for success
	}{
		{
			name: "every key",
			file: `# a comment
state-dir = /data/edgefaas
api-socket=/run/x.sock
	listen =   127.0.0.1:9090   

cgroup-parent = edgefaas-test
retention = 72h
debug = true
`,
			check: func(o options) string {
				c := o.cfg
				if c.StateDir != "/data/edgefaas" || c.APISocket != "/run/x.sock" || c.Listen != "127.0.0.1:9090" ||
					c.CgroupParent != "edgefaas-test" || c.Retention != 72*time.Hour || !o.debug {
					return "not every setting was applied"
				}
				return ""
			},
		},
		{
			name: "cloud keys",
			file: "cloud = https://cloud.example:8443\nenroll = enr_abc\ncloud-max-backoff = 2m\ncloud-batch = 200\n",
			check: func(o options) string {
				c := o.cfg
				if c.CloudURL != "https://cloud.example:8443" || c.CloudEnroll != "enr_abc" ||
					c.CloudMaxBackoff != 2*time.Minute || c.CloudBatch != 200 {
					return "cloud settings not applied"
				}
				return ""
			},
		},
		{
			name: "the command line wins",
			file: "listen = :9090\nretention = 72h\ndebug = true\n",
			args: []string{"--listen", "127.0.0.1:0", "--debug=false"},
			check: func(o options) string {
				if o.cfg.Listen != "127.0.0.1:0" || o.debug || o.cfg.Retention != 72*time.Hour {
					return "command-line flags were overridden, or the file's retention not applied"
				}
				return ""
			},
		},
		{
			name: "flag before --config wins too",
			file: "state-dir = /from/file\n",
			args: []string{"--state-dir", "/from/flag"},
			check: func(o options) string {
				if o.cfg.StateDir != "/from/flag" {
					return "state-dir from the file replaced the flag's"
				}
				return ""
			},
		},
		{
			name: "empty file keeps the defaults",
			file: "\n# nothing\n",
			check: func(o options) string {
				if o.cfg.StateDir != "/var/lib/edgefaas" || o.cfg.Listen != ":8080" || o.cfg.Retention != 7*24*time.Hour {
					return "defaults changed"
				}
				return ""
			},
		},
		{name: "value with =", file: "api-socket = /run/a=b.sock\n",
			check: func(o options) string {
				if o.cfg.APISocket != "/run/a=b.sock" {
					return "value cut at the second ="
				}
				return ""
			}},
		{name: "unknown key", file: "# c\nlisten = :1\nstate_dir = /x\n", wantErr: `:3: unknown key "state_dir"`},
		{name: "not a flag of the file", file: "version = true\n", wantErr: `:1: unknown key "version"`},
		{name: "config in config", file: "config = /etc/other.conf\n", wantErr: `:1: unknown key "config"`},
		{name: "no equals sign", file: "debug\n", wantErr: `:1: want key = value, got "debug"`},
		{name: "no key", file: "= 1\n", wantErr: `:1: no key before "="`},
		{name: "empty value", file: "listen =\n", wantErr: ":1: listen: empty value"},
		{name: "twice", file: "debug = true\n\ndebug = false\n", wantErr: ":3: debug set again (first on line 1)"},
		{name: "bad duration", file: "retention = a week\n", wantErr: `:1: retention: bad value "a week" (want a duration like 72h or 30m)`},
		{name: "bad bool", file: "\n\ndebug = yes please\n", wantErr: `:3: debug: bad value "yes please" (want true or false)`},
		{name: "trailing comment is part of the value", file: "retention = 72h # three days\n", wantErr: `:1: retention: bad value "72h # three days"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeConfig(t, tt.file)
			args := append([]string{"--config", path}, tt.args...)
			if tt.name == "flag before --config wins too" {
				args = append(tt.args, "--config", path)
			}
			o, err := parseFlags(args)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), path) {
					t.Fatalf("got %v, want an error naming %s and containing %q", err, path, tt.wantErr)
				}
				if !errors.Is(err, errdefs.ErrInvalid) {
					t.Errorf("error %v is not ErrInvalid", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if msg := tt.check(o); msg != "" {
				t.Errorf("%s: got %+v", msg, o)
			}
		})
	}
}

func TestConfigFileMissing(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "absent.conf")
	if _, err := parseFlags([]string{"--config", missing}); err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("parseFlags with a missing config = %v, want an error naming %s", err, missing)
	}
}

// TestDefaultConfigMatchesFlags reads the configuration that
// `edgefaasd install` writes: as written it changes nothing, and with its
// commented-out settings enabled, each is a known key set to that flag's
// default.
func TestDefaultConfigMatchesFlags(t *testing.T) {
	def := systemd.DefaultConfig()
	got, err := parseFlags([]string{"--config", writeConfig(t, def)})
	if err != nil {
		t.Fatalf("the default configuration does not parse: %v", err)
	}
	plain, _ := parseFlags(nil)
	if got != plain {
		t.Errorf("the default configuration changes settings: %+v, want %+v", got, plain)
	}

	var enabled []string
	keys := map[string]bool{}
	for _, line := range strings.Split(def, "\n") {
		s, ok := strings.CutPrefix(line, "#")
		switch {
		case ok && strings.Contains(s, " = ") && !strings.HasPrefix(s, " "):
			enabled = append(enabled, s)
			key, _, _ := strings.Cut(s, " ")
			keys[key] = true
		case ok && strings.HasSuffix(s, " =") && !strings.HasPrefix(s, " "):
			// "#cloud =": a setting without a default, shown empty.
			keys[strings.TrimSuffix(s, " =")] = true
		}
	}
	withAll, err := parseFlags([]string{"--config", writeConfig(t, strings.Join(enabled, "\n"))})
	if err != nil {
		t.Fatalf("the default configuration's settings, enabled: %v", err)
	}
	if withAll != plain {
		t.Errorf("a setting shown in the default configuration is not the flag's default: %+v, want %+v", withAll, plain)
	}
	// Every flag a file may set is shown.
	agentFlags(&options{}, new(string)).VisitAll(func(f *flag.Flag) {
		if !notInConfig[f.Name] && !keys[f.Name] {
			t.Errorf("the default configuration does not show %q", f.Name)
		}
	})
}

// TestShippedConfigsParse reads the configuration file the project ships
// (`edgefaasd install` writes it, and the Debian package carries the same
// file, systemd/agent.conf, as its conffile). A key renamed here without it
// would stop the agent at its next start.
func TestShippedConfigsParse(t *testing.T) {
	files := map[string]string{"systemd.DefaultConfig": writeConfig(t, systemd.DefaultConfig())}
	for name, path := range files {
		t.Run(name, func(t *testing.T) {
			if _, err := parseFlags([]string{"--config", path}); err != nil {
				t.Error(err)
			}
		})
	}
}
