// Package errdefs holds the sentinel error classes shared by every package of
// edgefaas. Packages wrap them with context (fmt.Errorf("function %q: %w",
// name, errdefs.ErrNotFound)); only the edges (HTTP handlers, the CLI)
// translate them into status codes or exit messages.
package errdefs

import (
	"errors"
	"net/http"
)

var (
	ErrNotFound    = errors.New("not found")
	ErrExists      = errors.New("already exists")
	ErrInvalid     = errors.New("invalid")
	ErrUnavailable = errors.New("unavailable")
	ErrConflict    = errors.New("conflict")
	ErrTooLarge    = errors.New("too large")
	ErrPermission  = errors.New("permission denied")
)

// HTTPStatus translates an error's class into an HTTP status, for the
// edges that answer HTTP (the agent's API and gateway, the controller's
// API, registry errors and dashboard): 500 for an error of no class.
func HTTPStatus(err error) int {
	switch {
	case errors.Is(err, ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, ErrInvalid):
		return http.StatusBadRequest
	case errors.Is(err, ErrExists), errors.Is(err, ErrConflict):
		return http.StatusConflict
	case errors.Is(err, ErrTooLarge):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, ErrPermission):
		return http.StatusForbidden
	case errors.Is(err, ErrUnavailable):
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}
