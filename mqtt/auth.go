package mqtt

import (
	"bufio"
	"bytes"
	"crypto/subtle"
	"fmt"
	"io"
	"os"
	"strings"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/edgefaas/edgefaas/errdefs"
)

// Auth is the embedded broker's users and access rules, read from a file
// of lines (the same flat style as the agent's configuration, so the agent
// carries no YAML parser):
//
//	# comments fill whole lines
//	user sensor1 s3cret            # user NAME PASSWORD (the rest of the line)
//	allow sensor1 pub sensors/#    # allow WHO pub|sub|pubsub FILTER
//	allow * sub alerts/#           # WHO: a user, * (every user), or anonymous
//	allow anonymous pub public/+   # admits clients without a user name
//
// A client with a user name must give its password; one without is let in
// only when a rule names anonymous. Everything not allowed is denied: a
// publication to a topic needs a pub rule whose filter matches it, a
// subscription a sub rule whose filter covers it.
type Auth struct {
	users map[string][]byte
	rules []rule
	anon  bool // some rule admits anonymous clients
	open  bool // every client, everything: --mqtt-anonymous
}

type rule struct {
	who      string // user name, "*" or "anonymous"
	pub, sub bool
	filter   string
}

// anonymous is the rule subject for clients without a user name.
const anonymous = "anonymous"

// ReadAuth reads an auth file.
func ReadAuth(path string) (*Auth, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("mqtt auth file: %w", err)
	}
	defer f.Close()
	return parseAuth(path, f)
}

func parseAuth(name string, r io.Reader) (*Auth, error) {
	a := &Auth{users: map[string][]byte{}}
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		bad := func(format string, args ...any) error {
			return fmt.Errorf("%s:%d: %s: %w", name, n, fmt.Sprintf(format, args...), errdefs.ErrInvalid)
		}
		kind, rest, _ := strings.Cut(line, " ")
		switch kind {
		case "user":
			user, pass, ok := strings.Cut(strings.TrimSpace(rest), " ")
			pass = strings.TrimSpace(pass)
			switch {
			case !ok || user == "" || pass == "":
				return nil, bad("want user NAME PASSWORD")
			case user == "*" || user == anonymous:
				return nil, bad("%q cannot be a user name", user)
			case a.users[user] != nil:
				return nil, bad("user %q given twice", user)
			}
			a.users[user] = []byte(pass)
		case "allow":
			f := strings.Fields(rest)
			if len(f) != 3 {
				return nil, bad("want allow WHO pub|sub|pubsub FILTER")
			}
			rl := rule{who: f[0], filter: f[2]}
			switch f[1] {
			case "pub":
				rl.pub = true
			case "sub":
				rl.sub = true
			case "pubsub":
				rl.pub, rl.sub = true, true
			default:
				return nil, bad("access %q: want pub, sub or pubsub", f[1])
			}
			if err := ValidateFilter(rl.filter); err != nil {
				return nil, bad("%v", err)
			}
			a.anon = a.anon || rl.who == anonymous
			a.rules = append(a.rules, rl)
		default:
			return nil, bad("want a user or allow line, got %q", line)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	for _, rl := range a.rules {
		if rl.who != "*" && rl.who != anonymous && a.users[rl.who] == nil {
			return nil, fmt.Errorf("%s: rule for unknown user %q: %w", name, rl.who, errdefs.ErrInvalid)
		}
	}
	return a, nil
}

// authenticate checks a client's login.
func (a *Auth) authenticate(user, pass []byte) bool {
	if a.open {
		return true
	}
	if len(user) == 0 {
		return a.anon
	}
	want, ok := a.users[string(user)]
	return ok && subtle.ConstantTimeCompare(want, pass) == 1
}

// allowed reports whether user ("" for anonymous) may publish to topic
// (write) or subscribe to the filter topic.
func (a *Auth) allowed(user, topic string, write bool) bool {
	if a.open {
		return true
	}
	if ValidateFilter(topic) != nil {
		return false
	}
	for _, rl := range a.rules {
		who := rl.who == user || (rl.who == "*" && user != "") || (rl.who == anonymous && user == "")
		if !who {
			continue
		}
		if write && rl.pub {
			if _, ok := Match(rl.filter, topic); ok {
				return true
			}
		}
		if !write && rl.sub && covers(rl.filter, topic) {
			return true
		}
	}
	return false
}

// authHook applies an Auth in the embedded broker. The agent's own inline
// client is not checked (mochi does not ask for it).
type authHook struct {
	mochi.HookBase
	auth *Auth
}

func (h *authHook) ID() string { return "edgefaas-auth" }

func (h *authHook) Provides(b byte) bool {
	return b == mochi.OnConnectAuthenticate || b == mochi.OnACLCheck
}

func (h *authHook) OnConnectAuthenticate(_ *mochi.Client, pk packets.Packet) bool {
	return h.auth.authenticate(pk.Connect.Username, pk.Connect.Password)
}

func (h *authHook) OnACLCheck(cl *mochi.Client, topic string, write bool) bool {
	return h.auth.allowed(string(bytes.Clone(cl.Properties.Username)), topic, write)
}
