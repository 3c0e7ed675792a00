package agent

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"testing"

	"github.com/edgefaas/edgefaas/api"
	"github.com/edgefaas/edgefaas/cgroups"
	"github.com/edgefaas/edgefaas/errdefs"
)

// FuzzDecodeSpec feeds arbitrary request bodies to the deploy handler's
// decoding path: decodeJSON into an api.FunctionSpec, then validate after
// WithDefaults, as deploy does. It must never panic; every rejection must be
// ErrInvalid (a 400, never a 500); and a spec that passes must hold the
// invariants the invoker and the sandbox rely on.
func FuzzDecodeSpec(f *testing.F) {
	for _, seed := range []string{
		``,
		`{}`,
		`null`,
		`{"name":"hello","image":"hello:latest"}`,
		`{"name":"hello","image":"hello:latest","mode":"exec","memory_bytes":134217728,"cpu_millis":500,"pids":64,` +
			`"timeout":"10s","concurrency":4,"env":{"A":"1","PATH":"/bin"},"max_request_bytes":1024,"max_response_bytes":2048}`,
		`{"name":"x","image":"i","timeout":10000000000}`,
		`{"name":"x","image":"i","timeout":-1}`,
		`{"name":"x","image":"i","timeout":"-5s"}`,
		`{"name":"x","image":"i","timeout":1e30}`,
		`{"name":"x","image":"i","timeout":"2562047h47m16.854775808s"}`,
		`{"name":"x","image":"i","memory_bytes":-9223372036854775808}`,
		`{"name":"x","image":"i","cpu_millis":9223372036854775807}`,
		`{"name":"x","image":"i","env":{"":"","A=B":"\u0000"}}`,
		`{"name":"X","image":"i","colour":"red"}`,
		`{"name":"x","image":"i"} trailing`,
		`[1,2,3]`,
		"{\"name\":\"\xff\xfe\",\"image\":\"i\"}",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		r := httptest.NewRequest(http.MethodPut, "/v1/functions/x", bytes.NewReader(body))
		var spec api.FunctionSpec
		if err := decodeJSON(r, &spec); err != nil {
			if !errors.Is(err, errdefs.ErrInvalid) {
				t.Fatalf("decodeJSON(%q) = %v; want an error wrapping ErrInvalid", body, err)
			}
			return
		}
		spec = spec.WithDefaults()
		if err := validate(spec); err != nil {
			if !errors.Is(err, errdefs.ErrInvalid) {
				t.Fatalf("validate(%+v) = %v; want an error wrapping ErrInvalid", spec, err)
			}
			return
		}
		switch {
		case !api.ValidName(spec.Name) || len(spec.Name) > 63:
			t.Fatalf("accepted name %q", spec.Name)
		case spec.Mode != api.ModeHTTP && spec.Mode != api.ModeExec:
			t.Fatalf("accepted mode %q", spec.Mode)
		case spec.Image == "":
			t.Fatal("accepted an empty image")
		case spec.Memory < cgroups.MinMemoryBytes || spec.CPU < cgroups.MinCPUMillis || spec.Pids <= 0:
			t.Fatalf("accepted limits memory %d cpu %d pids %d", spec.Memory, spec.CPU, spec.Pids)
		case spec.Timeout <= 0 || spec.Concurrency <= 0 || spec.MaxRequest <= 0 || spec.MaxResponse <= 0:
			// Concurrency sizes the call semaphore: zero would block
			// every call forever.
			t.Fatalf("accepted timeout %d concurrency %d request %d response %d",
				spec.Timeout, spec.Concurrency, spec.MaxRequest, spec.MaxResponse)
		}
		// What the agent stores and the CLI reads back must be the same
		// spec: the JSON form must round-trip. The env map is checked
		// entry by entry: json.Marshal sorts map keys, and how much sorting
		// that takes depends on the map's random iteration order, which
		// makes coverage flaky and stalls the fuzzer's minimization.
		env := spec.Env
		spec.Env = nil
		b, err := json.Marshal(spec)
		if err != nil {
			t.Fatalf("Marshal(%+v): %v", spec, err)
		}
		var back api.FunctionSpec
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatalf("accepted spec does not read back: %v\n%s", err, b)
		}
		if !reflect.DeepEqual(back, spec) {
			t.Fatalf("spec changed in a JSON round trip\n was  %+v\n now  %+v\n json %s", spec, back, b)
		}
		for k, v := range env {
			kb, _ := json.Marshal(k)
			vb, _ := json.Marshal(v)
			var k2, v2 string
			if json.Unmarshal(kb, &k2) != nil || json.Unmarshal(vb, &v2) != nil || k2 != k || v2 != v {
				t.Fatalf("env %q=%q reads back as %q=%q", k, v, k2, v2)
			}
		}
	})
}
