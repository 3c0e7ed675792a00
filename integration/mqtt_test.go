package integration

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgefaas/edgefaas/internal/testmqtt"
)

// MQTT end to end: real edgefaasd binaries, real sandboxes, a real
// mosquitto started by the test (or the agent's embedded broker), and
// mosquitto_pub and mosquitto_sub as the sensors and the reply consumer.

// broker is where a test's messages go.
type broker struct {
	port      int
	mosquitto *testmqtt.Mosquitto // nil for the embedded broker
	args      []string            // edgefaasd flags for it
}

func mosquittoBroker(t testing.TB, persist bool) broker {
	m := testmqtt.Start(t, persist)
	return broker{port: m.Port, mosquitto: m, args: []string{"--mqtt-broker", m.URL()}}
}

func embeddedBroker(t testing.TB) broker {
	testmqtt.Require(t)
	port := testmqtt.FreePort(t)
	return broker{port: port, args: []string{"--mqtt-broker", "embedded",
		"--mqtt-listen", fmt.Sprintf("127.0.0.1:%d", port), "--mqtt-anonymous"}}
}

// mqttAgent starts an agent on br and waits until its link is up: with an
// external broker, a deploy made after that subscribes before it returns.
func mqttAgent(t testing.TB, br broker, extra ...string) *agentProc {
	t.Helper()
	a := startAgent(t, append(append([]string(nil), br.args...), extra...)...)
	a.waitMQTT()
	return a
}

func (a *agentProc) waitMQTT() {
	a.t.Helper()
	waitFor(a.t, 20*time.Second, "the agent's MQTT link", func() bool {
		out, err := a.cli("", "status")
		return err == nil && (strings.Contains(out, "(connected)") || strings.Contains(out, "mqtt       embedded"))
	})
}

// echoOverMQTT starts an agent on br with testfn bound as in/+ -> out/{1},
// and a mosquitto_sub on out/# (client id subID) that is subscribed.
func echoOverMQTT(t testing.TB, br broker, subID string) (*agentProc, *testmqtt.Sub) {
	t.Helper()
	a := mqttAgent(t, br)
	a.mustCLI("deploy", "echo", "--image", built.testfn, "--mqtt", "in/+=out/{1}")
	sub := testmqtt.Subscribe(t, br.port, subID, "out/#")
	sub.Ready(t, br.port, "out/probe")
	return a, sub
}

// payloadRE takes the message id out of the echo function's answer
// (testfn got "m-00042").
var payloadRE = regexp.MustCompile(`"(m-\d+)"$`)

// tally counts the replies per message id (probes left out).
func tally(sub *testmqtt.Sub) map[string]int {
	seen := map[string]int{}
	for _, l := range sub.Lines() {
		if m := payloadRE.FindStringSubmatch(l); m != nil {
			seen[m[1]]++
		}
	}
	return seen
}

// publishBurst publishes n QoS 1 messages m-00000... spread over topics
// in/s0..in/s{topics-1}, one mosquitto_pub per topic, at once.
func publishBurst(t testing.TB, port, n, topics int) {
	var wg sync.WaitGroup
	for k := range topics {
		var lines []string
		for i := k; i < n; i += topics {
			lines = append(lines, fmt.Sprintf("m-%05d", i))
		}
		wg.Go(func() { testmqtt.Publish(t, port, 1, fmt.Sprintf("in/s%d", k), lines) })
	}
	wg.Wait()
}

// metric reads one sample of /metrics (no labels, or the first series
// whose labels contain want).
func (a *agentProc) metric(t testing.TB, name, want string) float64 {
	t.Helper()
	resp, err := http.Get(a.gw + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		l := sc.Text()
		if !strings.HasPrefix(l, name+" ") && !(strings.HasPrefix(l, name+"{") && strings.Contains(l, want)) {
			continue
		}
		v, err := strconv.ParseFloat(l[strings.LastIndexByte(l, ' ')+1:], 64)
		if err != nil {
			t.Fatalf("metric line %q: %v", l, err)
		}
		return v
	}
	return 0
}

