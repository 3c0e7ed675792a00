package controller

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/edgefaas/edgefaas/errdefs"
)

// Client talks to a controller's admin API (the edgecloud command line and
// tests use it).
type Client struct {
	base  string
	token string
	http  *http.Client
}

// NewClient returns a client for the controller at base (http:// or
// https://) with the admin token.
func NewClient(base, token string) (*Client, error) {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("controller address %q: want http://host:port or https://...: %w", base, errdefs.ErrInvalid)
	}
	return &Client{base: strings.TrimSuffix(base, "/"), token: token,
		http: &http.Client{Timeout: 30 * time.Second}}, nil
}

// WithTLS makes the client trust conf's roots (a controller with a
// private certificate) and returns it.
func (c *Client) WithTLS(conf *tls.Config) *Client {
	c.http = &http.Client{Timeout: c.http.Timeout, Transport: &http.Transport{
		Proxy: http.ProxyFromEnvironment, TLSClientConfig: conf}}
	return c
}

// StatusError is an error answer from the controller.
type StatusError struct {
	Code    int
	Message string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("controller: %s (%d)", e.Message, e.Code)
}

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("controller %s: %w", c.base, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		var e errorBody
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		if json.Unmarshal(b, &e) != nil || e.Error == "" {
			e.Error = strings.TrimSpace(string(b))
		}
		return &StatusError{Code: resp.StatusCode, Message: e.Error}
	}
	if out == nil {
		return nil
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// CreateToken makes a one-time enrolment token carrying labels.
func (c *Client) CreateToken(ctx context.Context, labels map[string]string) (TokenResponse, error) {
	var t TokenResponse
	err := c.do(ctx, http.MethodPost, "/v1/tokens", TokenRequest{Labels: labels}, &t)
	return t, err
}

// Devices lists every enrolled device.
func (c *Client) Devices(ctx context.Context) ([]DeviceStatus, error) {
	var ds []DeviceStatus
	err := c.do(ctx, http.MethodGet, "/v1/devices", nil, &ds)
	return ds, err
}

// Device returns one device.
func (c *Client) Device(ctx context.Context, id string) (DeviceStatus, error) {
	var d DeviceStatus
	err := c.do(ctx, http.MethodGet, "/v1/devices/"+url.PathEscape(id), nil, &d)
	return d, err
}

// Revoke revokes a device and ends its link.
func (c *Client) Revoke(ctx context.Context, id string) (DeviceStatus, error) {
	var d DeviceStatus
	err := c.do(ctx, http.MethodPost, "/v1/devices/"+url.PathEscape(id)+"/revoke", nil, &d)
	return d, err
}

// Usage sums usage per device and function.
func (c *Client) Usage(ctx context.Context, q UsageQuery) ([]UsageRow, error) {
	var rows []UsageRow
	err := c.do(ctx, http.MethodGet, "/v1/usage?"+q.values().Encode(), nil, &rows)
	return rows, err
}

// UsageSeries sums usage per function and time bucket.
func (c *Client) UsageSeries(ctx context.Context, q UsageQuery, bucket time.Duration) ([]UsageBucket, error) {
	v := q.values()
	v.Set("bucket", bucket.String())
	var rows []UsageBucket
	err := c.do(ctx, http.MethodGet, "/v1/usage/series?"+v.Encode(), nil, &rows)
	return rows, err
}

// Deploy creates or changes a deployment.
func (c *Client) Deploy(ctx context.Context, req DeployRequest) (Deployment, error) {
	var d Deployment
	err := c.do(ctx, http.MethodPost, "/v1/deployments", req, &d)
	return d, err
}

// Deployments lists the deployments.
func (c *Client) Deployments(ctx context.Context) ([]Deployment, error) {
	var ds []Deployment
	err := c.do(ctx, http.MethodGet, "/v1/deployments", nil, &ds)
	return ds, err
}

// Rollout returns a deployment's progress per device.
func (c *Client) Rollout(ctx context.Context, name string) (Rollout, error) {
	var r Rollout
	err := c.do(ctx, http.MethodGet, "/v1/deployments/"+url.PathEscape(name), nil, &r)
	return r, err
}

// Undeploy deletes a deployment; its devices remove the function.
func (c *Client) Undeploy(ctx context.Context, name string) error {
	return c.do(ctx, http.MethodDelete, "/v1/deployments/"+url.PathEscape(name), nil, nil)
}

// DeviceFunctions lists what a device reported of the functions the cloud
// placed on it.
func (c *Client) DeviceFunctions(ctx context.Context, id string) ([]DeviceFunction, error) {
	var fs []DeviceFunction
	err := c.do(ctx, http.MethodGet, "/v1/devices/"+url.PathEscape(id)+"/functions", nil, &fs)
	return fs, err
}

// CollectRegistry removes what the registry no longer needs.
func (c *Client) CollectRegistry(ctx context.Context) (GCResult, error) {
	var r GCResult
	err := c.do(ctx, http.MethodPost, "/v1/registry/gc", nil, &r)
	return r, err
}

func (q UsageQuery) values() url.Values {
	v := url.Values{}
	if !q.Since.IsZero() {
		v.Set("since", q.Since.UTC().Format(time.RFC3339Nano))
	}
	if q.Device != "" {
		v.Set("device", q.Device)
	}
	if q.Function != "" {
		v.Set("function", q.Function)
	}
	return v
}

// Stats returns the hub's counters.
func (c *Client) Stats(ctx context.Context) (Stats, error) {
	var s Stats
	err := c.do(ctx, http.MethodGet, "/v1/stats", nil, &s)
	return s, err
}
