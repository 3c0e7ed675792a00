package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/pprof"
	"runtime"

	"github.com/edgefaas/edgefaas/api"
	"github.com/edgefaas/edgefaas/errdefs"
)

// maxSpecBytes bounds a JSON request body on the admin API.
const maxSpecBytes = 1 << 20

// adminHandler is the admin API of DESIGN.md section 3, served on the unix
// socket (whose file mode is the access control).
func (a *Agent) adminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/functions", a.handleListFunctions)
	mux.HandleFunc("POST /v1/functions", a.handleDeploy)
	mux.HandleFunc("PUT /v1/functions/{name}", a.handleDeploy)
	mux.HandleFunc("GET /v1/functions/{name}", a.handleGetFunction)
	mux.HandleFunc("DELETE /v1/functions/{name}", a.handleRemove)
	mux.HandleFunc("GET /v1/images", a.handleListImages)
	mux.HandleFunc("POST /v1/images", a.handleImport)
	mux.HandleFunc("DELETE /v1/images/{ref}", a.handleRemoveImage)
	mux.HandleFunc("POST /v1/images/prune", a.handlePrune)
	mux.HandleFunc("GET /v1/info", a.handleInfo)
	mux.HandleFunc("GET /v1/usage", a.handleUsage)
	// Profiling, on the admin socket only (its file mode is the access
	// control): go tool pprof http+unix is not a thing, so use
	// curl --unix-socket SOCK http://x/debug/pprof/profile?seconds=10 > cpu.pprof
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /v1/functions/{name}/logs", a.handleLogs)
	return mux
}

func (a *Agent) handleListFunctions(w http.ResponseWriter, r *http.Request) {
	fns, err := a.db.Functions(r.Context())
	if err != nil {
		writeError(w, err)
		return
	}
	placed, err := a.db.CloudFunctions(r.Context())
	if err != nil {
		writeError(w, err)
		return
	}
	running := a.invoker.instances()
	if fns == nil {
		fns = []api.Function{}
	}
	for i := range fns {
		fns[i].Instances = running[fns[i].Spec.Name]
		fns[i].CloudRevision = placed[fns[i].Spec.Name].Revision
	}
	writeJSON(w, http.StatusOK, fns)
}

func (a *Agent) handleGetFunction(w http.ResponseWriter, r *http.Request) {
	fn, err := a.db.Function(r.Context(), r.PathValue("name"))
	if err != nil {
		writeError(w, err)
		return
	}
	fn.Instances = a.invoker.instances()[fn.Spec.Name]
	placed, err := a.db.CloudFunctions(r.Context())
	if err != nil {
		writeError(w, err)
		return
	}
	fn.CloudRevision = placed[fn.Spec.Name].Revision
	writeJSON(w, http.StatusOK, fn)
}

func (a *Agent) handleDeploy(w http.ResponseWriter, r *http.Request) {
	var spec api.FunctionSpec
	if err := decodeJSON(r, &spec); err != nil {
		writeError(w, err)
		return
	}
	if name := r.PathValue("name"); name != "" {
		if spec.Name != "" && spec.Name != name {
			writeError(w, fmt.Errorf("name %q in the body differs from %q in the path: %w", spec.Name, name, errdefs.ErrInvalid))
			return
		}
		spec.Name = name
	}
	if err := a.notCloudPlaced(r.Context(), spec.Name); err != nil {
		writeError(w, err)
		return
	}
	fn, err := a.deploy(r.Context(), spec)
	if err != nil {
		writeError(w, err)
		return
	}
	code := http.StatusOK
	if fn.Version == 1 {
		code = http.StatusCreated
	}
	writeJSON(w, code, fn)
}

func (a *Agent) handleRemove(w http.ResponseWriter, r *http.Request) {
	if err := a.notCloudPlaced(r.Context(), r.PathValue("name")); err != nil {
		writeError(w, err)
		return
	}
	if err := a.remove(r.Context(), r.PathValue("name")); err != nil {
		writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *Agent) handleInfo(w http.ResponseWriter, r *http.Request) {
	fns, err := a.db.Functions(r.Context())
	if err != nil {
		writeError(w, err)
		return
	}
	imgs, err := a.db.Images(r.Context())
	if err != nil {
		writeError(w, err)
		return
	}
	n := 0
	for _, c := range a.invoker.instances() {
		n += c
	}
	writeJSON(w, http.StatusOK, api.Info{
		Version: api.Version, Arch: runtime.GOARCH, CgroupMode: a.sandboxes.CgroupMode().String(),
		StateDir: a.cfg.StateDir, Listen: a.gatewayAddr(), Functions: len(fns), Instances: n, Images: len(imgs),
		MQTT:  a.mqttStatus(),
		Cloud: a.cloudStatus(),
	})
}

func decodeJSON(r *http.Request, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, maxSpecBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("empty request body: %w", errdefs.ErrInvalid)
		}
		return fmt.Errorf("request body: %v: %w", err, errdefs.ErrInvalid)
	}
	if dec.Decode(&struct{}{}) != io.EOF {
		return fmt.Errorf("request body: data after the JSON value: %w", errdefs.ErrInvalid)
	}
	return nil
}
