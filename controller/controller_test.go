package controller

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/edgefaas/edgefaas/cloudsync/proto"
	"github.com/edgefaas/edgefaas/errdefs"
)

// testController runs a real Server (SQLite in a temp dir) on a loopback
// httptest server.
type testController struct {
	srv    *Server
	http   *httptest.Server
	client *Client
}

func startController(t *testing.T, cfg Config) *testController {
	t.Helper()
	if cfg.DataDir == "" {
		cfg.DataDir = t.TempDir()
	}
	s, err := New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(s.Handler())
	t.Cleanup(func() {
		if err := s.Close(); err != nil { // closes the hijacked links too
			t.Error(err)
		}
		hs.Close()
	})
	c, err := NewClient(hs.URL, s.AdminToken())
	if err != nil {
		t.Fatal(err)
	}
	return &testController{srv: s, http: hs, client: c}
}

// device is a test's own device: a key, enrolled, speaking the protocol by
// hand (the agent's side has its own tests in package cloudsync).
type device struct {
	id      string
	key     ed25519.PrivateKey
	conn    *websocket.Conn
	desired proto.Desired // the set sent after the welcome
}

func (tc *testController) enrol(t *testing.T, labels map[string]string) *device {
	t.Helper()
	return tc.enrolAs(t, "", labels)
}

// enrolAs enrols a device that names itself hostname.
func (tc *testController) enrolAs(t *testing.T, hostname string, labels map[string]string) *device {
	t.Helper()
	tok, err := tc.client.CreateToken(t.Context(), labels)
	if err != nil {
		t.Fatal(err)
	}
	pub, key, _ := ed25519.GenerateKey(nil)
	if code := tc.postEnroll(t, proto.EnrollRequest{Token: tok.Token, PublicKey: pub, Hostname: hostname}); code != http.StatusOK {
		t.Fatalf("enrol: %d", code)
	}
	return &device{id: proto.DeviceID(pub), key: key}
}

func (tc *testController) postEnroll(t *testing.T, er proto.EnrollRequest) int {
	t.Helper()
	req, err := json.Marshal(er)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(tc.http.URL+proto.EnrollPath, "application/json", bytes.NewReader(req))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// connect dials the link and answers the challenge with key (the device's
// own unless a test swaps it). It returns the frame after auth.
func (tc *testController) connect(t *testing.T, d *device, key ed25519.PrivateKey) proto.Envelope {
	t.Helper()
	conn, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(tc.http.URL, "http")+proto.LinkPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	d.conn = conn
	ch := d.read(t)
	c, err := proto.DecodeBody[proto.Challenge](ch)
	if err != nil {
		t.Fatal(err)
	}
	d.send(t, proto.TypeAuth, "", proto.Auth{DeviceID: d.id, Signature: ed25519.Sign(key, proto.ChallengeMessage(d.id, c.Nonce))})
	e := d.read(t)
	if e.Type == proto.TypeWelcome {
		// The desired set follows the welcome at once.
		ds := d.read(t)
		if ds.Type != proto.TypeDesired {
			t.Fatalf("after welcome: %s, want desired", ds.Type)
		}
		var err error
		if d.desired, err = proto.DecodeBody[proto.Desired](ds); err != nil {
			t.Fatal(err)
		}
	}
	return e
}

func (d *device) read(t *testing.T) proto.Envelope {
	t.Helper()
	_ = d.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, b, err := d.conn.ReadMessage()
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	e, err := proto.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func (d *device) send(t *testing.T, typ, id string, body any) {
	t.Helper()
	b, err := proto.Encode(typ, id, body)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.conn.WriteMessage(websocket.TextMessage, b); err != nil {
		t.Fatal(err)
	}
}

// closed waits for the controller to end the link and returns the error
// frame it sent first, if any.
func (d *device) closed(t *testing.T) string {
	t.Helper()
	_ = d.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	code := ""
	for {
		_, b, err := d.conn.ReadMessage()
		if err != nil {
			var ne interface{ Timeout() bool }
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatal("the controller did not close the link")
			}
			return code
		}
		if e, err := proto.Decode(b); err == nil && e.Type == proto.TypeError {
			m, _ := proto.DecodeBody[proto.Error](e)
			code = m.Code
		}
	}
}

func records(from, to int64) []proto.UsageRecord {
	var out []proto.UsageRecord
	for s := from; s <= to; s++ {
		out = append(out, proto.UsageRecord{Seq: s, CallID: "c" + string(rune('a'+s%26)), Function: "f", Trigger: "http",
			StartNs: time.Now().UnixNano(), BilledMs: 100, MemoryBytes: 128 << 20, KiBMs: 128 * 1024 * 100, Status: "ok"})
	}
	return out
}

func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for delay := time.Millisecond; !cond(); delay = min(2*delay, 50*time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(delay)
	}
}

