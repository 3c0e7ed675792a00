package mqtt

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/edgefaas/edgefaas/api"
	"github.com/edgefaas/edgefaas/internal/testmqtt"
	"github.com/edgefaas/edgefaas/store"
)

// These tests run the Service against real brokers (mosquitto started by
// the test, and the embedded one) and a real SQLite file. The function is
// a Go func: invoking sandboxes is the agent's part, tested end to end in
// package integration.

func openDB(t testing.TB, dir string) *store.DB {
	t.Helper()
	db, err := store.Open(t.Context(), filepath.Join(dir, "edgefaas.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func startService(t *testing.T, cfg Config) *Service {
	t.Helper()
	if cfg.DB == nil {
		cfg.DB = openDB(t, t.TempDir())
	}
	if cfg.ClientID == "" {
		cfg.ClientID = "edgefaas-test-" + strings.ReplaceAll(t.Name(), "/", "-")
	}
	if cfg.Broker == BrokerEmbedded && cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
		cfg.Anonymous = true
	}
	s, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// brokerAddr is host:port of the broker the service uses.
func brokerAddr(s *Service) string {
	if e, ok := s.link.(*embedded); ok {
		return e.addr
	}
	return strings.TrimPrefix(s.cfg.Broker, "tcp://")
}

// testClient is a sensor: a paho client with a clean session.
func testClient(t *testing.T, addr string) paho.Client {
	t.Helper()
	c := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + addr).
		SetClientID(fmt.Sprintf("sensor-%d", time.Now().UnixNano())).SetOrderMatters(false))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect to %s: %v", addr, tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return c
}

// collector records the messages a test client receives.
type collector struct {
	mu   sync.Mutex
	msgs map[string][]string // topic -> payloads
	n    int
}

func collect(t *testing.T, c paho.Client, filter string) *collector {
	t.Helper()
	col := &collector{msgs: map[string][]string{}}
	tok := c.Subscribe(filter, 1, func(_ paho.Client, m paho.Message) {
		col.mu.Lock()
		col.msgs[m.Topic()] = append(col.msgs[m.Topic()], string(m.Payload()))
		col.n++
		col.mu.Unlock()
	})
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe %s: %v", filter, tok.Error())
	}
	return col
}

func (c *collector) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

func (c *collector) get(topic string) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.msgs[topic])
}

func publish(t *testing.T, c paho.Client, qos byte, topic, payload string) {
	t.Helper()
	tok := c.Publish(topic, qos, false, payload)
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publish %s: %v", topic, tok.Error())
	}
}

func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for delay := time.Millisecond; !cond(); delay = min(2*delay, 50*time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(delay)
	}
}

// echo answers "echo:" and the payload.
func echo(_ context.Context, d Delivery) Outcome {
	return Outcome{OK: true, Body: append([]byte("echo:"), d.Payload...), Status: "ok"}
}

// brokers runs a test against mosquitto and the embedded broker.
func brokers(t *testing.T, run func(t *testing.T, broker string)) {
	t.Run("mosquitto", func(t *testing.T) {
		m := testmqtt.Start(t, false)
		run(t, m.URL())
	})
	t.Run("embedded", func(t *testing.T) { run(t, BrokerEmbedded) })
}

func TestRepliesBothBrokers(t *testing.T) {
	brokers(t, func(t *testing.T, broker string) {
		var calls atomic.Int64
		s := startService(t, Config{Broker: broker, Invoke: func(ctx context.Context, d Delivery) Outcome {
			calls.Add(1)
			return echo(ctx, d)
		}})
		bind(t, s, "f", api.MQTTBinding{Filter: "in/+/data", Reply: "out/{1}", QoS: 1})
		bind(t, s, "g", api.MQTTBinding{Filter: "in/#", QoS: 1}) // overlaps: a message runs both
		c := testClient(t, brokerAddr(s))
		col := collect(t, c, "out/#")
		waitSubscribed(t, s)
		const n = 200
		for i := range n {
			publish(t, c, 1, fmt.Sprintf("in/dev%d/data", i%4), fmt.Sprint(i))
		}
		waitFor(t, 20*time.Second, "replies", func() bool { return col.count() >= n })
		waitFor(t, 10*time.Second, "calls done", func() bool { return calls.Load() >= 2*n && s.Stats().Handled == 2*n })
		got := col.get("out/dev1")
		if len(got) != n/4 || !slices.Contains(got, "echo:5") {
			t.Fatalf("replies on out/dev1: %d (%q...), want %d with echo:5", len(got), got[:min(3, len(got))], n/4)
		}
		if st := s.Stats(); st.Received != n || st.InboxDepth != 0 {
			t.Errorf("stats %+v: want %d received and an empty inbox", st, n)
		}
	})
}

