package agent

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
)

// gatewayHandler serves function invocations (synchronous and async),
// /healthz and /metrics.
func (a *Agent) gatewayHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/function/{name}", a.handleInvoke)
	mux.HandleFunc("/function/{name}/{path...}", a.handleInvoke)
	mux.HandleFunc("POST /async-function/{name}", a.handleAsync)
	mux.HandleFunc("POST /async-function/{name}/{path...}", a.handleAsync)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "ok\n")
	})
	mux.Handle("GET /metrics", a.metrics.handler())
	return mux
}

// acceptCall starts every gateway call: a call id (in the answer's
// X-Call-Id), the function named in the path, and the body within its
// request limit. When ok is false the answer has been written.
func (a *Agent) acceptCall(w http.ResponseWriter, r *http.Request) (f *function, callID string, body []byte, ok bool) {
	callID = newCallID()
	w.Header().Set("X-Call-Id", callID)
	f, err := a.invoker.lookup(r.PathValue("name"))
	if err != nil {
		writeResult(w, errResult(http.StatusNotFound, statusNotFound, err.Error()))
		return nil, "", nil, false
	}
	body, res, ok := readBody(w, r, f.fn.Spec.MaxRequest)
	if !ok {
		writeResult(w, res)
		return nil, "", nil, false
	}
	return f, callID, body, true
}

func (a *Agent) handleInvoke(w http.ResponseWriter, r *http.Request) {
	f, callID, body, ok := a.acceptCall(w, r)
	if !ok {
		return
	}
	res := a.run(r.Context(), f, call{
		ID: callID, Trigger: "http", Method: r.Method, Path: "/" + r.PathValue("path"),
		// The request's own header map, not a copy: the call ends before
		// the handler returns, and roundTrip copies what it forwards.
		Query: r.URL.RawQuery, Header: r.Header, Body: body,
	})
	writeResult(w, res)
}

// readBody reads a request body of at most limit bytes; when it cannot, res
// is the answer to give.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) (body []byte, res result, ok bool) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, errResult(http.StatusRequestEntityTooLarge, statusTooLarge,
				fmt.Sprintf("request body larger than the function's limit of %d bytes", limit)), false
		}
		return nil, errResult(http.StatusBadRequest, statusError, "reading request body: "+err.Error()), false
	}
	return body, result{}, true
}

func writeResult(w http.ResponseWriter, res result) {
	h := w.Header()
	for k, vs := range res.Header {
		h[k] = vs
	}
	if res.FaasStatus != statusOK && res.FaasStatus != statusError && h.Get("Content-Type") == "" {
		h.Set("Content-Type", "application/json")
	}
	if res.Code == http.StatusTooManyRequests {
		h.Set("Retry-After", "1")
	}
	h.Set("X-Faas-Status", res.FaasStatus)
	h.Set("X-Faas-Cold-Start", strconv.FormatBool(res.Cold))
	h.Set("Content-Length", strconv.Itoa(len(res.Body)))
	w.WriteHeader(res.Code)
	_, _ = w.Write(res.Body)
}

func newCallID() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
