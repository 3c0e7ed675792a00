package agent

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/edgefaas/edgefaas/cloudsync"
	"github.com/edgefaas/edgefaas/cloudsync/proto"
	"github.com/edgefaas/edgefaas/errdefs"
	"github.com/edgefaas/edgefaas/store"
)

// applier brings the device to the controller's desired set (DESIGN.md
// section 9): for each function whose revision is new, pull the image by
// digest (blobs the store holds are not fetched again), start the new
// version and check it becomes ready, then switch (deploy's prepare and
// install); when it does not, the old version keeps serving and the
// status says why. Functions the cloud placed and no longer names are
// removed; functions deployed locally are never touched unless the cloud
// deploys one of the same name, which it then takes over.
//
// One goroutine applies, one set at a time; a set that arrives meanwhile
// replaces any set still waiting. A revision that failed for a reason of
// its own (a corrupt image, never ready) is not tried again until the
// controller sends another revision or the agent restarts; one that failed
// because the controller could not be reached is tried again with backoff.
type applier struct {
	a    *Agent
	kick chan struct{}

	mu      sync.Mutex
	want    *proto.Desired
	status  map[string]proto.FunctionStatus
	failed  map[string]int64 // function -> revision that failed for good
	report  func(proto.Status)
	retries int // consecutive applies with a transient failure
}

// newApplier starts from what the cloud placed before a restart, as
// running: the first status (sent before any desired set is applied)
// must not tell the controller those functions are gone.
func newApplier(ctx context.Context, a *Agent) *applier {
	p := &applier{a: a, kick: make(chan struct{}, 1), status: map[string]proto.FunctionStatus{},
		failed: map[string]int64{}}
	placed, err := a.db.CloudFunctions(ctx)
	if err != nil {
		a.log.Error("desired state: reading the functions the cloud placed", "err", err)
	}
	for _, f := range placed {
		p.set(f.Name, f.Revision, proto.StateRunning, "", f.Revision, f.Digest)
	}
	return p
}

// desired takes a set from the link (without blocking it).
func (p *applier) desired(d proto.Desired) {
	p.mu.Lock()
	p.want = &d
	p.mu.Unlock()
	p.wake()
}

func (p *applier) wake() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// setReporter sends every status from now on through report, starting
// with the current one.
func (p *applier) setReporter(report func(proto.Status)) {
	p.mu.Lock()
	p.report = report
	p.mu.Unlock()
	p.publish()
}

// run applies sets until ctx ends.
func (p *applier) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-p.kick:
		}
		p.mu.Lock()
		d := p.want
		p.mu.Unlock()
		if d == nil {
			continue
		}
		if transient := p.apply(ctx, *d); transient && ctx.Err() == nil {
			p.retries++
			delay := cloudsync.Backoff(time.Second, time.Minute, p.retries)
			p.a.log.Info("desired state: retrying after a transient failure", "in", delay)
			time.AfterFunc(delay, p.wake)
		} else {
			p.retries = 0
		}
	}
}

// apply brings the device to d once; it reports whether something failed
// that may work when tried again.
func (p *applier) apply(ctx context.Context, d proto.Desired) (transient bool) {
	placed, err := p.a.db.CloudFunctions(ctx)
	if err != nil {
		p.a.log.Error("desired state: reading the functions the cloud placed", "err", err)
		return true
	}
	host, err := registryHost(p.a.cfg.CloudURL)
	if err != nil {
		p.a.log.Error("desired state: no registry host", "err", err)
		return false
	}
	wanted := map[string]bool{}
	for _, f := range d.Functions {
		wanted[f.Spec.Name] = true
		if ctx.Err() != nil {
			return true
		}
		cur, ok := placed[f.Spec.Name]
		// Revisions are never reused by the controller, so the same
		// revision and digest is the same deployment; the function must
		// still be there too (local deploys and removals of the cloud's
		// functions are refused, but a database may be restored).
		if ok && cur.Revision == f.Revision && cur.Digest == f.Digest && p.serves(ctx, f.Spec.Name, host, f) {
			p.set(f.Spec.Name, f.Revision, proto.StateRunning, "", f.Revision, cur.Digest)
			continue
		}
		p.mu.Lock()
		failedRev := p.failed[f.Spec.Name]
		p.mu.Unlock()
		if failedRev == f.Revision {
			continue // its status says why; a new revision is tried
		}
		if p.applyOne(ctx, host, f, cur) {
			transient = true
		}
	}
	for name := range placed {
		if wanted[name] {
			continue
		}
		if err := p.a.remove(ctx, name); err != nil && !errors.Is(err, errdefs.ErrNotFound) {
			p.a.log.Error("desired state: removing a function the cloud no longer places", "function", name, "err", err)
			transient = true
			continue
		}
		if err := p.a.db.DeleteCloudFunction(ctx, name); err != nil {
			p.a.log.Error("desired state", "function", name, "err", err)
			transient = true
			continue
		}
		p.set(name, 0, proto.StateRemoved, "", 0, "")
	}
	p.mu.Lock()
	for name := range p.status {
		if _, isPlaced := placed[name]; !wanted[name] && !isPlaced {
			delete(p.status, name) // a failed one undeployed: nothing to say
		}
	}
	for name := range p.failed {
		if !wanted[name] {
			delete(p.failed, name)
		}
	}
	p.mu.Unlock()
	p.publish()
	p.forgetRemoved()
	return transient
}

