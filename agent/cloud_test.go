package agent

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/edgefaas/edgefaas/controller"
	"github.com/edgefaas/edgefaas/errdefs"
	"github.com/edgefaas/edgefaas/internal/testroot"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func cloudTestConfig(t *testing.T, state, url, token string) Config {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return Config{StateDir: state, CgroupParent: "edgefaas-unit-" + hex.EncodeToString(b),
		APISocket: filepath.Join(state, "api.sock"), Listen: "127.0.0.1:0",
		CloudURL: url, CloudEnroll: token, CloudMaxBackoff: time.Second,
		Logger: quiet}
}

// TestCloudNeedsEnrolment: a cloud URL without an identity or a token is
// a configuration error at start, not a link that retries forever.
func TestCloudNeedsEnrolment(t *testing.T) {
	testroot.RequireRoot(t)
	_, err := New(t.Context(), cloudTestConfig(t, t.TempDir(), "http://127.0.0.1:1", ""))
	if !errors.Is(err, errdefs.ErrInvalid) {
		t.Fatalf("got %v, want ErrInvalid (not enrolled)", err)
	}
}

// TestCloudLinkLifecycle: New enrols, Serve starts the link, /v1/info shows
// it, a restart reuses the identity and ignores the spent token, and Close
// stops the link.
func TestCloudLinkLifecycle(t *testing.T) {
	testroot.RequireRoot(t)
	cs, err := controller.New(t.Context(), controller.Config{DataDir: t.TempDir(), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cctx, stopCloud := context.WithCancel(context.Background())
	cdone := make(chan error, 1)
	go func() { cdone <- cs.Serve(cctx, ln) }()
	defer func() {
		stopCloud()
		<-cdone
		cs.Close()
	}()
	url := "http://" + ln.Addr().String()
	cl, err := controller.NewClient(url, cs.AdminToken())
	if err != nil {
		t.Fatal(err)
	}
	tok, err := cl.CreateToken(t.Context(), map[string]string{"site": "lab"})
	if err != nil {
		t.Fatal(err)
	}
	state := t.TempDir()
	var device string
	for run := range 2 { // the second run finds the identity; the token is spent
		a, err := New(t.Context(), cloudTestConfig(t, state, url, tok.Token))
		if err != nil {
			t.Fatalf("run %d: New: %v", run, err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- a.Serve(ctx) }()
		deadline := time.Now().Add(10 * time.Second)
		for st := a.cloudStatus(); st == nil || !st.Connected; st = a.cloudStatus() {
			if time.Now().After(deadline) {
				t.Fatalf("run %d: link not up: %+v", run, st)
			}
			time.Sleep(10 * time.Millisecond)
		}
		if run == 0 {
			device = a.cloudStatus().DeviceID
		} else if got := a.cloudStatus().DeviceID; got != device {
			t.Fatalf("restart: device %s, want %s", got, device)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if err := a.Close(); err != nil {
			t.Fatal(err)
		}
		if a.cloudStatus() != nil {
			t.Fatal("link still set after Close")
		}
	}
	d, err := cl.Device(t.Context(), device)
	if err != nil || d.Labels["site"] != "lab" || d.Links != 2 {
		t.Fatalf("device at the controller %+v %v, want label site=lab and 2 links", d, err)
	}
}

// TestCloudEnrolsWhenReachable: a gateway first started while the
// controller is unreachable serves anyway and enrols once it can.
func TestCloudEnrolsWhenReachable(t *testing.T) {
	testroot.RequireRoot(t)
	dir := t.TempDir()
	// A controller makes a token, then goes away; the same one (same data,
	// same address) comes back later.
	serveCloud := func(ln net.Listener) (*controller.Server, func()) {
		cs, err := controller.New(t.Context(), controller.Config{DataDir: dir, Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- cs.Serve(ctx, ln) }()
		return cs, func() { cancel(); <-done; cs.Close() }
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	cs, stop := serveCloud(ln)
	cl, _ := controller.NewClient("http://"+addr, cs.AdminToken())
	tok, err := cl.CreateToken(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	stop()

	cfg := cloudTestConfig(t, t.TempDir(), "http://"+addr, tok.Token)
	a, err := New(t.Context(), cfg)
	if err != nil {
		t.Fatalf("New with the controller away: %v", err)
	}
	defer a.Close()
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- a.Serve(ctx) }()
	defer func() { cancel(); <-served }()
	deadline := time.Now().Add(10 * time.Second)
	for a.cloudStatus() == nil { // Serve starts the cloud part
		if time.Now().After(deadline) {
			t.Fatal("no cloud status")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if st := a.cloudStatus(); st.Connected || st.LastError == "" {
		t.Fatalf("status while unreachable: %+v", st)
	}

	ln, err = net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	_, stop = serveCloud(ln)
	defer stop()
	deadline = time.Now().Add(20 * time.Second)
	for st := a.cloudStatus(); st == nil || !st.Connected; st = a.cloudStatus() {
		if time.Now().After(deadline) {
			t.Fatalf("not enrolled and linked: %+v", st)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
