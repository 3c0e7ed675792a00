package agent

import (
	"bytes"
	"context"
	"net/http"
	"time"
)

// hopHeaders are connection-level headers a proxy must not forward
// (RFC 9110 section 7.6.1).
var hopHeaders = []string{
	"Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade",
}

// invokeHTTP passes the call to the function's server over a kept-alive
// connection into its network namespace. The response is read whole (it is
// bounded by the response limit) so that a failure half-way becomes a clean
// error answer instead of a truncated one.
func (inst *instance) invokeHTTP(ctx context.Context, c call) result {
	cpu0, _ := inst.sb.CPUTime()
	overlap := inst.inflight.Add(1)
	defer inst.inflight.Add(-1)
	res := inst.roundTrip(ctx, c)
	// CPU time of a shared instance is apportioned: the instance cgroup's
	// CPU time during the call, divided by the number of calls in flight
	// when it started (exact when calls do not overlap).
	if cpu1, err := inst.sb.CPUTime(); err == nil && cpu1 > cpu0 {
		res.CPUTime = (cpu1 - cpu0) / time.Duration(overlap)
	}
	return res
}

func (inst *instance) roundTrip(ctx context.Context, c call) result {
	spec := inst.fn.Spec
	req, err := http.NewRequest(c.Method, "http://function"+c.Path, bytes.NewReader(c.Body))
	if err != nil {
		return errResult(http.StatusBadRequest, statusError, err.Error())
	}
	req.URL.RawQuery = c.Query
	for k, vs := range c.Header {
		req.Header[k] = vs
	}
	for _, h := range hopHeaders {
		req.Header.Del(h)
	}
	req.Header.Set("X-Faas-Trigger", c.Trigger)
	req.Header.Set("X-Call-Id", c.ID)
	req.ContentLength = int64(len(c.Body))
	body := &limitedBuffer{max: spec.MaxResponse}
	resp, err := inst.conns.roundTrip(ctx, req, body)
	if err != nil {
		return inst.failure(ctx, 0, err)
	}
	if body.overflow {
		return tooLarge(spec.Name, spec.MaxResponse)
	}
	for _, h := range hopHeaders {
		resp.Header.Del(h)
	}
	status := statusOK
	if resp.StatusCode >= 500 {
		status = statusError
	}
	return result{Code: resp.StatusCode, Header: resp.Header, Body: body.Bytes(), FaasStatus: status}
}
