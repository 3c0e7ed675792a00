package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/edgefaas/edgefaas/controller"
)

// TestCommands runs the client verbs against a real controller.
func TestCommands(t *testing.T) {
	dir := t.TempDir()
	s, err := controller.New(t.Context(), controller.Config{DataDir: dir,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(s.Handler())
	defer func() { s.Close(); hs.Close() }()
	edgecloud := func(args ...string) (string, error) {
		var out bytes.Buffer
		err := run(context.Background(), append(args, "--controller", hs.URL, "--data-dir", dir), &out)
		return out.String(), err
	}
	out, err := edgecloud("token", "create", "--labels", "site=depot")
	if err != nil || !strings.HasPrefix(out, "enr_") {
		t.Fatalf("token create: %q %v", out, err)
	}
	out, err = edgecloud("devices", "--json")
	if err != nil || strings.TrimSpace(out) != "[]" {
		t.Fatalf("devices --json: %q %v", out, err)
	}
	out, err = edgecloud("usage", "--json", "--since", "1h")
	var rows []controller.UsageRow
	if err != nil || json.Unmarshal([]byte(out), &rows) != nil || len(rows) != 0 {
		t.Fatalf("usage --json: %q %v", out, err)
	}
	if _, err := edgecloud("devices", "revoke", "dev-00000000000000000000000000000000"); err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("revoke of an unknown device: %v, want a 404", err)
	}
	if err := run(context.Background(), []string{"devices", "--controller", hs.URL, "--token", "wrong"}, io.Discard); err == nil ||
		!strings.Contains(err.Error(), "401") {
		t.Fatalf("wrong admin token: %v, want a 401", err)
	}
}