// TestMQTT10000Replies: 10,000 QoS 1 messages give 10,000 invocations and
// 10,000 replies with the right payloads, through mosquitto and through
// the embedded broker.
func TestMQTT10000Replies(t *testing.T) {
	const n = 10000
	for _, name := range []string{"mosquitto", "embedded"} {
		t.Run(name, func(t *testing.T) {
			br := embeddedBroker(t)
			if name == "mosquitto" {
				br = mosquittoBroker(t, false)
			}
			a, sub := echoOverMQTT(t, br, "it-replies-"+name)
			start := time.Now()
			publishBurst(t, br.port, n, 4)
			waitFor(t, 3*time.Minute, "10000 replies", func() bool { return len(tally(sub)) == n })
			t.Logf("%s: %d messages published, run and answered in %s", name, n, time.Since(start).Round(time.Millisecond))
			seen := tally(sub)
			for id, c := range seen {
				if c != 1 {
					t.Errorf("message %s answered %d times", id, c)
				}
			}
			// Every reply on the topic its message's wildcard named.
			for _, l := range sub.Lines() {
				if m := payloadRE.FindStringSubmatch(l); m != nil {
					i, _ := strconv.Atoi(strings.TrimPrefix(m[1], "m-"))
					if want := fmt.Sprintf("out/s%d testfn got %q", i%4, m[1]); l != want {
						t.Fatalf("reply %q, want %q", l, want)
					}
				}
			}
			if got := a.metric(t, "edgefaas_invocations_total", `trigger="mqtt"`); got != n {
				t.Errorf("%v mqtt invocations, want %d", got, n)
			}
			if got := a.metric(t, "edgefaas_mqtt_inbox_depth", ""); got != 0 {
				t.Errorf("inbox depth %v after all replies", got)
			}
		})
	}
}

// TestMQTTKill9MidBurst: the agent is killed (SIGKILL) in the middle of a
// 5,000-message burst and started again: every message is answered;
// duplicates happen only around the crash, and the agent counts them (as
// possible duplicates: redelivered by the broker, or resumed from its
// inbox and outbox).
func TestMQTTKill9MidBurst(t *testing.T) {
	const n = 5000
	br := mosquittoBroker(t, true)
	a, sub := echoOverMQTT(t, br, "it-kill9")
	publishBurst(t, br.port, n, 2)
	waitFor(t, time.Minute, "a fifth of the replies", func() bool { return len(tally(sub)) >= n/5 })
	a.kill9()
	// Replies the agent published just before it died may still be on
	// their way to mosquitto_sub: wait until nothing more arrives.
	waitFor(t, 10*time.Second, "replies in flight at the kill", func() bool {
		n := sub.Len()
		time.Sleep(200 * time.Millisecond)
		return sub.Len() == n
	})
	before := tally(sub)
	t.Logf("killed the agent after %d of %d replies", len(before), n)
	a.start() // same state directory: the inbox, the outbox and the device id
	waitFor(t, 3*time.Minute, "every message answered", func() bool { return len(tally(sub)) == n })
	seen := tally(sub)
	dups := 0
	for id, c := range seen {
		if c > 1 {
			dups += c - 1
			if before[id] == 0 {
				// Answered twice after the restart: not from the crash.
				t.Errorf("message %s answered %d times, none before the crash", id, c)
			}
		}
	}
	redelivered := a.metric(t, "edgefaas_mqtt_redelivered_total", "")
	resumed := a.metric(t, "edgefaas_mqtt_resumed_total", "")
	t.Logf("duplicates: %d replies sent twice; the restarted agent counted %v messages redelivered by the broker (DUP) and %v rows resumed from its inbox and outbox",
		dups, redelivered, resumed)
	// The agent counts every possible duplicate: each one seen is among them.
	if float64(dups) > redelivered+resumed {
		t.Errorf("%d duplicates, but the agent counted only %v possible ones", dups, redelivered+resumed)
	}
	// What can run twice: messages committed but not acknowledged (the
	// broker's in-flight window, 20), invocations whose completion was not
	// committed (16 workers plus a batch) and replies published but not
	// yet deleted from the outbox (a window of 32).
	if dups > 200 {
		t.Errorf("%d duplicates: more than the crash's in-flight bound", dups)
	}
}

