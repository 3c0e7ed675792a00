package controller

import (
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/edgefaas/edgefaas/api"
	"github.com/edgefaas/edgefaas/cloudsync/proto"
	"github.com/edgefaas/edgefaas/errdefs"
)

// The dashboard's pages: each reads what it shows from the store and the
// hub, as the admin API does, and renders one template of web/.

func (ui *dashboard) funcs() template.FuncMap {
	return template.FuncMap{
		"labels": FormatLabels,
		"short":  ShortDigest,
		"gbs":    func(v float64) string { return strconv.FormatFloat(v, 'f', 4, 64) },
		"bytes":  formatBytes,
		"when": func(t time.Time) string {
			if t.IsZero() {
				return ""
			}
			return t.UTC().Format(time.RFC3339)
		},
		"ago": func(t time.Time) string {
			if t.IsZero() {
				return "never"
			}
			return formatAge(ui.sessions.now().Sub(t))
		},
		"ms": func(ms int64) string { return (time.Duration(ms) * time.Millisecond).Round(time.Second).String() },
		"failed": func(state string) bool {
			return state == proto.StateFailed || state == proto.StateRolledBack
		},
	}
}

func formatAge(d time.Duration) string {
	switch {
	case d < time.Second:
		return "now"
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d/time.Second))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d/time.Minute))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d/time.Hour))
	}
	return fmt.Sprintf("%dd ago", int(d/(24*time.Hour)))
}

func formatBytes(b int64) string {
	const unit = 1024
	if b < unit {
		return fmt.Sprintf("%d B", b)
	}
	v, i := float64(b), -1
	for v >= unit && i < 3 {
		v /= unit
		i++
	}
	return fmt.Sprintf("%.1f %ciB", v, "KMGT"[i])
}

// fleetRow is one device of the fleet table.
type fleetRow struct {
	DeviceStatus
	State     string // online, offline or revoked
	Functions int    // as its inventory lists them
}

func (ui *dashboard) fleetRow(d Device) fleetRow {
	row := fleetRow{DeviceStatus: ui.srv.hub.status(d), State: "offline"}
	switch {
	case d.RevokedAt != nil:
		row.State = "revoked"
	case row.Online:
		row.State = "online"
	}
	if d.Inventory != nil {
		row.Functions = len(d.Inventory.Functions)
	}
	return row
}

func (ui *dashboard) fleet(w http.ResponseWriter, r *http.Request, sess session) {
	devs, err := ui.srv.store.Devices(r.Context())
	if err != nil {
		ui.fail(w, sess, err)
		return
	}
	rows := make([]fleetRow, 0, len(devs))
	online := 0
	for _, d := range devs {
		row := ui.fleetRow(d)
		if row.Online {
			online++
		}
		rows = append(rows, row)
	}
	ui.render(w, http.StatusOK, "fleet.html", view{Title: "Fleet", Nav: "fleet", CSRF: sess.csrf,
		Data: struct {
			Devices []fleetRow
			Online  int
		}{rows, online}})
}

func (ui *dashboard) device(w http.ResponseWriter, r *http.Request, sess session) {
	ctx, id := r.Context(), r.PathValue("id")
	d, err := ui.srv.store.Device(ctx, id)
	if err != nil {
		ui.fail(w, sess, err)
		return
	}
	fns, err := ui.srv.store.DeviceFunctions(ctx, id, "")
	if err != nil {
		ui.fail(w, sess, err)
		return
	}
	usage, err := ui.srv.store.Usage(ctx, UsageQuery{Device: id})
	if err != nil {
		ui.fail(w, sess, err)
		return
	}
	var failed []DeviceFunction
	for _, f := range fns {
		if f.State == proto.StateFailed || f.State == proto.StateRolledBack {
			failed = append(failed, f)
		}
	}
	ui.render(w, http.StatusOK, "device.html", view{Title: "Device " + id, Nav: "fleet", CSRF: sess.csrf,
		Data: struct {
			Device    fleetRow
			Functions []DeviceFunction
			Failed    []DeviceFunction
			Usage     []UsageRow
		}{ui.fleetRow(d), fns, failed, usage}})
}

// revokeConfirm asks before revoking: the dashboard runs no script, so
// the confirmation is a page of its own.
func (ui *dashboard) revokeConfirm(w http.ResponseWriter, r *http.Request, sess session) {
	d, err := ui.srv.store.Device(r.Context(), r.PathValue("id"))
	if err != nil {
		ui.fail(w, sess, err)
		return
	}
	ui.render(w, http.StatusOK, "revoke.html", view{Title: "Revoke " + d.ID, Nav: "fleet", CSRF: sess.csrf, Data: ui.fleetRow(d)})
}

func (ui *dashboard) revoke(w http.ResponseWriter, r *http.Request, sess session) {
	id := r.PathValue("id")
	if err := ui.srv.Revoke(r.Context(), id); err != nil {
		ui.fail(w, sess, err)
		return
	}
	http.Redirect(w, r, "/ui/devices/"+url.PathEscape(id), http.StatusSeeOther)
}

// deployForm is the deployment form as typed, shown again with an error.
type deployForm struct {
	Name, Image, Selector, Mode, Memory, Timeout, Min, Max, Env string
}

func readDeployForm(r *http.Request) deployForm {
	v := func(k string) string { return strings.TrimSpace(r.PostFormValue(k)) }
	return deployForm{Name: v("name"), Image: v("image"), Selector: v("selector"), Mode: v("mode"),
		Memory: v("memory"), Timeout: v("timeout"), Min: v("min"), Max: v("max"), Env: r.PostFormValue("env")}
}

