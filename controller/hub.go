package controller

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// hub tracks the links that are up: at most one per device. A device that
// connects again (its old link died without the controller noticing yet)
// replaces its old link.
type hub struct {
	mu    sync.Mutex
	links map[string]*link
	stats map[string]*deviceStats

	online    atomic.Int64 // links attached now
	ingested  atomic.Int64 // usage records stored since start (not counting duplicates)
	dups      atomic.Int64 // usage records received again and dropped
	conflicts atomic.Int64 // usage records whose seq was stored with another call id
}

// deviceStats survive a device's links, for the admin API.
type deviceStats struct {
	links       int64
	connectedAt time.Time
}

func newHub() *hub {
	return &hub{links: map[string]*link{}, stats: map[string]*deviceStats{}}
}

// attach makes l the device's link and returns the one it replaces.
func (h *hub) attach(l *link) (old *link) {
	h.mu.Lock()
	defer h.mu.Unlock()
	old = h.links[l.device]
	h.links[l.device] = l
	if old == nil {
		h.online.Add(1)
	}
	st := h.stats[l.device]
	if st == nil {
		st = &deviceStats{}
		h.stats[l.device] = st
	}
	st.links++
	st.connectedAt = l.connectedAt
	return old
}

// detach removes l unless another link replaced it already.
func (h *hub) detach(l *link) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.links[l.device] == l {
		delete(h.links, l.device)
		h.online.Add(-1)
	}
}

// get returns the device's link, or nil.
func (h *hub) get(device string) *link {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.links[device]
}

// all returns the links up now.
func (h *hub) all() []*link {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]*link, 0, len(h.links))
	for _, l := range h.links {
		out = append(out, l)
	}
	return out
}

// status fills in what the hub knows of a device.
func (h *hub) status(d Device) DeviceStatus {
	h.mu.Lock()
	defer h.mu.Unlock()
	ds := DeviceStatus{Device: d}
	if l := h.links[d.ID]; l != nil {
		ds.Online = true
		t := l.connectedAt
		ds.ConnectedAt = &t
	}
	if st := h.stats[d.ID]; st != nil {
		ds.Links = st.links
	}
	return ds
}

// pingAll pings every link, from one goroutine for the whole hub rather
// than a goroutine and a timer per link. A link whose ping cannot be
// written within timeout is not draining its socket: it is closed.
func (h *hub) pingAll(timeout time.Duration) {
	h.mu.Lock()
	conns := make([]*websocket.Conn, 0, len(h.links))
	for _, l := range h.links {
		conns = append(conns, l.conn)
	}
	h.mu.Unlock()
	for _, c := range conns {
		if err := c.WriteControl(websocket.PingMessage, nil, time.Now().Add(timeout)); err != nil {
			_ = c.Close()
		}
	}
}

// closeWith ends a link from outside its goroutines: a close frame with
// the reason (WriteControl may run beside the link's own writer), then the
// connection, which ends the link's read loop.
func closeWith(conn *websocket.Conn, code int, reason string) {
	_ = conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason),
		time.Now().Add(time.Second))
	_ = conn.Close()
}