func bind(t *testing.T, s *Service, fn string, bs ...api.MQTTBinding) {
	t.Helper()
	if err := s.SetBindings(fn, bs); err != nil {
		t.Fatal(err)
	}
}

// waitSubscribed waits until an external broker link has subscribed.
func waitSubscribed(t testing.TB, s *Service) {
	t.Helper()
	if l, ok := s.link.(*pahoLink); ok {
		waitFor(t, 10*time.Second, "broker connection and subscriptions", func() bool {
			e := l.epoch.Load()
			return e > 0 && l.ready.Load() == e && l.client.IsConnectionOpen()
		})
	}
}

func TestRetriesThenDeadLetter(t *testing.T) {
	brokers(t, func(t *testing.T, broker string) {
		var attempts atomic.Int64
		s := startService(t, Config{Broker: broker, Retries: 2, Backoff: 10 * time.Millisecond,
			Invoke: func(_ context.Context, d Delivery) Outcome {
				attempts.Add(1)
				return Outcome{Status: "error", Error: fmt.Sprintf("exit 3 on attempt %d", d.Attempt)}
			}})
		bind(t, s, "bad", api.MQTTBinding{Filter: "jobs/+", Reply: "done/{1}", QoS: 1})
		c := testClient(t, brokerAddr(s))
		col := collect(t, c, DeadLetterPrefix+"#")
		waitSubscribed(t, s)
		publish(t, c, 1, "jobs/7", "payload 7")
		waitFor(t, 10*time.Second, "dead letter", func() bool { return col.count() >= 1 })
		var dl DeadLetter
		if err := json.Unmarshal([]byte(col.get(DeadLetterPrefix + "bad")[0]), &dl); err != nil {
			t.Fatal(err)
		}
		if dl.Attempts != 3 || dl.Topic != "jobs/7" || dl.Payload != "payload 7" || dl.Error != "exit 3 on attempt 3" || dl.Status != "error" {
			t.Fatalf("dead letter %+v", dl)
		}
		if n := attempts.Load(); n != 3 {
			t.Errorf("%d attempts, want 3", n)
		}
		if st := s.Stats(); st.Retries != 2 || st.DeadLetters != 1 {
			t.Errorf("stats %+v", st)
		}
	})
}

// TestOrdered: an ordered binding runs one message per topic at a time, in
// order, while topics run in parallel.
func TestOrdered(t *testing.T) {
	brokers(t, func(t *testing.T, broker string) {
		var mu sync.Mutex
		seen := map[string][]string{}
		busy := map[string]bool{}
		var overlap atomic.Bool
		s := startService(t, Config{Broker: broker, Workers: 8, Invoke: func(_ context.Context, d Delivery) Outcome {
			mu.Lock()
			if busy[d.Topic] {
				overlap.Store(true)
			}
			busy[d.Topic] = true
			mu.Unlock()
			time.Sleep(time.Millisecond) // the work of the function, so that overlap would show
			mu.Lock()
			busy[d.Topic] = false
			seen[d.Topic] = append(seen[d.Topic], string(d.Payload))
			mu.Unlock()
			return Outcome{OK: true}
		}})
		bind(t, s, "f", api.MQTTBinding{Filter: "seq/+", QoS: 1, Ordered: true})
		waitSubscribed(t, s)
		c := testClient(t, brokerAddr(s))
		const n = 50
		var want []string
		var toks []paho.Token
		for i := range n {
			want = append(want, fmt.Sprint(i))
			for _, topic := range []string{"seq/a", "seq/b"} {
				toks = append(toks, c.Publish(topic, 1, false, fmt.Sprint(i))) // in flight together
			}
		}
		for _, tok := range toks {
			tok.Wait()
		}
		waitFor(t, 20*time.Second, "all handled", func() bool { return s.Stats().Handled == 2*n })
		mu.Lock()
		defer mu.Unlock()
		for _, topic := range []string{"seq/a", "seq/b"} {
			if !slices.Equal(seen[topic], want) {
				t.Errorf("%s ran in order %v", topic, seen[topic])
			}
		}
		if overlap.Load() {
			t.Error("two messages of one topic ran at once")
		}
	})
}

