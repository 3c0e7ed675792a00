package integration

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// callbacks records the results async calls post back.
type callbacks struct {
	mu   sync.Mutex
	got  map[string][]string // call id -> bodies received
	fail int                 // answer the first fail posts with 500
}

func (cb *callbacks) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	cb.mu.Lock()
	defer cb.mu.Unlock()
	if cb.fail > 0 {
		cb.fail--
		http.Error(w, "not now", http.StatusInternalServerError)
		return
	}
	id := r.Header.Get("X-Call-Id")
	cb.got[id] = append(cb.got[id], r.Header.Get("X-Faas-Status")+" "+r.Header.Get("X-Function-Status")+" "+string(b))
}

func (cb *callbacks) count() int {
	cb.mu.Lock()
	defer cb.mu.Unlock()
	return len(cb.got)
}

func TestAsyncCallsSurviveKill9(t *testing.T) {
	cb := &callbacks{got: map[string][]string{}, fail: 2}
	srv := httptest.NewServer(cb)
	defer srv.Close()
	a := startAgent(t)
	a.mustCLI("deploy", "slow", "--image", built.testfn, "--max", "1", "--concurrency", "1")

	// Refused up front: unknown function, bad callback URL.
	a.call(http.MethodPost, "/async-function/nope", "").want(t, 404, "not_found")
	req, _ := http.NewRequest(http.MethodPost, a.gw+"/async-function/slow", nil)
	req.Header.Set("X-Callback-Url", "file:///etc/passwd")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 400 {
		t.Fatalf("bad callback URL: %v %v", resp, err)
	}

	const calls = 20
	want := map[string]string{}
	for i := range calls {
		body := strings.Repeat("x", i)
		req, _ := http.NewRequest(http.MethodPost, a.gw+"/async-function/slow/sleep?for=150ms", strings.NewReader(body))
		req.Header.Set("X-Callback-Url", srv.URL+"/done")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		id := resp.Header.Get("X-Call-Id")
		if resp.StatusCode != http.StatusAccepted || id == "" {
			t.Fatalf("async call %d: %d, call id %q", i, resp.StatusCode, id)
		}
		want[id] = "ok 200 slept 150ms"
	}
	// One instance, 150 ms a call: most are still queued when the agent dies.
	waitFor(t, 10*time.Second, "a first callback", func() bool { return cb.count() > 0 })
	a.kill9()
	before := cb.count()
	if before == calls {
		t.Fatal("every call finished before the kill: the test proves nothing")
	}
	a.start()
	waitFor(t, 60*time.Second, "every async call to be delivered", func() bool { return cb.count() == calls })
	cb.mu.Lock()
	defer cb.mu.Unlock()
	for id, w := range want {
		got := cb.got[id]
		if len(got) == 0 || got[0] != w {
			t.Errorf("call %s: callbacks %q, want %q", id, got, w)
		}
	}
	t.Logf("%d of %d delivered before kill -9, the rest after the restart; callback failures retried", before, calls)
}
