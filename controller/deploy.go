package controller

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/edgefaas/edgefaas/api"
	"github.com/edgefaas/edgefaas/cloudsync/proto"
	"github.com/edgefaas/edgefaas/errdefs"
)

// Deployments: the admin API that keeps them, the desired set each device
// is sent, and the rollout each deployment's devices report.

// MaxDeploymentBytes bounds one deployment's entry in a desired set, so
// that proto.MaxDesired of them fit a frame.
const MaxDeploymentBytes = (proto.MaxFrame - 4096) / proto.MaxDesired

// Deploy creates or changes a deployment, pinning its image to the digest
// the registry holds for it now, and sends the new desired sets.
func (s *Server) Deploy(ctx context.Context, req DeployRequest) (Deployment, error) {
	spec := req.Spec
	switch {
	case !api.ValidName(spec.Name):
		return Deployment{}, fmt.Errorf("deployment name %q: want lower-case letters, digits and '-', at most 63: %w", spec.Name, errdefs.ErrInvalid)
	case spec.Mode != "" && spec.Mode != api.ModeHTTP && spec.Mode != api.ModeExec:
		return Deployment{}, fmt.Errorf("mode %q: want http or exec: %w", spec.Mode, errdefs.ErrInvalid)
	case spec.Memory < 0 || spec.CPU < 0 || spec.Pids < 0 || spec.Timeout < 0 || spec.Concurrency < 0 ||
		spec.MinInstances < 0 || spec.MaxInstances < 0 || spec.Queue < 0 || spec.Idle < 0:
		return Deployment{}, fmt.Errorf("deployment %q: negative limit: %w", spec.Name, errdefs.ErrInvalid)
	case spec.MaxInstances > 0 && spec.MinInstances > spec.MaxInstances:
		return Deployment{}, fmt.Errorf("deployment %q: min instances %d over max %d: %w", spec.Name, spec.MinInstances, spec.MaxInstances, errdefs.ErrInvalid)
	case req.Image == "":
		return Deployment{}, fmt.Errorf("deployment %q: no image: %w", spec.Name, errdefs.ErrInvalid)
	}
	for _, b := range spec.MQTT {
		if b.Filter == "" || b.QoS > 2 {
			return Deployment{}, fmt.Errorf("deployment %q: MQTT binding %+v: %w", spec.Name, b, errdefs.ErrInvalid)
		}
	}
	// Every device's whole desired set goes in one frame: bounded by the
	// number of deployments and the size of each, it always fits.
	if b, _ := json.Marshal(proto.DesiredFunction{Spec: spec, Repository: strings.Repeat("r", 255), Digest: strings.Repeat("d", 71)}); len(b) > MaxDeploymentBytes {
		return Deployment{}, fmt.Errorf("deployment %q: spec of %d bytes encoded, limit %d (environment too large?): %w",
			spec.Name, len(b), MaxDeploymentBytes, errdefs.ErrTooLarge)
	}
	if err := ValidateLabels(req.Selector); err != nil {
		return Deployment{}, err
	}
	if deps, err := s.store.Deployments(ctx); err != nil {
		return Deployment{}, err
	} else if len(deps) >= proto.MaxDesired && !slices.ContainsFunc(deps, func(d Deployment) bool { return d.Name == spec.Name }) {
		return Deployment{}, fmt.Errorf("deployment %q: %d deployments already, the most a device takes: %w",
			spec.Name, len(deps), errdefs.ErrConflict)
	}
	repo, digest, err := s.ResolveImage(ctx, req.Image)
	if err != nil {
		return Deployment{}, fmt.Errorf("deployment %q: image %q: %w", spec.Name, req.Image, err)
	}
	spec.Image = repo + "@" + digest // what the agent will pull, relative to the controller
	d, err := s.store.PutDeployment(ctx, Deployment{Name: spec.Name, Image: req.Image, Repository: repo,
		Digest: digest, Selector: req.Selector, Spec: spec})
	if err != nil {
		return Deployment{}, err
	}
	s.log.Info("deployed", "deployment", d.Name, "revision", d.Revision, "image", req.Image, "digest", digest, "selector", d.Selector)
	s.desiredChanged()
	return d, nil
}

// Undeploy deletes a deployment: its devices remove the function.
func (s *Server) Undeploy(ctx context.Context, name string) error {
	if err := s.store.DeleteDeployment(ctx, name); err != nil {
		return err
	}
	s.log.Info("undeployed", "deployment", name)
	s.desiredChanged()
	return nil
}

// desiredFor is the set of functions a device with labels should run.
func desiredFor(labels map[string]string, deps []Deployment) proto.Desired {
	out := proto.Desired{Functions: []proto.DesiredFunction{}}
	for _, d := range deps {
		if d.Selects(labels) {
			out.Functions = append(out.Functions, proto.DesiredFunction{Revision: d.Revision,
				Repository: d.Repository, Digest: d.Digest, Spec: d.Spec})
		}
	}
	return out
}

