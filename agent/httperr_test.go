package agent

import (
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/edgefaas/edgefaas/errdefs"
)

func TestHTTPStatus(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want int
	}{
		{name: "not found", err: errdefs.ErrNotFound, want: http.StatusNotFound},
		{name: "invalid", err: errdefs.ErrInvalid, want: http.StatusBadRequest},
		{name: "exists", err: errdefs.ErrExists, want: http.StatusConflict},
		{name: "conflict", err: errdefs.ErrConflict, want: http.StatusConflict},
		{name: "too large", err: errdefs.ErrTooLarge, want: http.StatusRequestEntityTooLarge},
		{name: "unavailable", err: errdefs.ErrUnavailable, want: http.StatusServiceUnavailable},
		{name: "wrapped once", err: fmt.Errorf("function %q: %w", "x", errdefs.ErrNotFound), want: http.StatusNotFound},
		{name: "wrapped twice", err: fmt.Errorf("deploy: %w", fmt.Errorf("image %q: %w", "y", errdefs.ErrInvalid)), want: http.StatusBadRequest},
		{name: "joined", err: errors.Join(errors.New("disk"), errdefs.ErrUnavailable), want: http.StatusServiceUnavailable},
		{name: "unclassified", err: errors.New("disk on fire"), want: http.StatusInternalServerError},
		{name: "class only in the text", err: errors.New("not found"), want: http.StatusInternalServerError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := httpStatus(tt.err); got != tt.want {
				t.Errorf("httpStatus(%v) = %d, want %d", tt.err, got, tt.want)
			}
		})
	}
}
