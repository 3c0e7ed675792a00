package systemd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// InstallOptions says where Install and Uninstall work. Zero values have
// the defaults given.
type InstallOptions struct {
	// Root is prepended to every path written or removed; "/" (also for "")
	// is this system. Under any other root the units are enabled offline
	// (systemctl --root) and no running systemd is touched, which is how
	// tests and image builds use it.
	Root string
	// Systemctl is the systemctl binary; "systemctl" from PATH.
	Systemctl string
	// Logger reports what changed; slog.Default().
	Logger *slog.Logger
}

func (o *InstallOptions) setDefaults() {
	if o.Root == "" {
		o.Root = "/"
	}
	if o.Systemctl == "" {
		o.Systemctl = "systemctl"
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// Directories, relative to the root.
const (
	unitDir  = "/etc/systemd/system"
	agentBin = "/usr/bin/edgefaasd"
)

// online reports whether to talk to a running systemd: only for this
// system's root, and only when systemd is PID 1 (sd_booted(3)).
func (o *InstallOptions) online() bool {
	if filepath.Clean(o.Root) != "/" {
		return false
	}
	_, err := os.Stat("/run/systemd/system")
	return err == nil
}

// Install writes the agent's units (the service and its two sockets) to
// /etc/systemd/system and a default /etc/edgefaas/agent.conf unless one
// exists (an existing configuration is never overwritten), then enables the
// service, which enables its sockets too (Also=). With systemd running it
// reloads systemd first when a unit changed; the agent is not started.
// Running it again changes nothing: files are rewritten only when their
// content differs.
func Install(ctx context.Context, opts InstallOptions) error {
	opts.setDefaults()
	log := opts.Logger
	changed := false
	for _, name := range agentUnits() {
		data, err := fs.ReadFile(files, name)
		if err != nil {
			return err
		}
		wrote, err := writeIfChanged(filepath.Join(opts.Root, unitDir, name), data, 0o644)
		if err != nil {
			return fmt.Errorf("install %s: %w", name, err)
		}
		if wrote {
			log.Info("wrote unit", "path", filepath.Join(opts.Root, unitDir, name))
		}
		changed = changed || wrote
	}
	if err := writeConfig(filepath.Join(opts.Root, ConfigPath), log); err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(opts.Root, agentBin)); err != nil {
		log.Warn("the unit runs "+agentBin+", which is missing: install the binary there before starting it", "err", err)
	}
	if opts.online() {
		if changed {
			if err := opts.systemctl(ctx, "daemon-reload"); err != nil {
				return err
			}
		}
		if err := opts.systemctl(ctx, "enable", AgentService); err != nil {
			return err
		}
		log.Info("installed and enabled; start it with: systemctl start " + AgentService)
		return nil
	}
	if err := opts.systemctl(ctx, "--root="+opts.Root, "enable", AgentService); err != nil {
		return err
	}
	log.Info("installed and enabled offline", "root", opts.Root)
	return nil
}

// Uninstall stops the agent and its sockets when systemd runs them,
// disables them and removes their unit files. The configuration and the
// state directory are kept. Running it again, or without an installation,
// does nothing.
func Uninstall(ctx context.Context, opts InstallOptions) error {
	opts.setDefaults()
	units := agentUnits()
	if _, err := os.Stat(filepath.Join(opts.Root, unitDir, AgentService)); err == nil {
		// --now stops what runs; offline there is nothing to stop.
		args := append([]string{"--root=" + opts.Root, "disable"}, units...)
		if opts.online() {
			args = append([]string{"disable", "--now"}, units...)
		}
		if err := opts.systemctl(ctx, args...); err != nil {
			return err
		}
	}
	removed := false
	for _, name := range units {
		path := filepath.Join(opts.Root, unitDir, name)
		err := os.Remove(path)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("uninstall %s: %w", name, err)
		}
		opts.Logger.Info("removed unit", "path", path)
		removed = true
	}
	if removed && opts.online() {
		return opts.systemctl(ctx, "daemon-reload")
	}
	return nil
}

// systemctl runs systemctl with args; what it prints is logged.
func (o *InstallOptions) systemctl(ctx context.Context, args ...string) error {
	cmd := exec.CommandContext(ctx, o.Systemctl, args...)
	out, err := cmd.CombinedOutput()
	text := strings.TrimSpace(string(out))
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", o.Systemctl, strings.Join(args, " "), err, text)
	}
	for line := range strings.Lines(text) {
		if line = strings.TrimSpace(line); line != "" {
			o.Logger.Info("systemctl: " + line)
		}
	}
	return nil
}

// writeIfChanged writes data to path unless the file already holds exactly
// that, replacing it atomically (a crash leaves the old or the new unit,
// never half of one). It reports whether it wrote.
func writeIfChanged(path string, data []byte, mode fs.FileMode) (bool, error) {
	old, err := os.ReadFile(path)
	if err == nil && bytes.Equal(old, data) {
		if fi, err := os.Stat(path); err == nil && fi.Mode().Perm() == mode {
			return false, nil
		}
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return false, err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return false, err
	}
	defer os.Remove(tmp.Name()) // a no-op after the rename
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return false, err
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return false, err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return false, err
	}
	if err := tmp.Close(); err != nil {
		return false, err
	}
	return true, os.Rename(tmp.Name(), path)
}

// writeConfig writes the default configuration unless path exists. It is
// written aside and hard-linked into place, so that an existing file is
// never replaced and a crash never leaves half a file that later runs would
// keep. The file may come to hold the cloud credentials: only root reads it.
func writeConfig(path string, log *slog.Logger) error {
	if _, err := os.Lstat(path); err == nil {
		log.Info("kept the existing configuration", "path", path)
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("install %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.WriteString(defaultConfig)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Link(tmp.Name(), path)
	}
	if errors.Is(err, fs.ErrExist) {
		log.Info("kept the existing configuration", "path", path)
		return nil
	}
	if err != nil {
		return fmt.Errorf("install %s: %w", path, err)
	}
	log.Info("wrote the default configuration", "path", path)
	return nil
}