// desiredChanged tells the pusher to send every link its desired set
// again. The generation is bumped after the store changed, so a link that
// was sent a set read at an older generation is sent the new one.
func (s *Server) desiredChanged() {
	s.desiredGen.Add(1)
	select {
	case s.pushKick <- struct{}{}:
	default: // a push is pending already; it reads the store after this change
	}
}

// pushParallel is how many desired sets the pusher writes at once.
const pushParallel = 64

// pusher sends desired sets after deployments change, one pass over the
// links per change (coalesced), until Close.
func (s *Server) pusher() {
	defer close(s.pushDone)
	for {
		select {
		case <-s.pingStop:
			return
		case <-s.pushKick:
		}
		gen := s.desiredGen.Load()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		deps, err := s.store.Deployments(ctx)
		cancel()
		if err != nil {
			s.log.Error("desired state not sent: reading deployments", "err", err)
			continue
		}
		// Writes run side by side, a bounded number at once: a link
		// whose peer stopped reading blocks its write up to WriteTimeout
		// and must not hold up the fleet.
		var wg sync.WaitGroup
		sem := make(chan struct{}, pushParallel)
		for _, l := range s.hub.all() {
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				if err := l.sendDesired(gen, deps); err != nil {
					l.log.Warn("desired state not sent", "err", err)
					_ = l.conn.Close() // the agent reconnects and is sent it then
				}
			})
		}
		wg.Wait()
	}
}

// sendDesired sends the link its desired set as deps (read at generation
// gen or later) give it, unless it was sent a newer or the same one.
func (l *link) sendDesired(gen int64, deps []Deployment) error {
	d := desiredFor(l.labels, deps)
	l.wmu.Lock()
	defer l.wmu.Unlock()
	if !l.welcomed || gen < l.desiredGen || (l.desired != nil && reflect.DeepEqual(*l.desired, d)) {
		return nil
	}
	if err := l.srv.write(l.conn, proto.TypeDesired, "", d); err != nil {
		return err
	}
	l.desiredGen, l.desired = gen, &d
	return nil
}

// Rollout is a deployment's progress on the devices it selects.
func (s *Server) Rollout(ctx context.Context, name string) (Rollout, error) {
	d, err := s.store.Deployment(ctx, name)
	if err != nil {
		return Rollout{}, err
	}
	devs, err := s.store.Devices(ctx)
	if err != nil {
		return Rollout{}, err
	}
	reports, err := s.store.DeviceFunctions(ctx, "", name)
	if err != nil {
		return Rollout{}, err
	}
	return s.rolloutOf(d, devs, reports), nil
}

// rolloutOf is d's rollout on devs given the devices' reports (of any
// functions: those of others are ignored), so that a list of deployments
// reads the store once, not once per deployment.
func (s *Server) rolloutOf(d Deployment, devs []Device, reports []DeviceFunction) Rollout {
	byDevice := map[string]DeviceFunction{}
	for _, r := range reports {
		if r.Name == d.Name {
			byDevice[r.Device] = r
		}
	}
	ro := Rollout{Deployment: d, Devices: []RolloutDevice{}}
	for _, dev := range devs {
		if dev.RevokedAt != nil || !d.Selects(dev.Labels) {
			continue
		}
		rd := RolloutDevice{Device: dev.ID, Hostname: dev.Hostname, Online: s.hub.get(dev.ID) != nil, State: StatePending}
		if r, ok := byDevice[dev.ID]; ok {
			rd.Serving, rd.Reported = r.Serving, r.UpdatedAt
			if r.Revision == d.Revision {
				rd.State, rd.Reason = r.State, r.Reason
			}
		}
		switch rd.State {
		case proto.StateRunning:
			ro.Running++
		case proto.StateApplying:
			ro.Applying++
		case proto.StateFailed, proto.StateRolledBack:
			ro.Failed++
		default:
			ro.Pending++
		}
		ro.Devices = append(ro.Devices, rd)
	}
	ro.Done = ro.Running == len(ro.Devices)
	ro.Settled = ro.Pending+ro.Applying == 0
	return ro
}

func (s *Server) handleDeploy(w http.ResponseWriter, r *http.Request) {
	var req DeployRequest
	if err := decodeBody(r, 256<<10, &req); err != nil {
		writeError(w, err)
		return
	}
	d, err := s.Deploy(r.Context(), req)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, d)
}

func (s *Server) handleDeployments(w http.ResponseWriter, r *http.Request) {
	ds, err := s.store.Deployments(r.Context())
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, nonNilSlice(ds))
}

func (s *Server) handleRollout(w http.ResponseWriter, r *http.Request) {
	ro, err := s.Rollout(r.Context(), r.PathValue("name"))
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, ro)
}

func (s *Server) handleUndeploy(w http.ResponseWriter, r *http.Request) {
	if err := s.Undeploy(r.Context(), r.PathValue("name")); err != nil {
		writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) handleDeviceFunctions(w http.ResponseWriter, r *http.Request) {
	fs, err := s.store.DeviceFunctions(r.Context(), r.PathValue("id"), "")
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, nonNilSlice(fs))
}

func nonNilSlice[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
