package agent

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// conns keeps alive connections to an http-mode instance's server and runs
// one request per connection at a time, in the caller's goroutine. net/http's
// Transport would do the same with two goroutines per connection and a
// hand-off to each for every request; on a 2-core gateway those wake-ups
// were a measurable part of the gateway's added latency.
type conns struct {
	dial func(ctx context.Context) (net.Conn, error)
	max  int // idle connections kept

	mu   sync.Mutex
	idle []*conn
	shut bool
}

type conn struct {
	net.Conn
	br *bufio.Reader
	bw *bufio.Writer
}

// errStale is a kept-alive connection the server closed while it was idle:
// nothing was sent back, so the request is sent again on a new one.
var errStale = errors.New("kept-alive connection closed by the server")

// roundTrip sends req and reads the whole response, at most limit bytes of
// body (more sets overflow). The connection is kept when the exchange ended
// cleanly.
func (p *conns) roundTrip(ctx context.Context, req *http.Request, body *limitedBuffer) (*http.Response, error) {
	for attempt := 0; ; attempt++ {
		c, reused, err := p.get(ctx)
		if err != nil {
			return nil, err
		}
		resp, err := c.exchange(ctx, req, body, reused)
		if errors.Is(err, errStale) && attempt == 0 {
			body.buf.Reset()
			body.overflow = false
			if req.GetBody != nil {
				if req.Body, err = req.GetBody(); err != nil {
					return nil, err
				}
			}
			continue
		}
		if err != nil || resp.Close || body.overflow {
			c.Close()
		} else {
			p.put(c)
		}
		return resp, err
	}
}

func (p *conns) get(ctx context.Context) (*conn, bool, error) {
	p.mu.Lock()
	if n := len(p.idle); n > 0 {
		c := p.idle[n-1]
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		return c, true, nil
	}
	p.mu.Unlock()
	nc, err := p.dial(ctx)
	if err != nil {
		return nil, false, err
	}
	return &conn{Conn: nc, br: bufio.NewReader(nc), bw: bufio.NewWriter(nc)}, false, nil
}

func (p *conns) put(c *conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.shut || len(p.idle) >= p.max {
		c.Close()
		return
	}
	p.idle = append(p.idle, c)
}

// close closes the idle connections; connections in use close when their
// exchange ends.
func (p *conns) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.shut = true
	for _, c := range p.idle {
		c.Close()
	}
	p.idle = nil
}

// exchange writes the request and reads the response on c. The deadline of
// ctx is the connection's; ctx ending early (the caller went away) cuts
// the exchange short.
func (c *conn) exchange(ctx context.Context, req *http.Request, body *limitedBuffer, reused bool) (*http.Response, error) {
	if d, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(d)
	} else {
		_ = c.SetDeadline(time.Time{})
	}
	stop := context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if err := req.Write(c.bw); err != nil {
		return nil, err
	}
	if err := c.bw.Flush(); err != nil {
		return nil, err
	}
	resp, err := http.ReadResponse(c.br, req)
	if err != nil {
		if reused && (errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || isReset(err)) && ctx.Err() == nil {
			return nil, errStale
		}
		return nil, err
	}
	err = body.readFrom(resp.Body)
	resp.Body.Close()
	return resp, err
}

func isReset(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "read"
}