// TestInboxSurvivesRestart: messages committed but not run when the
// service stops run after the next start, and the full inbox held back
// acknowledgements meanwhile (the broker kept the rest).
func TestInboxSurvivesRestart(t *testing.T) {
	m := testmqtt.Start(t, false)
	dir := t.TempDir()
	db := openDB(t, dir)
	release := make(chan struct{})
	var started atomic.Int64
	var handled sync.Map // payloads run, in either life of the service
	cfg := Config{Broker: m.URL(), DB: db, InboxSize: 5, Workers: 2, ClientID: "restart-test",
		Bindings: map[string][]api.MQTTBinding{"f": {{Filter: "r/#", QoS: 1}}},
		Invoke: func(ctx context.Context, d Delivery) Outcome {
			started.Add(1)
			<-release
			handled.Store(string(d.Payload), true)
			return Outcome{OK: true, Body: d.Payload}
		}}
	s := startService(t, cfg)
	waitSubscribed(t, s)
	c := testClient(t, fmt.Sprintf("127.0.0.1:%d", m.Port))
	for i := range 20 {
		// Asynchronous publishes: the broker holds what the agent does not ack.
		c.Publish("r/x", 1, false, fmt.Sprint(i))
	}
	waitFor(t, 10*time.Second, "a full inbox", func() bool { return s.Stats().InboxDepth == 5 && started.Load() == 2 })
	if st := s.Stats(); st.Received > 5+int64(cfg.Workers)+20 || st.InboxDepth > 5 {
		t.Fatalf("inbox past its bound: %+v", st)
	}
	close(release)
	s.Close()

	s2 := startService(t, cfg)
	waitFor(t, 20*time.Second, "all 20 handled", func() bool {
		for i := range 20 {
			if _, ok := handled.Load(fmt.Sprint(i)); !ok {
				return false
			}
		}
		return true
	})
	// The ones left unacknowledged came again, marked DUP, and were counted.
	if st := s2.Stats(); st.Redelivered == 0 {
		t.Errorf("no redelivered message counted: %+v", st)
	}
}

func TestQoS0OverflowDropped(t *testing.T) {
	release := make(chan struct{})
	s := startService(t, Config{Broker: BrokerEmbedded, InboxSize: 2, Workers: 1, Invoke: func(context.Context, Delivery) Outcome {
		<-release
		return Outcome{OK: true}
	}})
	defer close(release)
	bind(t, s, "f", api.MQTTBinding{Filter: "q0", QoS: 0})
	c := testClient(t, brokerAddr(s))
	for range 10 {
		publish(t, c, 0, "q0", "x")
	}
	waitFor(t, 10*time.Second, "drops", func() bool { return s.Stats().Dropped == 8 })
	if st := s.Stats(); st.InboxDepth != 2 || st.Refused != 8 {
		t.Fatalf("stats %+v: want 2 in the inbox, 8 refused", st)
	}
}

func TestRefusedMessages(t *testing.T) {
	var calls atomic.Int64
	s := startService(t, Config{Broker: BrokerEmbedded, MaxPayload: 10, Invoke: func(context.Context, Delivery) Outcome {
		calls.Add(1)
		return Outcome{OK: true}
	}})
	bind(t, s, "f", api.MQTTBinding{Filter: "lim/#", QoS: 1})
	c := testClient(t, brokerAddr(s))
	publish(t, c, 1, "lim/big", strings.Repeat("x", 11))
	publish(t, c, 1, "lim/ok", "small")
	waitFor(t, 10*time.Second, "the small one", func() bool { return s.Stats().Handled == 1 })
	if st := s.Stats(); st.Refused != 1 || calls.Load() != 1 {
		t.Fatalf("stats %+v, calls %d: want the large one refused", st, calls.Load())
	}
}

func TestBindingValidation(t *testing.T) {
	s := startService(t, Config{Broker: BrokerNone})
	for _, b := range []api.MQTTBinding{{Filter: "a/#/b"}, {Filter: "a", QoS: 3}, {Filter: "a/+", Reply: "r/{2}"}, {Filter: ""}} {
		if err := s.SetBindings("f", []api.MQTTBinding{b}); err == nil {
			t.Errorf("binding %+v accepted", b)
		}
	}
	if err := s.SetBindings("f", []api.MQTTBinding{{Filter: "a/+", Reply: "r/{1}", QoS: 2}}); err != nil {
		t.Errorf("valid binding refused: %v", err)
	}
}

