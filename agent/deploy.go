package agent

import (
	"context"
	"fmt"
	"regexp"

	"github.com/edgefaas/edgefaas/api"
	"github.com/edgefaas/edgefaas/cgroups"
	"github.com/edgefaas/edgefaas/errdefs"
	"github.com/edgefaas/edgefaas/images"
	"github.com/edgefaas/edgefaas/mqtt"
)

var validName = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

func validate(spec api.FunctionSpec) error {
	if !validName.MatchString(spec.Name) {
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
	if spec.Timeout < 0 || spec.Concurrency < 0 || spec.MaxRequest < 0 || spec.MaxResponse < 0 {
		return fmt.Errorf("function %q: negative timeout, concurrency or size limit: %w", spec.Name, errdefs.ErrInvalid)
	}
	for _, b := range spec.MQTT {
		if err := mqtt.ValidateBinding(b); err != nil {
			return fmt.Errorf("function %q: mqtt binding: %w", spec.Name, err)
		}
	}
	return nil
}

// deploy validates a spec, resolves its image to a digest and a root,
// records the function and installs it in the invoker. A running older
// version is stopped.
func (a *Agent) deploy(ctx context.Context, spec api.FunctionSpec) (api.Function, error) {
	img, err := a.db.Image(ctx, spec.Image)
	if err != nil {
		return api.Function{}, fmt.Errorf("image %q: import it first (edgefaas image import FILE): %w", spec.Image, err)
	}
	if spec.Mode == "" {
		spec.Mode = img.Config.Labels[images.ModeLabel] // as built by edgefaas build
	}
	spec = spec.WithDefaults()
	if err := validate(spec); err != nil {
		return api.Function{}, err
	}
	tmpl, err := a.resolve(ctx, spec, img.Digest)
	if err != nil {
		return api.Function{}, err
	}
	fn, err := a.db.PutFunction(ctx, api.Function{Spec: spec, ImageDigest: img.Digest})
	if err != nil {
		return api.Function{}, err
	}
	a.invoker.set(fn, tmpl)
	a.setBindings(spec.Name, spec.MQTT)
	a.log.Info("deployed", "function", spec.Name, "version", fn.Version, "image", img.Digest, "mode", spec.Mode)
	return fn, nil
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
		a.invoker.set(fn, tmpl)
	}
	return nil
}

func (a *Agent) remove(ctx context.Context, name string) error {
	if err := a.db.DeleteFunction(ctx, name); err != nil {
		return err
	}
	a.invoker.remove(name)
	a.setBindings(name, nil)
	if err := a.logs.Remove(name); err != nil {
		a.log.Warn("removing function logs", "function", name, "err", err)
	}
	a.log.Info("removed", "function", name)
	return nil
}