// TestMQTTBrokerRestart: mosquitto (with persistence) restarts while the
// agent works through a backlog: nothing is lost. The function is slow (50
// ms a call) and the agent's inbox small (50), so most of the backlog is in
// mosquitto's queue for the agent's session when mosquitto restarts (with
// persistence off, this test loses messages), and the agent leaves
// messages with the broker while its inbox is full (deferred).
func TestMQTTBrokerRestart(t *testing.T) {
	const n = 1000
	br := mosquittoBroker(t, true)
	a := mqttAgent(t, br, "--mqtt-inbox", "50")
	a.mustCLI("deploy", "slow", "--image", built.busybox, "--mqtt", "in/+=out/{1}",
		"--env", `SCRIPT=sleep 0.05; printf '"%s"' "$(cat)"`)
	sub := testmqtt.Subscribe(t, br.port, "it-broker-restart", "out/#")
	sub.Ready(t, br.port, "out/probe")
	publishBurst(t, br.port, n, 2)
	waitFor(t, time.Minute, "some replies", func() bool { return len(tally(sub)) >= n/10 })
	br.mosquitto.Restart()
	t.Logf("restarted mosquitto after %d of %d replies", len(tally(sub)), n)
	waitFor(t, 3*time.Minute, "every message answered", func() bool { return len(tally(sub)) == n })
	a.waitMQTT()
	dups := 0
	for _, c := range tally(sub) {
		dups += c - 1
	}
	t.Logf("%d duplicate replies; %v messages deferred (left with the broker while the inbox was full)",
		dups, a.metric(t, "edgefaas_mqtt_deferred_total", ""))
}

// TestMQTTDeadLetter: a function that fails is retried with backoff, then
// its message goes to edgefaas/deadletter/{function} with the error.
func TestMQTTDeadLetter(t *testing.T) {
	br := embeddedBroker(t)
	a := mqttAgent(t, br, "--mqtt-retries", "2", "--mqtt-backoff", "50ms")
	// Deployed from a stack file, as a fleet would be.
	stack := filepath.Join(t.TempDir(), "stack.yaml")
	if err := os.WriteFile(stack, []byte(`functions:
  failing:
    image: `+built.busybox+`
    env:
      SCRIPT: echo "no luck with $MQTT_TOPIC"; exit 3
    mqtt:
      - jobs/+=done/{1}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	if out := a.mustCLI("deploy", "-f", stack); !strings.HasPrefix(out, "deployed failing (version 1") {
		t.Fatalf("deploy -f: %q", out)
	}
	sub := testmqtt.Subscribe(t, br.port, "it-deadletter", "edgefaas/deadletter/#")
	testmqtt.Publish(t, br.port, 1, "jobs/42", []string{"the job"})
	waitFor(t, time.Minute, "a dead letter", func() bool { return sub.Len() >= 1 })
	topic, body, _ := strings.Cut(sub.Lines()[0], " ")
	var dl struct {
		Function, Topic, Status, Error, Payload string
		Attempts                                int
	}
	if err := json.Unmarshal([]byte(body), &dl); err != nil {
		t.Fatalf("dead letter %q: %v", body, err)
	}
	if topic != "edgefaas/deadletter/failing" || dl.Function != "failing" || dl.Topic != "jobs/42" ||
		dl.Payload != "the job" || dl.Attempts != 3 || dl.Status != "error" ||
		dl.Error != "exit code 3: no luck with jobs/42" {
		t.Fatalf("dead letter on %s: %+v", topic, dl)
	}
	if got := a.metric(t, "edgefaas_mqtt_retries_total", ""); got != 2 {
		t.Errorf("%v retries, want 2", got)
	}
	if got := a.metric(t, "edgefaas_invocations_total", `status="error"`); got != 3 {
		t.Errorf("%v failed invocations, want 3", got)
	}
}

// TestMQTTPortTaken: the embedded broker's port is taken (a mosquitto
// service, say): the agent stops at once and names the flag to change.
func TestMQTTPortTaken(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	state := t.TempDir()
	out, err := exec.Command(built.edgefaasd, "--state-dir", state, "--api-socket", state+"/api.sock",
		"--listen", "127.0.0.1:0", "--cgroup-parent", "edgefaas-it-porttaken",
		"--mqtt-listen", ln.Addr().String()).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "--mqtt-listen") || !strings.Contains(string(out), ln.Addr().String()) {
		t.Fatalf("edgefaasd with a taken MQTT port: %v\n%s", err, out)
	}
}
