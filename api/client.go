package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Version is the edgefaas release, set at link time (-X ...api.Version=).
var Version = "dev"

// DefaultSocket is where edgefaasd listens for the admin API by default.
const DefaultSocket = "/run/edgefaas/edgefaasd.sock"

// Client talks to an agent's admin API.
type Client struct {
	base  string // "http://edgefaasd" for a unix socket
	token string
	http  *http.Client
}

// NewClient returns a client for agent, which is "unix:///path/to.sock",
// "http://host:port" (with token), or "" for DefaultSocket.
func NewClient(agent, token string) (*Client, error) {
	if agent == "" {
		agent = "unix://" + DefaultSocket
	}
	u, err := url.Parse(agent)
	if err != nil {
		return nil, fmt.Errorf("agent address %q: %w", agent, err)
	}
	tr := &http.Transport{ResponseHeaderTimeout: 5 * time.Minute}
	c := &Client{base: strings.TrimSuffix(agent, "/"), token: token, http: &http.Client{Transport: tr}}
	switch u.Scheme {
	case "unix":
		path := u.Path
		tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		}
		c.base = "http://edgefaasd"
	case "http", "https":
	default:
		return nil, fmt.Errorf("agent address %q: want unix:///path or http://host:port", agent)
	}
	return c, nil
}

// StatusError is an error answer from the agent.
type StatusError struct {
	Code    int
	Message string
}

func (e *StatusError) Error() string { return e.Message }

func (c *Client) do(ctx context.Context, method, path string, body io.Reader, contentType string, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("cannot reach the agent: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		return statusError(resp)
	}
	if out == nil {
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("decode agent answer: %w", err)
	}
	return nil
}

// statusError reads an error answer: the api.Error body, or the raw text.
func statusError(resp *http.Response) error {
	var e Error
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if json.Unmarshal(b, &e) != nil || e.Error == "" {
		e.Error = fmt.Sprintf("agent answered %s: %s", resp.Status, bytes.TrimSpace(b))
	}
	return &StatusError{Code: resp.StatusCode, Message: e.Error}
}

func (c *Client) doJSON(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	return c.do(ctx, method, path, body, "application/json", out)
}

// Deploy creates or replaces a function.
func (c *Client) Deploy(ctx context.Context, spec FunctionSpec) (Function, error) {
	var f Function
	err := c.doJSON(ctx, http.MethodPut, "/v1/functions/"+url.PathEscape(spec.Name), spec, &f)
	return f, err
}

// Functions lists deployed functions.
func (c *Client) Functions(ctx context.Context) ([]Function, error) {
	var fs []Function
	err := c.doJSON(ctx, http.MethodGet, "/v1/functions", nil, &fs)
	return fs, err
}

// Function describes one function.
func (c *Client) Function(ctx context.Context, name string) (Function, error) {
	var f Function
	err := c.doJSON(ctx, http.MethodGet, "/v1/functions/"+url.PathEscape(name), nil, &f)
	return f, err
}

// Remove removes a function and stops its instances.
func (c *Client) Remove(ctx context.Context, name string) error {
	return c.doJSON(ctx, http.MethodDelete, "/v1/functions/"+url.PathEscape(name), nil, nil)
}

// ImportImage uploads an image archive (oci-archive or docker-archive).
func (c *Client) ImportImage(ctx context.Context, archive io.Reader) (Image, error) {
	return c.ImportImageWith(ctx, archive, ImportOptions{})
}

// Images lists imported images.
func (c *Client) Images(ctx context.Context) ([]Image, error) {
	var imgs []Image
	err := c.doJSON(ctx, http.MethodGet, "/v1/images", nil, &imgs)
	return imgs, err
}

// Info describes the agent.
func (c *Client) Info(ctx context.Context) (Info, error) {
	var info Info
	err := c.doJSON(ctx, http.MethodGet, "/v1/info", nil, &info)
	return info, err
}

// IsNotFound reports whether err is a 404 from the agent.
func IsNotFound(err error) bool {
	var se *StatusError
	return errors.As(err, &se) && se.Code == http.StatusNotFound
}

// RemoveImage removes an image that no function uses.
func (c *Client) RemoveImage(ctx context.Context, ref string) error {
	return c.doJSON(ctx, http.MethodDelete, "/v1/images/"+url.PathEscape(ref), nil, nil)
}

// UsageQuery selects usage rows.
type UsageQuery struct {
	Function string        // "" for every function
	Since    time.Duration // 0 for everything kept
	By       string        // "", "hour" or "day"
}

// Usage reads metered usage.
func (c *Client) Usage(ctx context.Context, q UsageQuery) ([]Usage, error) {
	v := url.Values{}
	if q.Function != "" {
		v.Set("function", q.Function)
	}
	if q.Since > 0 {
		v.Set("since", q.Since.String())
	}
	if q.By != "" {
		v.Set("by", q.By)
	}
	var rows []Usage
	err := c.doJSON(ctx, http.MethodGet, "/v1/usage?"+v.Encode(), nil, &rows)
	return rows, err
}

// LogsQuery selects log lines.
type LogsQuery struct {
	Follow bool
	Since  time.Duration
	CallID string
	Tail   int
}

// Logs streams a function's log lines to fn until the agent ends the
// stream (or, with Follow, until ctx ends).
func (c *Client) Logs(ctx context.Context, name string, q LogsQuery, fn func(LogLine) error) error {
	v := url.Values{}
	if q.Follow {
		v.Set("follow", "1")
	}
	if q.Since > 0 {
		v.Set("since", q.Since.String())
	}
	if q.CallID != "" {
		v.Set("call", q.CallID)
	}
	if q.Tail > 0 {
		v.Set("tail", fmt.Sprint(q.Tail))
	}
	// No response timeout: a followed stream is long-lived by design.
	resp, err := c.openStream(ctx, http.MethodGet, "/v1/functions/"+url.PathEscape(name)+"/logs?"+v.Encode(), nil, "")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(resp.Body)
	for {
		var line LogLine
		if err := dec.Decode(&line); err != nil {
			if errors.Is(err, io.EOF) || ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("reading log stream: %w", err)
		}
		if err := fn(line); err != nil {
			return err
		}
	}
}

// openStream sends a request whose answer is a stream, with no response
// timeout, and returns the response once it is a success.
func (c *Client) openStream(ctx context.Context, method, path string, body io.Reader, contentType string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return nil, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := (&http.Client{Transport: c.http.Transport}).Do(req)
	if err != nil {
		return nil, fmt.Errorf("cannot reach the agent: %w", err)
	}
	if resp.StatusCode >= 300 {
		defer resp.Body.Close()
		return nil, statusError(resp)
	}
	return resp, nil
}