// TestChain: a reply that matches another binding runs that function too.
func TestChain(t *testing.T) {
	brokers(t, func(t *testing.T, broker string) {
		s := startService(t, Config{Broker: broker, Invoke: echo})
		bind(t, s, "first", api.MQTTBinding{Filter: "a/+", Reply: "b/{1}", QoS: 1})
		bind(t, s, "second", api.MQTTBinding{Filter: "b/+", Reply: "c/{1}", QoS: 1})
		c := testClient(t, brokerAddr(s))
		col := collect(t, c, "c/#")
		waitSubscribed(t, s)
		publish(t, c, 1, "a/x", "hi")
		waitFor(t, 10*time.Second, "the second reply", func() bool { return col.count() == 1 })
		if got := col.get("c/x"); len(got) != 1 || got[0] != "echo:echo:hi" {
			t.Fatalf("c/x got %q", got)
		}
	})
}

// TestResubscribeAfterSessionLoss: mosquitto without persistence restarts
// and forgets the agent's session and subscriptions; the link subscribes
// again on the new connection, so messages published after it still run.
func TestResubscribeAfterSessionLoss(t *testing.T) {
	m := testmqtt.Start(t, false)
	var calls atomic.Int64
	s := startService(t, Config{Broker: m.URL(), Invoke: func(context.Context, Delivery) Outcome {
		calls.Add(1)
		return Outcome{OK: true}
	}, Bindings: map[string][]api.MQTTBinding{"f": {{Filter: "r/+", QoS: 1}}}})
	waitSubscribed(t, s)
	l := s.link.(*pahoLink)
	first := l.epoch.Load()
	m.Restart()
	waitFor(t, 30*time.Second, "a new connection", func() bool { return l.epoch.Load() > first })
	waitSubscribed(t, s)
	c := testClient(t, fmt.Sprintf("127.0.0.1:%d", m.Port))
	publish(t, c, 1, "r/after", "x")
	waitFor(t, 10*time.Second, "the message after the restart", func() bool { return calls.Load() == 1 })
}

// TestShedAndResume: with the inbox and the intake full, the paho link
// leaves messages with the broker, unacknowledged; once the inbox has room
// it reconnects and the broker sends them again: every message runs.
func TestShedAndResume(t *testing.T) {
	m := testmqtt.Start(t, false)
	release := make(chan struct{})
	var seen sync.Map
	s := startService(t, Config{Broker: m.URL(), InboxSize: 5, Workers: 2, ClientID: "shed-test",
		Bindings: map[string][]api.MQTTBinding{"f": {{Filter: "shed", QoS: 1}}},
		Invoke: func(_ context.Context, d Delivery) Outcome {
			<-release
			seen.Store(string(d.Payload), true)
			return Outcome{OK: true}
		}})
	waitSubscribed(t, s)
	c := testClient(t, fmt.Sprintf("127.0.0.1:%d", m.Port))
	const n = 100
	for i := range n {
		c.Publish("shed", 1, false, fmt.Sprint(i))
	}
	waitFor(t, 10*time.Second, "messages left with the broker", func() bool { return s.Stats().Deferred > 0 })
	if st := s.Stats(); st.InboxDepth > 5 {
		t.Fatalf("inbox past its bound: %+v", st)
	}
	close(release)
	waitFor(t, 30*time.Second, "every message run", func() bool {
		for i := range n {
			if _, ok := seen.Load(fmt.Sprint(i)); !ok {
				return false
			}
		}
		return true
	})
}

// TestRetainedFlag: a message the broker retained reaches the function
// marked as retained when the binding subscribes; a live one does not.
func TestRetainedFlag(t *testing.T) {
	m := testmqtt.Start(t, false)
	c := testClient(t, fmt.Sprintf("127.0.0.1:%d", m.Port))
	if tok := c.Publish("state/door", 1, true, "open"); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	got := make(chan Delivery, 2)
	s := startService(t, Config{Broker: m.URL(), Bindings: map[string][]api.MQTTBinding{"f": {{Filter: "state/+", QoS: 1}}},
		Invoke: func(_ context.Context, d Delivery) Outcome { got <- d; return Outcome{OK: true} }})
	waitSubscribed(t, s)
	publish(t, c, 1, "state/window", "shut")
	for range 2 {
		select {
		case d := <-got:
			if want := d.Topic == "state/door"; d.Retained != want {
				t.Errorf("%s: retained %v, want %v", d.Topic, d.Retained, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("messages did not arrive")
		}
	}
}
