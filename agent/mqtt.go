package agent

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/edgefaas/edgefaas/api"
	"github.com/edgefaas/edgefaas/metrics"
	"github.com/edgefaas/edgefaas/mqtt"
)

// MQTTConfig is the MQTT trigger's part of Config (DESIGN.md section 7).
// Zero values have the defaults of mqtt.Config, except Broker: "" is
// "none" here (edgefaasd's --mqtt-broker defaults to "embedded").
type MQTTConfig struct {
	Broker    string // "embedded", "none" or a tcp://, ssl://, ws:// URL
	Listen    string // the embedded broker's address; ":1883"
	AuthFile  string // the embedded broker's users and ACL
	Anonymous bool   // the embedded broker admits every client

	ClientID           string // of the persistent session; "edgefaas-" + the device id
	Username, Password string
	CAFile             string
	CertFile, KeyFile  string

	InboxSize  int
	MaxPayload int
	Retries    int
	Backoff    time.Duration
}

// mqttLink is the running MQTT trigger, or nil before Serve and with
// broker "none".
type mqttLink struct {
	mu  sync.Mutex // held while it starts and while bindings change
	svc *mqtt.Service
}

// startMQTT starts the trigger with every deployed function's bindings.
// Deploys that happen meanwhile wait on mu, so none is missed.
func (a *Agent) startMQTT(ctx context.Context) error {
	c := a.cfg.MQTT
	if c.Broker == "" || c.Broker == mqtt.BrokerNone {
		return nil
	}
	a.mqtt.mu.Lock()
	defer a.mqtt.mu.Unlock()
	fns, err := a.db.Functions(ctx)
	if err != nil {
		return err
	}
	bindings := map[string][]api.MQTTBinding{}
	for _, fn := range fns {
		if len(fn.Spec.MQTT) > 0 {
			bindings[fn.Spec.Name] = fn.Spec.MQTT
		}
	}
	if c.ClientID == "" {
		id, err := deviceID(a.cfg.StateDir)
		if err != nil {
			return err
		}
		c.ClientID = "edgefaas-" + id
	}
	svc, err := mqtt.Start(mqtt.Config{
		Broker: c.Broker, Listen: c.Listen, AuthFile: c.AuthFile, Anonymous: c.Anonymous,
		ClientID: c.ClientID, Username: c.Username, Password: c.Password,
		CAFile: c.CAFile, CertFile: c.CertFile, KeyFile: c.KeyFile,
		InboxSize: c.InboxSize, MaxPayload: c.MaxPayload, Retries: c.Retries, Backoff: c.Backoff,
		Bindings: bindings, DB: a.db, Invoke: a.invokeMQTT, Logger: a.log,
	})
	if err != nil {
		return err
	}
	a.mqtt.svc = svc
	registerMQTTMetrics(a.metrics.reg, svc)
	return nil
}

// setBindings follows a deploy or a removal.
func (a *Agent) setBindings(name string, bs []api.MQTTBinding) {
	a.mqtt.mu.Lock()
	defer a.mqtt.mu.Unlock()
	if a.mqtt.svc == nil {
		return
	}
	if err := a.mqtt.svc.SetBindings(name, bs); err != nil {
		a.log.Error("mqtt bindings not applied", "function", name, "err", err)
	}
}

func (a *Agent) stopMQTT() {
	a.mqtt.mu.Lock()
	svc := a.mqtt.svc
	a.mqtt.svc = nil
	a.mqtt.mu.Unlock()
	if svc != nil {
		svc.Close()
	}
}

func (a *Agent) mqttStatus() string {
	a.mqtt.mu.Lock()
	defer a.mqtt.mu.Unlock()
	if a.mqtt.svc == nil {
		return mqtt.BrokerNone
	}
	return a.mqtt.svc.Status()
}

// invokeMQTT runs one message as a call with trigger "mqtt": the payload is
// the body (POST / in http mode), the topic is in X-Mqtt-Topic and
// MQTT_TOPIC.
func (a *Agent) invokeMQTT(ctx context.Context, d mqtt.Delivery) mqtt.Outcome {
	h := http.Header{
		"X-Mqtt-Topic":  {d.Topic},
		"X-Mqtt-Qos":    {fmt.Sprint(d.QoS)},
		"X-Mqtt-Retain": {boolDigit(d.Retained)},
	}
	if d.Duplicate {
		h.Set("X-Mqtt-Duplicate", "1")
	}
	res := a.invokeByName(ctx, d.Function, call{ID: newCallID(), Trigger: "mqtt", Method: http.MethodPost,
		Path: "/", Header: h, Body: d.Payload, Topic: d.Topic})
	out := mqtt.Outcome{Status: res.FaasStatus}
	switch res.FaasStatus {
	case statusOK:
		out.OK, out.Body = true, res.Body
		return out
	case statusNotFound, statusTooLarge:
		out.Permanent = true
	}
	out.Error = fmt.Sprintf("%s (%d): %s", res.FaasStatus, res.Code, clip(res.Body, 512))
	if code := res.Header.Get("X-Faas-Exit-Code"); code != "" {
		out.Error = fmt.Sprintf("exit code %s: %s", code, clip(res.Body, 512))
	}
	return out
}

