// Package errdefs holds the sentinel error classes shared by every package of
// edgefaas. Packages wrap them with context (fmt.Errorf("function %q: %w",
// name, errdefs.ErrNotFound)); only the edges (HTTP handlers, the CLI)
// translate them into status codes or exit messages.
package errdefs

import "errors"

var (
	ErrNotFound    = errors.New("not found")
	ErrExists      = errors.New("already exists")
	ErrInvalid     = errors.New("invalid")
	ErrUnavailable = errors.New("unavailable")
	ErrConflict    = errors.New("conflict")
	ErrTooLarge    = errors.New("too large")
	ErrPermission  = errors.New("permission denied")
)
