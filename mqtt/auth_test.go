package mqtt

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

const authFile = `# sensors publish, the dashboard reads
user sensor1 s3cret
user dash pass with spaces
allow sensor1 pub sensors/#
allow * sub alerts/#
allow dash pubsub dash/+
allow anonymous sub public/#
`

func TestParseAuth(t *testing.T) {
	a, err := parseAuth("auth", strings.NewReader(authFile))
	if err != nil {
		t.Fatal(err)
	}
	logins := []struct {
		user, pass string
		ok         bool
	}{
		{"sensor1", "s3cret", true},
		{"dash", "pass with spaces", true},
		{"sensor1", "wrong", false},
		{"ghost", "s3cret", false},
		{"", "", true}, // a rule admits anonymous clients
	}
	for _, l := range logins {
		if got := a.authenticate([]byte(l.user), []byte(l.pass)); got != l.ok {
			t.Errorf("login %q/%q = %v, want %v", l.user, l.pass, got, l.ok)
		}
	}
	acl := []struct {
		user, topic string
		write, ok   bool
	}{
		{"sensor1", "sensors/k/temp", true, true},
		{"sensor1", "sensors/#", false, false}, // pub only
		{"sensor1", "alerts/x", false, true},   // * sub
		{"sensor1", "alerts/#", false, true},
		{"sensor1", "#", false, false}, // wider than the rule
		{"sensor1", "dash/a", true, false},
		{"dash", "dash/a", true, true},
		{"dash", "dash/+", false, true},
		{"dash", "dash/a/b", true, false},
		{"", "public/news", false, true},
		{"", "alerts/x", false, false}, // * is users only
		{"", "public/news", true, false},
	}
	for _, c := range acl {
		if got := a.allowed(c.user, c.topic, c.write); got != c.ok {
			t.Errorf("allowed(%q, %q, write %v) = %v, want %v", c.user, c.topic, c.write, got, c.ok)
		}
	}
	noAnon, err := parseAuth("auth", strings.NewReader("user u p\nallow u pub a\n"))
	if err != nil {
		t.Fatal(err)
	}
	if noAnon.authenticate(nil, nil) {
		t.Error("an anonymous client got in without an anonymous rule")
	}
}

func TestParseAuthErrors(t *testing.T) {
	for _, bad := range []string{
		"user onlyname",
		"user * x",
		"user u p\nuser u q",
		"allow u pub a", // unknown user
		"user u p\nallow u publish a",
		"user u p\nallow u pub a/#/b",
		"user u p\nallow u pub",
		"password u p",
	} {
		if _, err := parseAuth("auth", strings.NewReader(bad)); err == nil || !strings.Contains(err.Error(), "auth") {
			t.Errorf("%q: got %v, want an error naming the file", bad, err)
		}
	}
}

// TestEmbeddedAuth: the embedded broker admits and refuses real clients by
// the file.
func TestEmbeddedAuth(t *testing.T) {
	path := filepath.Join(t.TempDir(), "auth")
	if err := os.WriteFile(path, []byte(authFile), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startService(t, Config{Broker: BrokerEmbedded, Listen: "127.0.0.1:0", AuthFile: path, Invoke: echo})
	connect := func(user, pass string) error {
		o := paho.NewClientOptions().AddBroker("tcp://" + brokerAddr(s)).SetClientID("auth-" + user + pass)
		o.SetUsername(user).SetPassword(pass)
		c := paho.NewClient(o)
		tok := c.Connect()
		tok.WaitTimeout(10 * time.Second)
		if tok.Error() == nil {
			c.Disconnect(10)
		}
		return tok.Error()
	}
	if err := connect("sensor1", "s3cret"); err != nil {
		t.Errorf("sensor1 refused: %v", err)
	}
	if err := connect("sensor1", "nope"); err == nil {
		t.Error("a wrong password got in")
	}
	if _, err := Start(Config{Broker: BrokerEmbedded, Listen: "127.0.0.1:0", AuthFile: path, Anonymous: true,
		DB: openDB(t, t.TempDir()), Invoke: echo}); err == nil {
		t.Error("an auth file and anonymous access together were accepted")
	}
}