func boolDigit(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

func clip(b []byte, n int) string {
	s := strings.TrimSpace(string(b[:min(len(b), n)]))
	if len(b) > n {
		s += "..."
	}
	return s
}

// deviceID is this gateway's id for its MQTT session: kept in
// STATE/device-id, made once from /etc/machine-id and the state
// directory (so that two agents with their own state on one machine get
// their own sessions), or at random without a machine id. It survives
// restarts and upgrades; a new state directory is a new device.
func deviceID(stateDir string) (string, error) {
	path := filepath.Join(stateDir, "device-id")
	if b, err := os.ReadFile(path); err == nil && len(strings.TrimSpace(string(b))) > 0 {
		return strings.TrimSpace(string(b)), nil
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("device id: %w", err)
	}
	seed, err := os.ReadFile("/etc/machine-id")
	if err != nil || len(strings.TrimSpace(string(seed))) == 0 {
		seed = make([]byte, 16)
		_, _ = rand.Read(seed)
	}
	abs, _ := filepath.Abs(stateDir)
	sum := sha256.Sum256(append(append([]byte(strings.TrimSpace(string(seed))), 0), abs...))
	id := hex.EncodeToString(sum[:8])
	if err := os.WriteFile(path, []byte(id+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("device id: %w", err)
	}
	return id, nil
}

// registerMQTTMetrics adds the trigger's counters, read at scrape time.
func registerMQTTMetrics(reg *metrics.Registry, svc *mqtt.Service) {
	counters := []struct {
		name, help string
		v          func(mqtt.Stats) int64
	}{
		{"edgefaas_mqtt_received_total", "MQTT messages taken from the broker for the bindings.", func(s mqtt.Stats) int64 { return s.Received }},
		{"edgefaas_mqtt_redelivered_total", "Messages the broker sent again (DUP): possible duplicates, around crashes and reconnects.", func(s mqtt.Stats) int64 { return s.Redelivered }},
		{"edgefaas_mqtt_resumed_total", "Inbox and outbox rows a previous run left, run or sent again at start: possible duplicates.", func(s mqtt.Stats) int64 { return s.Resumed }},
		{"edgefaas_mqtt_refused_total", "Messages not run: invalid or too large topic or payload, no binding, or dropped.", func(s mqtt.Stats) int64 { return s.Refused }},
		{"edgefaas_mqtt_dropped_total", "QoS 0 messages dropped because the inbox was full.", func(s mqtt.Stats) int64 { return s.Dropped }},
		{"edgefaas_mqtt_deferred_total", "QoS 1 messages left with the broker, unacknowledged, while the inbox was full; they come again.", func(s mqtt.Stats) int64 { return s.Deferred }},
		{"edgefaas_mqtt_retries_total", "Failed invocations that were retried.", func(s mqtt.Stats) int64 { return s.Retries }},
		{"edgefaas_mqtt_dead_letters_total", "Messages published to edgefaas/deadletter/{function} after their last retry.", func(s mqtt.Stats) int64 { return s.DeadLetters }},
		{"edgefaas_mqtt_published_total", "Replies and dead letters the broker acknowledged.", func(s mqtt.Stats) int64 { return s.Published }},
	}
	for _, c := range counters {
		reg.CounterFunc(c.name, c.help, nil, func(emit func(float64, ...string)) { emit(float64(c.v(svc.Stats()))) })
	}
	reg.GaugeFunc("edgefaas_mqtt_inbox_depth", "Messages in the durable inbox (per binding) not yet done.", nil,
		func(emit func(float64, ...string)) { emit(float64(svc.Stats().InboxDepth)) })
	reg.GaugeFunc("edgefaas_mqtt_outbox_depth", "Replies and dead letters waiting to be published.", nil,
		func(emit func(float64, ...string)) { emit(float64(svc.Stats().OutboxDepth)) })
}
