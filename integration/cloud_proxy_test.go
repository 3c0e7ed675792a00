package integration

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgefaas/edgefaas/cloudsync/proto"
)

// frameProxy sits between agents and edgecloud on loopback. It passes
// everything through, parsing the controller's websocket frames on the
// link so that a test can slip a frame of its own between two of them, as
// a broken or hostile controller (or a middlebox) would.
type frameProxy struct {
	t      testing.TB
	ln     net.Listener
	target string

	mu    sync.Mutex
	links []*proxiedLink // link connections, newest last
}

type proxiedLink struct {
	mu     sync.Mutex // one frame at a time towards the agent
	client net.Conn
}

func startFrameProxy(t testing.TB, target string) *frameProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &frameProxy{t: t, ln: ln, target: target}
	go p.accept()
	t.Cleanup(func() { ln.Close() })
	return p
}

func (p *frameProxy) url() string { return "http://" + p.ln.Addr().String() }

func (p *frameProxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		go p.serve(c)
	}
}

func (p *frameProxy) serve(client net.Conn) {
	defer client.Close()
	server, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		return
	}
	defer server.Close()
	br := bufio.NewReader(client)
	line, err := br.Peek(len("GET " + proto.LinkPath))
	if err != nil {
		return
	}
	go func() { _, _ = io.Copy(server, br); server.Close() }()
	if string(line) != "GET "+proto.LinkPath {
		_, _ = io.Copy(client, server) // enrolment and the rest: as they are
		return
	}
	l := &proxiedLink{client: client}
	p.mu.Lock()
	p.links = append(p.links, l)
	p.mu.Unlock()
	sr := bufio.NewReader(server)
	// The upgrade answer, then frames.
	for {
		h, err := sr.ReadString('\n')
		if err != nil {
			return
		}
		if _, err := client.Write([]byte(h)); err != nil || h == "\r\n" {
			break
		}
	}
	for {
		frame, err := readWSFrame(sr)
		if err != nil {
			return
		}
		l.mu.Lock()
		_, err = client.Write(frame)
		l.mu.Unlock()
		if err != nil {
			return
		}
	}
}

// readWSFrame reads one whole frame (header and payload) as sent by a
// server: unmasked.
func readWSFrame(r *bufio.Reader) ([]byte, error) {
	head := make([]byte, 2)
	if _, err := io.ReadFull(r, head); err != nil {
		return nil, err
	}
	n := uint64(head[1] & 0x7f)
	switch n {
	case 126:
		ext := make([]byte, 2)
		if _, err := io.ReadFull(r, ext); err != nil {
			return nil, err
		}
		head, n = append(head, ext...), uint64(binary.BigEndian.Uint16(ext))
	case 127:
		ext := make([]byte, 8)
		if _, err := io.ReadFull(r, ext); err != nil {
			return nil, err
		}
		head, n = append(head, ext...), binary.BigEndian.Uint64(ext)
	}
	payload := make([]byte, n)
	if _, err := io.ReadFull(r, payload); err != nil {
		return nil, err
	}
	return append(head, payload...), nil
}

// textFrame is an unmasked text frame, as a server sends it.
func textFrame(payload []byte) []byte {
	f := []byte{0x81}
	switch n := len(payload); {
	case n < 126:
		f = append(f, byte(n))
	case n < 1<<16:
		f = append(f, 126, byte(n>>8), byte(n))
	default:
		f = append(f, 127)
		f = binary.BigEndian.AppendUint64(f, uint64(n))
	}
	return append(f, payload...)
}

// inject writes frame to the agent on the newest link, between two of the
// controller's frames.
func (p *frameProxy) inject(frame []byte) {
	p.mu.Lock()
	l := p.links[len(p.links)-1]
	p.mu.Unlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	_ = l.client.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, _ = l.client.Write(frame)
}

// TestCloudAgentReconnectsAfterBadFrames: a malformed frame and an
// oversized one reach the real agent on its link; each time the agent
// drops that link, dials again, and its records keep arriving.
func TestCloudAgentReconnectsAfterBadFrames(t *testing.T) {
	c := startCloud(t)
	p := startFrameProxy(t, c.addr)
	a := startAgent(t, "--cloud", p.url(), "--enroll", c.token("via=proxy"), "--cloud-max-backoff", "1s")
	var device string
	waitFor(t, 20*time.Second, "link up", func() bool { st := a.cloud(); device = st.DeviceID; return st.Connected })
	a.mustCLI("deploy", "f", "--image", built.testfn, "--memory", "64Mi")

	tests := []struct {
		name    string
		frame   []byte
		wantErr string // in the agent's last error
	}{
		{"malformed", textFrame([]byte(`{"v":1,"type":"usage_ack","body":{"up_to":"many"}}`)), "invalid"},
		{"unknown version", textFrame([]byte(`{"v":9,"type":"usage_ack","body":{}}`)), "version 9"},
		{"oversized", textFrame(bytes.Repeat([]byte(" "), proto.MaxFrame+1)), "read limit"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			links := a.cloud().Links
			p.inject(tt.frame)
			waitFor(t, 20*time.Second, "the agent on a new link", func() bool {
				st := a.cloud()
				return st.Connected && st.Links == links+1
			})
			if st := a.cloud(); !strings.Contains(st.LastError, tt.wantErr) {
				t.Fatalf("the agent's last error %q, want it to mention %q", st.LastError, tt.wantErr)
			}
			a.call(http.MethodPost, "/function/f/echo", "x").want(t, 200, "ok")
			want := int64(i + 1)
			waitFor(t, 20*time.Second, "the call's record at the controller", func() bool { return c.invocations(device) == want })
		})
	}
}