// request parses the form with the command line's parsers, so a spec
// reads the same in both.
func (f deployForm) request() (DeployRequest, error) {
	spec := api.FunctionSpec{Name: f.Name, Mode: f.Mode}
	sel, err := ParseLabels(f.Selector)
	if err != nil {
		return DeployRequest{}, fmt.Errorf("selector: %w", err)
	}
	if f.Memory != "" {
		if spec.Memory, err = api.ParseBytes(f.Memory); err != nil {
			return DeployRequest{}, fmt.Errorf("memory: %v: %w", err, errdefs.ErrInvalid)
		}
	}
	if f.Timeout != "" {
		d, err := time.ParseDuration(f.Timeout)
		if err != nil || d < 0 {
			return DeployRequest{}, fmt.Errorf("timeout %q: want a duration like 10s: %w", f.Timeout, errdefs.ErrInvalid)
		}
		spec.Timeout = api.Duration(d)
	}
	for _, n := range []struct {
		name, in string
		out      *int
	}{{"min instances", f.Min, &spec.MinInstances}, {"max instances", f.Max, &spec.MaxInstances}} {
		if n.in == "" {
			continue
		}
		if *n.out, err = strconv.Atoi(n.in); err != nil {
			return DeployRequest{}, fmt.Errorf("%s %q: want a whole number: %w", n.name, n.in, errdefs.ErrInvalid)
		}
	}
	for _, line := range strings.Split(f.Env, "\n") {
		if line = strings.TrimSpace(line); line == "" {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || k == "" {
			return DeployRequest{}, fmt.Errorf("environment line %q: want K=V: %w", line, errdefs.ErrInvalid)
		}
		if spec.Env == nil {
			spec.Env = map[string]string{}
		}
		spec.Env[k] = v
	}
	return DeployRequest{Image: f.Image, Selector: sel, Spec: spec}, nil
}

func (ui *dashboard) deployments(w http.ResponseWriter, r *http.Request, sess session) {
	ui.deploymentsPage(w, r, sess, http.StatusOK, deployForm{Mode: api.ModeHTTP}, "")
}

// deploymentsPage lists the deployments with their rollouts, reading the
// store three times whatever their number, and the form.
func (ui *dashboard) deploymentsPage(w http.ResponseWriter, r *http.Request, sess session, code int, form deployForm, msg string) {
	ctx := r.Context()
	deps, err := ui.srv.store.Deployments(ctx)
	if err != nil {
		ui.fail(w, sess, err)
		return
	}
	devs, err := ui.srv.store.Devices(ctx)
	if err != nil {
		ui.fail(w, sess, err)
		return
	}
	reports, err := ui.srv.store.DeviceFunctions(ctx, "", "")
	if err != nil {
		ui.fail(w, sess, err)
		return
	}
	rollouts := make([]Rollout, 0, len(deps))
	for _, d := range deps {
		rollouts = append(rollouts, ui.srv.rolloutOf(d, devs, reports))
	}
	ui.render(w, code, "deployments.html", view{Title: "Deployments", Nav: "deployments", CSRF: sess.csrf, Error: msg,
		Data: struct {
			Rollouts []Rollout
			Form     deployForm
		}{rollouts, form}})
}

// deploy takes the form; its errors are shown above the form as typed.
func (ui *dashboard) deploy(w http.ResponseWriter, r *http.Request, sess session) {
	form := readDeployForm(r)
	req, err := form.request()
	if err == nil {
		var d Deployment
		if d, err = ui.srv.Deploy(r.Context(), req); err == nil {
			http.Redirect(w, r, "/ui/deployments/"+url.PathEscape(d.Name), http.StatusSeeOther)
			return
		}
	}
	ui.deploymentsPage(w, r, sess, errdefs.HTTPStatus(err), form, err.Error())
}

func (ui *dashboard) rollout(w http.ResponseWriter, r *http.Request, sess session) {
	ro, err := ui.srv.Rollout(r.Context(), r.PathValue("name"))
	if err != nil {
		ui.fail(w, sess, err)
		return
	}
	ui.render(w, http.StatusOK, "rollout.html", view{Title: "Rollout of " + ro.Deployment.Name, Nav: "deployments",
		CSRF: sess.csrf, Refresh: !ro.Settled, Data: ro})
}

func (ui *dashboard) usage(w http.ResponseWriter, r *http.Request, sess session) {
	rg, ok := usageRangeOf(r.URL.Query().Get("range"))
	if !ok {
		ui.fail(w, sess, fmt.Errorf("range %q: want 1h, 24h or 30d: %w", r.URL.Query().Get("range"), errdefs.ErrInvalid))
		return
	}
	first := rg.first(ui.sessions.now())
	q := UsageQuery{Since: first}
	series, err := ui.srv.store.UsageSeries(r.Context(), q, rg.Bucket)
	if err != nil {
		ui.fail(w, sess, err)
		return
	}
	totals, err := ui.srv.store.Usage(r.Context(), q)
	if err != nil {
		ui.fail(w, sess, err)
		return
	}
	ui.render(w, http.StatusOK, "usage.html", view{Title: "Usage, " + rg.Label, Nav: "usage", CSRF: sess.csrf,
		Data: struct {
			Range   usageRange
			Ranges  []usageRange
			Charts  []chart
			Series  []UsageBucket
			Totals  []UsageRow
			Buckets string
		}{rg, usageRanges, usageCharts(series, rg, first), series, totals, "by " + rg.Unit}})
}
