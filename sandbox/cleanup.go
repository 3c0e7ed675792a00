package sandbox

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/opencontainers/runc/libcontainer"

	"github.com/edgefaas/edgefaas/cgroups"
)

// Cleanup removes what a crashed agent left: every sandbox recorded in the
// state directory is killed and destroyed, then every cgroup still below
// CgroupParent is emptied and removed (a crash between cgroup creation and
// state save leaves a cgroup without a state record). Mounts need no work:
// they live in the sandboxes' own mount namespaces and vanish with their
// last process. It returns the ids of the sandboxes it destroyed. It must run
// before the agent creates any sandbox.
func (m *Manager) Cleanup() ([]string, error) {
	entries, err := os.ReadDir(m.cfg.StateDir)
	if err != nil {
		return nil, err
	}
	var ids []string
	var errs []error
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		id := e.Name()
		c, err := libcontainer.Load(m.cfg.StateDir, id)
		if err == nil {
			err = kill(c, nil)
		}
		if err != nil {
			m.log.Warn("leftover sandbox: removing its state only", "sandbox", id, "err", err)
			errs = append(errs, os.RemoveAll(filepath.Join(m.cfg.StateDir, id)))
		}
		ids = append(ids, id)
	}
	removed, err := cgroups.Cleanup(m.mode, m.cfg.CgroupParent)
	if err != nil {
		errs = append(errs, fmt.Errorf("leftover cgroups: %w", err))
	}
	if len(ids) > 0 || len(removed) > 0 {
		m.log.Info("cleaned up after a previous agent", "sandboxes", len(ids), "cgroups", len(removed))
	}
	return ids, errors.Join(errs...)
}
