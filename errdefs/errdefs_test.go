package errdefs

import (
	"errors"
	"fmt"
	"net/http"
	"testing"
)

func TestHTTPStatus(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want int
	}{
		{name: "not found", err: ErrNotFound, want: http.StatusNotFound},
		{name: "invalid", err: ErrInvalid, want: http.StatusBadRequest},
		{name: "exists", err: ErrExists, want: http.StatusConflict},
		{name: "conflict", err: ErrConflict, want: http.StatusConflict},
		{name: "too large", err: ErrTooLarge, want: http.StatusRequestEntityTooLarge},
		{name: "unavailable", err: ErrUnavailable, want: http.StatusServiceUnavailable},
		{name: "permission", err: ErrPermission, want: http.StatusForbidden},
		{name: "wrapped once", err: fmt.Errorf("function %q: %w", "x", ErrNotFound), want: http.StatusNotFound},
		{name: "wrapped twice", err: fmt.Errorf("deploy: %w", fmt.Errorf("image %q: %w", "y", ErrInvalid)), want: http.StatusBadRequest},
		{name: "joined", err: errors.Join(errors.New("disk"), ErrUnavailable), want: http.StatusServiceUnavailable},
		{name: "unclassified", err: errors.New("disk on fire"), want: http.StatusInternalServerError},
		{name: "class only in the text", err: errors.New("not found"), want: http.StatusInternalServerError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := HTTPStatus(tt.err); got != tt.want {
				t.Errorf("HTTPStatus(%v) = %d, want %d", tt.err, got, tt.want)
			}
		})
	}
}
