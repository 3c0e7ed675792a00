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

// gatewayHandler serves function invocations, /healthz and /metrics.
func (a *Agent) gatewayHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/function/{name}", a.handleInvoke)
	mux.HandleFunc("/function/{name}/{path...}", a.handleInvoke)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "ok\n")
	})
	mux.Handle("GET /metrics", a.metrics.handler())
	return mux
}

func (a *Agent) handleInvoke(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	callID := newCallID()
	w.Header().Set("X-Call-Id", callID)
	f, err := a.invoker.lookup(name)
	if err != nil {
		writeResult(w, errResult(http.StatusNotFound, statusNotFound, err.Error()))
		return
	}
	limit := f.fn.Spec.MaxRequest
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeResult(w, errResult(http.StatusRequestEntityTooLarge, statusTooLarge,
				fmt.Sprintf("request body larger than the function's limit of %d bytes", limit)))
			return
		}
		writeResult(w, errResult(http.StatusBadRequest, statusError, "reading request body: "+err.Error()))
		return
	}
	res := a.run(r.Context(), f, call{
		ID: callID, Trigger: "http", Method: r.Method, Path: "/" + r.PathValue("path"),
		Query: r.URL.RawQuery, Header: r.Header.Clone(), Body: body,
	})
	writeResult(w, res)
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
