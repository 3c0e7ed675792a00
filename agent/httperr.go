package agent

import (
	"encoding/json"
	"net/http"

	"github.com/edgefaas/edgefaas/api"
	"github.com/edgefaas/edgefaas/errdefs"
)

func jsonError(msg, status string) []byte {
	b, _ := json.Marshal(api.Error{Error: msg, Status: status})
	return append(b, '\n')
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, err error) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(errdefs.HTTPStatus(err))
	_, _ = w.Write(jsonError(err.Error(), ""))
}
