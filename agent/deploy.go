package agent

import (
	"context"
	"errors"
	"fmt"

	"github.com/edgefaas/edgefaas/api"
	"github.com/edgefaas/edgefaas/cgroups"
	"github.com/edgefaas/edgefaas/errdefs"
	"github.com/edgefaas/edgefaas/images"
	"github.com/edgefaas/edgefaas/mqtt"
)

func validate(spec api.FunctionSpec) error {
	if !api.ValidName(spec.Name) {
		return fmt.Errorf("function name %q: want lower-case letters, digits and '-', at most 63: %w", spec.Name, errdefs.ErrInvalid)
	}
	if spec.Mode != api.ModeHTTP && spec.Mode != api.ModeExec {
		return fmt.Errorf("mode %q: want http or exec: %w", spec.Mode, errdefs.ErrInvalid)
	}
	if spec.Image == "" {
		return fmt.Errorf("function %q: no image given: %w", spec.Name, errdefs.ErrInvalid)
	}
	lim := cgroups.Limits{MemoryBytes: spec.Memory, CPUMillis: spec.CPU, Pids: spec.Pids}
	if err := lim.Validate(); err != nil {
		return fmt.Errorf("function %q: %w", spec.Name, err)
	}
	if spec.Timeout < 0 || spec.Concurrency < 0 || spec.MaxRequest < 0 || spec.MaxResponse < 0 ||
		spec.MinInstances < 0 || spec.Queue < 0 || spec.Idle < 0 || spec.RecycleAfter < 0 || spec.RecycleMemory < 0 {
		return fmt.Errorf("function %q: negative timeout, concurrency, size, instance or queue limit: %w", spec.Name, errdefs.ErrInvalid)
	}
	if spec.MinInstances > spec.MaxInstances {
		return fmt.Errorf("function %q: --min %d is more than --max %d: %w", spec.Name, spec.MinInstances, spec.MaxInstances, errdefs.ErrInvalid)
	}
	for _, b := range spec.MQTT {
		if err := mqtt.ValidateBinding(b); err != nil {
			return fmt.Errorf("function %q: mqtt binding: %w", spec.Name, err)
		}
	}
	return nil
}

// deploy validates a spec, resolves its image to a digest and a root
// (pulling a registry reference the agent lacks), starts the new version
// (when the old one has instances up), records the function and installs
// it in the invoker. The older version drains: its calls in flight finish,
// queued calls move to the new one. Once it is gone, what it alone used is
// collected (its root must outlive its last call).
func (a *Agent) deploy(ctx context.Context, spec api.FunctionSpec) (api.Function, error) {
	return a.deployChecked(ctx, spec, 0)
}

// deployChecked deploys with at least ready instances of the new version
// started and ready before it takes over. The cloud's rollouts ask for one:
// a version that never becomes ready must fail its deploy, not its first
// call, even when the old one runs no instance.
func (a *Agent) deployChecked(ctx context.Context, spec api.FunctionSpec, ready int) (api.Function, error) {
	fn, old, err := a.deployLocked(ctx, spec, ready)
	if err != nil {
		return api.Function{}, err
	}
	if old != nil {
		old.awaitGone(ctx)
		if ctx.Err() == nil { // else the next collection takes it
			a.collectImages(ctx)
		}
	}
	return fn, nil
}

func (a *Agent) deployLocked(ctx context.Context, spec api.FunctionSpec, ready int) (api.Function, *function, error) {
	a.imageMu.RLock()
	defer a.imageMu.RUnlock()
	img, err := a.imageFor(ctx, spec.Image)
	if err != nil {
		return api.Function{}, nil, err
	}
	if spec.Mode == "" {
		spec.Mode = img.Config.Labels[images.ModeLabel] // as built by edgefaas build
	}
	spec = spec.WithDefaults()
	if err := validate(spec); err != nil {
		return api.Function{}, nil, err
	}
	tmpl, err := a.resolve(ctx, spec, img.Digest)
	if err != nil {
		return api.Function{}, nil, err
	}
	// The new version's instances are ready before it is recorded and
	// takes over; when they do not start, the old version keeps serving.
	nf, err := a.invoker.prepare(ctx, api.Function{Spec: spec, ImageDigest: img.Digest}, tmpl, ready)
	if err != nil {
		return api.Function{}, nil, fmt.Errorf("function %q: new version did not become ready, the old one keeps serving: %w", spec.Name, err)
	}
	fn, err := a.db.PutFunction(ctx, api.Function{Spec: spec, ImageDigest: img.Digest})
	if err != nil {
		nf.retire(nil)
		return api.Function{}, nil, err
	}
	nf.fn = fn // not yet shared: install publishes it
	old := a.invoker.install(nf)
	a.setBindings(spec.Name, spec.MQTT)
	a.log.Info("deployed", "function", spec.Name, "version", fn.Version, "image", img.Digest, "mode", spec.Mode)
	return fn, old, nil
}

// imageFor finds the image ref names, pulling it when it is a registry
// reference the agent does not have. The caller holds a.imageMu.
func (a *Agent) imageFor(ctx context.Context, ref string) (api.Image, error) {
	img, err := a.db.Image(ctx, ref)
	if err == nil || !errors.Is(err, errdefs.ErrNotFound) {
		return img, err
	}
	if !images.IsRemote(ref) {
		return api.Image{}, fmt.Errorf("image %q: import it first (edgefaas image import FILE), "+
			"or give a registry reference (host/repo:tag): %w", ref, err)
	}
	return a.pullLocked(ctx, ref, nil)
}

// resolve finds the image's root (unpacking it when missing) and how to
// start its program.
func (a *Agent) resolve(ctx context.Context, spec api.FunctionSpec, digest string) (process, error) {
	img, err := a.images.Get(ctx, digest)
	if err != nil {
		return process{}, err
	}
	root, err := a.images.RootFS(ctx, digest)
	if err != nil {
		return process{}, err
	}
	return resolveProcess(root, img.Config, spec)
}

// loadFunctions installs every registered function in the invoker at start:
// the registry survives restarts, instances start on the first call.
func (a *Agent) loadFunctions(ctx context.Context) error {
	fns, err := a.db.Functions(ctx)
	if err != nil {
		return err
	}
	for _, fn := range fns {
		tmpl, err := a.resolve(ctx, fn.Spec, fn.ImageDigest)
		if err != nil {
			a.log.Error("function cannot run: its image is missing or broken", "function", fn.Spec.Name, "err", err)
			continue
		}
		// MinInstances are started by the reaper, not here: a slow or
		// broken image must not hold up the agent's start.
		a.invoker.install(newFunction(a.invoker, fn, tmpl))
	}
	return nil
}

func (a *Agent) remove(ctx context.Context, name string) error {
	if err := a.db.DeleteFunction(ctx, name); err != nil {
		return err
	}
	a.invoker.remove(ctx, name)
	a.setBindings(name, nil)
	if err := a.logs.Remove(name); err != nil {
		a.log.Warn("removing function logs", "function", name, "err", err)
	}
	a.log.Info("removed", "function", name)
	a.collectImages(ctx)
	return nil
}