// TestLinkUsageIdempotent: a batch sent twice (the agent did not see the
// first ack) is stored once and acknowledged both times.
func TestLinkUsageIdempotent(t *testing.T) {
	tc := startController(t, Config{})
	d := tc.enrol(t, map[string]string{"site": "a"})
	if e := tc.connect(t, d, d.key); e.Type != proto.TypeWelcome {
		t.Fatalf("got %s, want welcome", e.Type)
	}
	d.send(t, proto.TypeHello, "", proto.Hello{Version: "test", Arch: "arm64", CgroupMode: "v2"})
	for i, id := range []string{"u1", "u1-again"} {
		d.send(t, proto.TypeUsage, id, proto.Usage{Records: records(1, 300)})
		e := d.read(t)
		ack, err := proto.DecodeBody[proto.UsageAck](e)
		if err != nil || e.Type != proto.TypeUsageAck || e.ID != id || ack.UpTo != 300 {
			t.Fatalf("send %d: got %+v %v, want usage_ack %s up to 300", i, e, err, id)
		}
	}
	rows, err := tc.client.Usage(t.Context(), UsageQuery{Device: d.id})
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 || rows[0].Invocations != 300 || rows[0].BilledMs != 30000 {
		t.Fatalf("usage %+v, want 300 invocations, 30000 billed ms", rows)
	}
	if st := tc.srv.Stats(); st.Ingested != 300 || st.Duplicates != 300 || st.Conflicts != 0 || st.Online != 1 {
		t.Fatalf("stats %+v", st)
	}
	// The same seqs with other call ids (a ledger reset under a kept
	// identity): acknowledged, not stored, counted as conflicts.
	clash := records(1, 10)
	for i := range clash {
		clash[i].CallID = "other"
	}
	d.send(t, proto.TypeUsage, "clash", proto.Usage{Records: clash})
	if e := d.read(t); e.Type != proto.TypeUsageAck || e.ID != "clash" {
		t.Fatalf("clash: got %+v", e)
	}
	if st := tc.srv.Stats(); st.Ingested != 300 || st.Conflicts != 10 {
		t.Fatalf("stats after the clash %+v, want 10 conflicts", st)
	}
	ds, err := tc.client.Devices(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != 1 || !ds[0].Online || ds[0].Inventory == nil || ds[0].Inventory.Arch != "arm64" || ds[0].Labels["site"] != "a" {
		t.Fatalf("devices %+v", ds)
	}
}

// TestBadFramesCloseOnlyThatLink: malformed, oversized, binary and
// out-of-protocol frames end the link that sent them, and only it.
func TestBadFramesCloseOnlyThatLink(t *testing.T) {
	tc := startController(t, Config{})
	good := tc.enrol(t, nil)
	if e := tc.connect(t, good, good.key); e.Type != proto.TypeWelcome {
		t.Fatalf("got %s", e.Type)
	}
	tests := []struct {
		name  string
		typ   int
		frame []byte
		code  string // the error frame's code; "" when gorilla closes itself
	}{
		{"not json", websocket.TextMessage, []byte("{{{"), proto.CodeInvalid},
		{"other version", websocket.TextMessage, []byte(`{"v":9,"type":"health","body":{}}`), proto.CodeInvalid},
		{"controller's message", websocket.TextMessage, []byte(`{"v":1,"type":"welcome","body":{}}`), proto.CodeInvalid},
		{"bad usage", websocket.TextMessage, []byte(`{"v":1,"type":"usage","id":"x","body":{"records":[]}}`), proto.CodeInvalid},
		{"binary", websocket.BinaryMessage, []byte{0, 1, 2}, proto.CodeInvalid},
		{"oversized", websocket.TextMessage, bytes.Repeat([]byte("x"), proto.MaxFrame+1), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bad := tc.enrol(t, nil)
			if e := tc.connect(t, bad, bad.key); e.Type != proto.TypeWelcome {
				t.Fatalf("got %s", e.Type)
			}
			_ = bad.conn.WriteMessage(tt.typ, tt.frame)
			if code := bad.closed(t); code != tt.code {
				t.Fatalf("error code %q, want %q", code, tt.code)
			}
			// The good link still works.
			good.send(t, proto.TypeUsage, tt.name, proto.Usage{Records: records(1, 1)})
			if e := good.read(t); e.Type != proto.TypeUsageAck || e.ID != tt.name {
				t.Fatalf("good link: got %+v", e)
			}
		})
	}
	waitFor(t, 5*time.Second, "only the good link online", func() bool { return tc.srv.Stats().Online == 1 })
}