// serves reports whether the function runs the image the cloud placed.
func (p *applier) serves(ctx context.Context, name, host string, f proto.DesiredFunction) bool {
	fn, err := p.a.db.Function(ctx, name)
	return err == nil && fn.Spec.Image == imageRef(host, f)
}

// imageRef is where the agent pulls a desired function's image from: the
// controller's registry, by digest.
func imageRef(host string, f proto.DesiredFunction) string {
	return host + "/" + f.Repository + "@" + f.Digest
}

// applyOne deploys one function's new revision; cur is what the cloud
// placed before (zero if nothing). It reports a transient failure.
func (p *applier) applyOne(ctx context.Context, host string, f proto.DesiredFunction, cur store.CloudFunction) bool {
	name := f.Spec.Name
	log := p.a.log.With("function", name, "revision", f.Revision, "digest", f.Digest)
	p.set(name, f.Revision, proto.StateApplying, "", cur.Revision, cur.Digest)
	p.publish()
	spec := f.Spec
	spec.Image = imageRef(host, f)
	_, err := p.a.deployChecked(ctx, spec, 1)
	switch {
	case err == nil:
		p.mu.Lock()
		delete(p.failed, name)
		p.mu.Unlock()
		log.Info("desired state: applied")
		p.set(name, f.Revision, proto.StateRunning, "", f.Revision, f.Digest)
		if err := p.a.db.PutCloudFunction(ctx, store.CloudFunction{Name: name, Revision: f.Revision, Digest: f.Digest}); err != nil {
			// It serves; only the record is missing: the next apply
			// finds the revision unrecorded and deploys it again.
			log.Error("desired state: recording the applied revision", "err", err)
			return true
		}
		return false
	case errors.Is(err, errdefs.ErrUnavailable), errors.Is(err, errdefs.ErrPermission), ctx.Err() != nil:
		// The controller unreachable, or refusing the device's
		// credential (a clock far off, as on a gateway without a
		// real-time clock before NTP): try again later.
		log.Warn("desired state: not applied yet", "err", err)
		p.set(name, f.Revision, proto.StateApplying, "waiting to retry: "+err.Error(), cur.Revision, cur.Digest)
		return true
	}
	p.mu.Lock()
	p.failed[name] = f.Revision
	p.mu.Unlock()
	// deploy installs nothing that failed: whatever served before still does.
	state, serving, digest := proto.StateFailed, int64(0), ""
	if _, lerr := p.a.db.Function(ctx, name); lerr == nil {
		state, serving, digest = proto.StateRolledBack, cur.Revision, cur.Digest
	}
	log.Error("desired state: new revision failed; kept what served before", "state", state, "err", err)
	p.set(name, f.Revision, state, err.Error(), serving, digest)
	return false
}

// set records one function's state.
func (p *applier) set(name string, rev int64, state, reason string, serving int64, digest string) {
	reason = cutReason(reason)
	p.mu.Lock()
	defer p.mu.Unlock()
	old, ok := p.status[name]
	if ok && old.Revision == rev && old.State == state && old.Reason == reason && old.Serving == serving && old.Digest == digest {
		return
	}
	p.status[name] = proto.FunctionStatus{Name: name, Revision: rev, State: state, Reason: reason, Serving: serving,
		Digest: digest, AtMs: time.Now().UnixMilli()}
}

// cutReason makes a reason valid UTF-8 of at most proto.MaxReason bytes,
// cut at a character's start: the controller refuses (and drops the link
// of) a status whose reason is longer, and JSON would turn a cut character
// into three bytes.
func cutReason(r string) string {
	r = strings.ToValidUTF8(r, "?")
	if len(r) <= proto.MaxReason {
		return r
	}
	cut := proto.MaxReason - len("…")
	for cut > 0 && !utf8.RuneStart(r[cut]) {
		cut--
	}
	return r[:cut] + "…"
}

// publish hands the whole status to the link.
func (p *applier) publish() {
	p.mu.Lock()
	report := p.report
	st := proto.Status{Functions: make([]proto.FunctionStatus, 0, len(p.status))}
	for _, s := range p.status {
		st.Functions = append(st.Functions, s)
	}
	p.mu.Unlock()
	slices.SortFunc(st.Functions, func(a, b proto.FunctionStatus) int { return cmp.Compare(a.Name, b.Name) })
	if report != nil {
		report(st)
	}
}

// forgetRemoved drops the removed functions once reported.
func (p *applier) forgetRemoved() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for name, s := range p.status {
		if s.State == proto.StateRemoved {
			delete(p.status, name)
		}
	}
}

// registryHost is the controller's host[:port]: its registry serves on the
// same address as the link.
func registryHost(cloudURL string) (string, error) {
	u, err := url.Parse(cloudURL)
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("cloud URL %q: no host: %w", cloudURL, errdefs.ErrInvalid)
	}
	return u.Host, nil
}

// notCloudPlaced refuses a local deploy or removal of a function the cloud
// placed: the controller's deployment is its source of truth, and a local
// change would be undone, or reported as the cloud's, at the next desired
// set. Change it with edgecloud deploy or undeploy.
func (a *Agent) notCloudPlaced(ctx context.Context, name string) error {
	placed, err := a.db.CloudFunctions(ctx)
	if err != nil {
		return err
	}
	if f, ok := placed[name]; ok {
		return fmt.Errorf("function %q is placed by the cloud controller (deployment revision %d): change it there "+
			"(edgecloud deploy or undeploy): %w", name, f.Revision, errdefs.ErrConflict)
	}
	return nil
}
