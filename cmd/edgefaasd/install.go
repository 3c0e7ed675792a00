package main

import (
	"context"
	"log/slog"

	"github.com/edgefaas/edgefaas/systemd"
)

// runInstall installs the agent's systemd units, or removes them.
func runInstall(ctx context.Context, opts systemd.InstallOptions, uninstall bool) error {
	opts.Logger = systemd.NewLogger(slog.LevelInfo)
	if uninstall {
		return systemd.Uninstall(ctx, opts)
	}
	return systemd.Install(ctx, opts)
}