// TestRefusals: a replayed token, an unknown token, a wrong key and a
// revoked device are refused; revoking ends the live link.
func TestRefusals(t *testing.T) {
	tc := startController(t, Config{})
	tok, err := tc.client.CreateToken(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	pub, key, _ := ed25519.GenerateKey(nil)
	if code := tc.postEnroll(t, proto.EnrollRequest{Token: tok.Token, PublicKey: pub}); code != http.StatusOK {
		t.Fatalf("first enrolment: %d", code)
	}
	pub2, _, _ := ed25519.GenerateKey(nil)
	for name, token := range map[string]string{"replayed": tok.Token, "unknown": "enr_nope"} {
		if code := tc.postEnroll(t, proto.EnrollRequest{Token: token, PublicKey: pub2}); code != http.StatusForbidden {
			t.Errorf("%s token: got %d, want 403", name, code)
		}
	}
	d := &device{id: proto.DeviceID(pub), key: key}
	_, wrong, _ := ed25519.GenerateKey(nil)
	if e := tc.connect(t, d, wrong); e.Type != proto.TypeError {
		t.Fatalf("wrong key: got %s, want error", e.Type)
	}
	if e := tc.connect(t, d, d.key); e.Type != proto.TypeWelcome {
		t.Fatalf("right key: got %s", e.Type)
	}
	if _, err := tc.client.Revoke(t.Context(), d.id); err != nil {
		t.Fatal(err)
	}
	d.closed(t)
	e := tc.connect(t, d, d.key)
	m, _ := proto.DecodeBody[proto.Error](e)
	if e.Type != proto.TypeError || m.Code != proto.CodeRevoked {
		t.Fatalf("revoked: got %+v, want error %q", e, proto.CodeRevoked)
	}
	var se *StatusError
	if _, err := tc.client.Revoke(t.Context(), "dev-nope"); !errors.As(err, &se) || se.Code != http.StatusNotFound {
		t.Fatalf("revoke unknown: %v", err)
	}
	bad, _ := NewClient(tc.http.URL, "wrong")
	if _, err := bad.Devices(t.Context()); !errors.As(err, &se) || se.Code != http.StatusUnauthorized {
		t.Fatalf("wrong admin token: %v", err)
	}
}

// TestStoreEnroll checks the store's own refusals.
func TestStoreEnroll(t *testing.T) {
	s, err := OpenStore(t.Context(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	if err := s.CreateToken(ctx, "t1", map[string]string{"a": "b"}); err != nil {
		t.Fatal(err)
	}
	pub, _, _ := ed25519.GenerateKey(nil)
	d, err := s.Enroll(ctx, "t1", Device{ID: proto.DeviceID(pub), PublicKey: pub})
	if err != nil || d.Labels["a"] != "b" {
		t.Fatalf("enrol: %+v %v", d, err)
	}
	tests := []struct {
		name  string
		token string
		want  error
	}{
		{"spent", "t1", errdefs.ErrConflict},
		{"unknown", "t2", errdefs.ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := s.Enroll(ctx, tt.token, Device{ID: "dev-x", PublicKey: pub}); !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}
	if err := s.CreateToken(ctx, "t3", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Enroll(ctx, "t3", Device{ID: proto.DeviceID(pub), PublicKey: pub}); !errors.Is(err, errdefs.ErrExists) {
		t.Fatalf("same key again: got %v, want ErrExists", err)
	}
}

// TestPingDeadline: a device that answers pings keeps its link over many
// ping intervals; one that stops reading (no pongs) is dropped.
func TestPingDeadline(t *testing.T) {
	tc := startController(t, Config{PingInterval: 50 * time.Millisecond, AuthTimeout: 200 * time.Millisecond})
	live, dead := tc.enrol(t, nil), tc.enrol(t, nil)
	for _, d := range []*device{live, dead} {
		if e := tc.connect(t, d, d.key); e.Type != proto.TypeWelcome {
			t.Fatalf("got %s", e.Type)
		}
	}
	var pings atomic.Int32
	live.conn.SetPingHandler(func(data string) error {
		pings.Add(1)
		return live.conn.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(time.Second))
	})
	go func() {
		_ = live.conn.SetReadDeadline(time.Time{})
		for {
			if _, _, err := live.conn.ReadMessage(); err != nil {
				return
			}
		}
	}()
	waitFor(t, 10*time.Second, "the silent device dropped", func() bool {
		d, err := tc.client.Device(t.Context(), dead.id)
		return err == nil && !d.Online
	})
	waitFor(t, 10*time.Second, "20 pings answered", func() bool { return pings.Load() >= 20 })
	if d, err := tc.client.Device(t.Context(), live.id); err != nil || !d.Online || d.Links != 1 {
		t.Fatalf("the answering device: %+v %v, want online on its first link", d, err)
	}
}

// TestStoreUsageQuery: the portable filters ($n parameters, optional
// device and function, since) select what they say.
func TestStoreUsageQuery(t *testing.T) {
	s, err := OpenStore(t.Context(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	base := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	rec := func(seq int64, fn string, start time.Time, status string) proto.UsageRecord {
		return proto.UsageRecord{Seq: seq, CallID: fmt.Sprint("c", seq), Function: fn, Trigger: "http",
			StartNs: start.UnixNano(), BilledMs: 100, KiBMs: 1024 * 1024 * 100, Status: status}
	}
	_, err = s.PutUsage(t.Context(), []UsageBatch{
		{Device: "dev-a", Records: []proto.UsageRecord{rec(1, "f", base, "ok"), rec(2, "f", base.Add(time.Hour), "error"), rec(3, "g", base, "ok")}},
		{Device: "dev-b", Records: []proto.UsageRecord{rec(1, "f", base.Add(2*time.Hour), "ok")}},
	})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		q    UsageQuery
		want string // device/function:invocations/errors, in order
	}{
		{"everything", UsageQuery{}, "dev-a/f:2/1 dev-a/g:1/0 dev-b/f:1/0"},
		{"one device", UsageQuery{Device: "dev-b"}, "dev-b/f:1/0"},
		{"one function", UsageQuery{Function: "f"}, "dev-a/f:2/1 dev-b/f:1/0"},
		{"both", UsageQuery{Device: "dev-a", Function: "g"}, "dev-a/g:1/0"},
		{"since", UsageQuery{Since: base.Add(30 * time.Minute)}, "dev-a/f:1/1 dev-b/f:1/0"},
		{"nothing", UsageQuery{Device: "dev-c"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rows, err := s.Usage(t.Context(), tt.q)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, r := range rows {
				got = append(got, fmt.Sprintf("%s/%s:%d/%d", r.Device, r.Function, r.Invocations, r.Errors))
			}
			if g := strings.Join(got, " "); g != tt.want {
				t.Fatalf("got %q, want %q", g, tt.want)
			}
		})
	}
	if rows, _ := s.Usage(t.Context(), UsageQuery{Device: "dev-a", Function: "f"}); len(rows) != 1 || rows[0].GBSeconds != 0.2 {
		t.Fatalf("GB-s: %+v, want 0.2 (2 x 1 GiB x 0.1 s)", rows)
	}
}
