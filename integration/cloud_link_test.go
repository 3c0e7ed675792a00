package integration

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/edgefaas/edgefaas/cloudsync"
	"github.com/edgefaas/edgefaas/cloudsync/proto"
)

// rawDevice enrols a device of the test's own (no agent) at c and dials
// its link by hand, to send what a broken or hostile agent would.
func rawDevice(t *testing.T, c *cloudProc) cloudsync.Identity {
	t.Helper()
	id, err := cloudsync.Enroll(context.Background(), t.TempDir(), c.url, c.token("kind=raw"), nil)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func dialLink(t *testing.T, c *cloudProc, id cloudsync.Identity) (*websocket.Conn, error) {
	t.Helper()
	conn, _, err := websocket.DefaultDialer.Dial("ws://"+c.addr+proto.LinkPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	_, err = cloudsync.Handshake(conn, id, 10*time.Second, 10*time.Second)
	return conn, err
}

// closedByPeer waits for the controller to close conn.
func closedByPeer(t *testing.T, conn *websocket.Conn) {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		if _, _, err := conn.ReadMessage(); err != nil {
			if ne, ok := err.(interface{ Timeout() bool }); ok && ne.Timeout() {
				t.Fatal("the controller kept the link open")
			}
			return
		}
	}
}

// TestCloudBadFramesAndWrongKey: against the real edgecloud, a link with a
// wrong key is refused, and malformed or oversized frames close the link
// that sent them while the agent's link stays up, untouched.
func TestCloudBadFramesAndWrongKey(t *testing.T) {
	c := startCloud(t)
	a, device := startCloudAgent(t, c)
	before, err := c.client.Device(context.Background(), device)
	if err != nil {
		t.Fatal(err)
	}

	id := rawDevice(t, c)
	wrong := id
	_, wrong.Key, _ = ed25519.GenerateKey(nil)
	if _, err := dialLink(t, c, wrong); err == nil {
		t.Fatal("a wrong key opened a link")
	} else if code, ok := cloudsync.IsRefused(err); !ok || code != proto.CodeUnauthorized {
		t.Fatalf("wrong key: got %v, want refusal %q", err, proto.CodeUnauthorized)
	}

	tests := []struct {
		name  string
		frame []byte
	}{
		{"malformed", []byte(`{"v":1,"type":"usage","body":{"records":"many"}}`)},
		{"unknown version", []byte(`{"v":7,"type":"health","body":{}}`)},
		{"oversized", bytes.Repeat([]byte("x"), proto.MaxFrame+1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn, err := dialLink(t, c, id)
			if err != nil {
				t.Fatal(err)
			}
			_ = conn.WriteMessage(websocket.TextMessage, tt.frame)
			closedByPeer(t, conn)
		})
	}
	after, err := c.client.Device(context.Background(), device)
	if err != nil {
		t.Fatal(err)
	}
	if !after.Online || after.Links != before.Links || !after.ConnectedAt.Equal(*before.ConnectedAt) {
		t.Fatalf("the agent's link changed: before %+v, after %+v", before, after)
	}
	if st := a.cloud(); !st.Connected || st.Links != 1 {
		t.Fatalf("agent link %+v, want its first link still up", st)
	}
	if !strings.Contains(c.logs.String(), "link down") {
		t.Fatalf("controller logs show no link closed:\n%s", c.logs.String())
	}
}
