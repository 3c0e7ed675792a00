// Package testmqtt runs a real mosquitto broker for tests, on a free
// loopback port with its configuration in the test's temporary directory,
// and drives mosquitto_pub and mosquitto_sub as sensors. It is for tests
// only.
package testmqtt

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Mosquitto is a running mosquitto.
type Mosquitto struct {
	t    testing.TB
	dir  string
	Port int
	cmd  *exec.Cmd
	logs *bytes.Buffer
}

// Require skips the test unless mosquitto and its clients are installed.
func Require(t testing.TB) {
	t.Helper()
	for _, bin := range []string{"mosquitto", "mosquitto_pub", "mosquitto_sub"} {
		if _, err := exec.LookPath(bin); err != nil {
			if _, err := os.Stat("/usr/sbin/" + bin); err == nil {
				continue
			}
			t.Skipf("needs %s (apt-get install mosquitto mosquitto-clients)", bin)
		}
	}
}

// Start runs mosquitto on a free port. With persist, it keeps its sessions
// and queued messages across Restart (saved on a clean stop). The queue
// limits are lifted: mosquitto drops silently past max_queued_messages.
// Started as root, it stays root ("user root"): by default it would drop to
// the mosquitto user, which cannot read the test's 0700 temporary
// directory (its persistence file and certificates).
func Start(t testing.TB, persist bool) *Mosquitto {
	t.Helper()
	return StartWith(t, Options{Persist: persist})
}

// Options configure StartWith.
type Options struct {
	Persist bool
	// TLS, when set, makes the listener TLS only, with these PEM files;
	// clients must present a certificate signed by CAFile.
	TLS *TLSFiles
	// Users, when set, are the only clients let in (user name: password).
	Users map[string]string
}

// TLSFiles are PEM files for a TLS listener.
type TLSFiles struct{ CAFile, CertFile, KeyFile string }

// StartWith runs mosquitto on a free port with opts.
func StartWith(t testing.TB, opts Options) *Mosquitto {
	t.Helper()
	Require(t)
	m := &Mosquitto{t: t, dir: t.TempDir(), Port: FreePort(t)}
	persist := opts.Persist
	tlsConf := ""
	if f := opts.TLS; f != nil {
		tlsConf = fmt.Sprintf("cafile %s\ncertfile %s\nkeyfile %s\nrequire_certificate true\n", f.CAFile, f.CertFile, f.KeyFile)
	}
	auth := "allow_anonymous true\n"
	if len(opts.Users) > 0 {
		pw := filepath.Join(m.dir, "passwd")
		if err := os.WriteFile(pw, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		for u, p := range opts.Users {
			if out, err := exec.Command("mosquitto_passwd", "-b", pw, u, p).CombinedOutput(); err != nil {
				t.Fatalf("mosquitto_passwd: %v %s", err, out)
			}
		}
		auth = "allow_anonymous false\npassword_file " + pw + "\n"
	}
	conf := fmt.Sprintf(`listener %d 127.0.0.1
`+tlsConf+auth+`
user root
persistence %t
persistence_location %s/
autosave_interval 0
max_queued_messages 0
max_queued_bytes 0
set_tcp_nodelay true
log_dest stderr
log_type error
log_type warning
`, m.Port, persist, m.dir)
	if err := os.WriteFile(filepath.Join(m.dir, "mosquitto.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	m.start()
	t.Cleanup(m.Stop)
	return m
}

// URL is the broker's address for edgefaasd --mqtt-broker.
func (m *Mosquitto) URL() string { return fmt.Sprintf("tcp://127.0.0.1:%d", m.Port) }

func (m *Mosquitto) start() {
	t := m.t
	t.Helper()
	bin, err := exec.LookPath("mosquitto")
	if err != nil {
		bin = "/usr/sbin/mosquitto"
	}
	m.logs = &bytes.Buffer{}
	m.cmd = exec.Command(bin, "-c", filepath.Join(m.dir, "mosquitto.conf"))
	m.cmd.Stdout, m.cmd.Stderr = m.logs, m.logs
	if err := m.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", m.Port))
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("mosquitto did not listen on %d: %v\n%s", m.Port, err, m.logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Stop stops mosquitto cleanly (it saves its persistence file).
func (m *Mosquitto) Stop() {
	if m.cmd == nil || m.cmd.ProcessState != nil {
		return
	}
	_ = m.cmd.Process.Signal(syscall.SIGTERM)
	_ = m.cmd.Wait()
}

// Restart stops mosquitto cleanly and starts it again on the same port.
func (m *Mosquitto) Restart() {
	m.Stop()
	m.start()
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// Sub is a running mosquitto_sub that collects what arrives as
// "topic payload" lines.
type Sub struct {
	cmd   *exec.Cmd
	mu    sync.Mutex
	lines []string
	done  chan struct{}
}

// Subscribe runs mosquitto_sub on filter at QoS 1 with a persistent
// session (client id id), until the test ends. It returns once subscribed.
func Subscribe(t testing.TB, port int, id, filter string) *Sub {
	t.Helper()
	// -v prints "topic payload"; -N no newline is not wanted: one line per message.
	cmd := exec.Command("mosquitto_sub", "-h", "127.0.0.1", "-p", fmt.Sprint(port), "-q", "1", "-c", "-i", id,
		"-t", filter, "-v")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var errBuf bytes.Buffer
	cmd.Stderr = &errBuf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &Sub{cmd: cmd, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			s.mu.Lock()
			s.lines = append(s.lines, sc.Text())
			s.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-s.done
		_ = cmd.Wait()
		if t.Failed() && errBuf.Len() > 0 {
			t.Logf("mosquitto_sub %s: %s", filter, errBuf.String())
		}
	})
	return s
}

// Ready publishes a probe message on topic (which the filter must match)
// until one arrives: then the subscription is in place. Probe lines start
// with topic.
func (s *Sub) Ready(t testing.TB, port int, topic string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for s.Len() == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("mosquitto_sub did not receive a probe on %s", topic)
		}
		Publish(t, port, 0, topic, []string{"probe"})
		wait := time.Now().Add(200 * time.Millisecond)
		for s.Len() == 0 && time.Now().Before(wait) {
			time.Sleep(5 * time.Millisecond)
		}
	}
}

// Lines returns what arrived so far.
func (s *Sub) Lines() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.lines...)
}

// Len is how many messages arrived.
func (s *Sub) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.lines)
}

// Publish publishes messages with mosquitto_pub at QoS qos: each line of
// lines is one message on topic(i). One mosquitto_pub process per topic
// keeps it fast (-l reads messages from stdin, one per line).
func Publish(t testing.TB, port int, qos int, topic string, lines []string) {
	t.Helper()
	cmd := exec.Command("mosquitto_pub", "-h", "127.0.0.1", "-p", fmt.Sprint(port), "-q", fmt.Sprint(qos),
		"-t", topic, "-l")
	cmd.Stdin = strings.NewReader(strings.Join(lines, "\n") + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mosquitto_pub -t %s: %v: %s", topic, err, out)
	}
}
