package integration

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgefaas/edgefaas/api"
)

// These tests run the real edgefaasd the way systemd runs it, with the
// parts of systemd it talks to played by the test: a unixgram socket at
// NOTIFY_SOCKET that receives sd_notify datagrams, WATCHDOG_USEC, and
// listening sockets passed as descriptors with LISTEN_FDS (socket
// activation). systemd itself is not PID 1 here.

// watchdogUsec is WatchdogSec= for these tests, 400 ms: the agent pings
// every 200 ms, and systemd would kill it after 400 ms without one.
const (
	watchdogUsec    = 400_000
	watchdogTimeout = watchdogUsec * time.Microsecond
	pingInterval    = watchdogTimeout / 2
)

// sdAgent is an edgefaasd started as systemd would start it.
type sdAgent struct {
	t      *testing.T
	cmd    *exec.Cmd
	state  string
	sock   string // --api-socket, where it listens unless passed a socket
	notify *net.UnixConn
	logs   *syncBuffer
}

type sdOptions struct {
	state    string        // --state-dir; a new temporary directory when ""
	files    []*os.File    // passed as descriptors 3, 4, ...
	fdNames  string        // LISTEN_FDNAMES
	watchdog bool          // set WATCHDOG_USEC
	notify   *net.UnixConn // reuse this NOTIFY_SOCKET listener
}

var sdSeq int

func startSystemdAgent(t *testing.T, o sdOptions) *sdAgent {
	t.Helper()
	sdSeq++
	a := &sdAgent{t: t, state: o.state, logs: &syncBuffer{}}
	if a.state == "" {
		a.state = t.TempDir()
	}
	a.sock = filepath.Join(t.TempDir(), "own.sock")
	a.notify = o.notify
	if a.notify == nil {
		a.notify = notifyListener(t)
	}
	args := []string{"--state-dir", a.state, "--api-socket", a.sock, "--listen", "127.0.0.1:0", "--mqtt-broker", "none",
		"--cgroup-parent", fmt.Sprintf("edgefaas-it-%d-sd%d", os.Getpid(), sdSeq)}
	env := append(os.Environ(), "NOTIFY_SOCKET="+a.notify.LocalAddr().String())
	if o.watchdog {
		env = append(env, "WATCHDOG_USEC="+strconv.Itoa(watchdogUsec))
	}
	if len(o.files) > 0 {
		// systemd sets LISTEN_PID to the pid of the process it execs. The
		// test cannot know that pid before the start, so a shell sets it
		// to its own and then execs the agent, which keeps the pid.
		a.cmd = exec.Command("/bin/sh", append([]string{"-c", `LISTEN_PID=$$ exec "$0" "$@"`, built.edgefaasd}, args...)...)
		env = append(env, "LISTEN_FDS="+strconv.Itoa(len(o.files)), "LISTEN_FDNAMES="+o.fdNames)
		a.cmd.ExtraFiles = o.files
	} else {
		a.cmd = exec.Command(built.edgefaasd, args...)
	}
	a.cmd.Env = env
	a.cmd.Stdout, a.cmd.Stderr = a.logs, a.logs
	if err := a.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.stop)
	return a
}

func (a *sdAgent) stop() { terminate(a.t, a.cmd, a.logs) }

// notifyListener listens as systemd does on NOTIFY_SOCKET.
func notifyListener(t *testing.T) *net.UnixConn {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// next returns the next notification and when it was read, or "" when none
// arrives within d.
func (a *sdAgent) next(d time.Duration) (string, time.Time) {
	a.t.Helper()
	if err := a.notify.SetReadDeadline(time.Now().Add(d)); err != nil {
		a.t.Fatal(err)
	}
	buf := make([]byte, 4096)
	n, err := a.notify.Read(buf)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "", time.Time{}
	}
	if err != nil {
		a.t.Fatal(err)
	}
	return string(buf[:n]), time.Now()
}

// drain discards notifications already sent.
func (a *sdAgent) drain() {
	for {
		if msg, _ := a.next(10 * time.Millisecond); msg == "" {
			return
		}
	}
}

// waitFor reads notifications until want arrives; check sees each one
// (want included) the moment it is read.
func (a *sdAgent) waitFor(want string, d time.Duration, check func(msg string)) time.Time {
	a.t.Helper()
	deadline := time.Now().Add(d)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			a.t.Fatalf("no %s within %s; agent logs:\n%s", want, d, a.logs.String())
		}
		msg, at := a.next(left)
		if msg == "" {
			continue
		}
		if check != nil {
			check(msg)
		}
		if msg == want {
			return at
		}
	}
}

// client talks to the admin API over a unix socket path.
func unixAPI(t *testing.T, path string) *api.Client {
	t.Helper()
	cl, err := api.NewClient("unix://"+path, "")
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

func healthz(gw string) error {
	c := &http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get("http://" + gw + "/healthz")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || string(body) != "ok\n" {
		return fmt.Errorf("GET /healthz: %s %q", resp.Status, body)
	}
	return nil
}

const fillerMsg = "X_FILLER=1"

// fillQueue sends datagrams to the notification socket until its queue is
// full (net.unix.max_dgram_qlen), and returns how many it sent. The next
// sender waits until the test reads.
func fillQueue(t *testing.T, notify *net.UnixConn) int {
	t.Helper()
	c, err := net.DialUnix("unixgram", nil, notify.LocalAddr().(*net.UnixAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for n := 0; ; n++ {
		// A write waits only when the queue is full; then the deadline ends it.
		if err := c.SetWriteDeadline(time.Now().Add(50 * time.Millisecond)); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Write([]byte(fillerMsg)); err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return n
			}
			t.Fatal(err)
		}
	}
}

// procState is the state letter of /proc/PID/stat (R, S, T, Z...).
func procState(pid int) byte {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 >= len(s) {
		return 0
	}
	return s[i+2]
}

// TestSystemdNotify: READY=1 comes only once the store exists and the
// gateway answers; STATUS= describes the agent; WATCHDOG=1 keeps a steady
// cadence while the agent works and stops while it is frozen; STOPPING=1
// comes on SIGTERM.
func TestSystemdNotify(t *testing.T) {
	// The notification socket's queue is full before the agent starts, so
	// its first notification cannot leave until the test reads: the agent
	// is held inside its READY=1 send. If it sent READY=1 before serving,
	// it could not answer now.
	notify := notifyListener(t)
	fillers := fillQueue(t, notify)
	a := startSystemdAgent(t, sdOptions{watchdog: true, notify: notify})
	db := filepath.Join(a.state, "edgefaas.db")
	var info api.Info
	waitFor(t, 15*time.Second, "the agent to answer while its READY=1 waits", func() bool {
		var err error
		info, err = unixAPI(t, a.sock).Info(context.Background())
		return err == nil
	})
	gw := info.Listen
	if err := healthz(gw); err != nil {
		t.Fatalf("before READY=1 was read the gateway does not answer: %v", err)
	}

	seen := 0
	a.waitFor("READY=1", 30*time.Second, func(msg string) {
		if msg == fillerMsg {
			seen++
			return
		}
		// Nothing may arrive before the store exists.
		if _, err := os.Stat(db); err != nil {
			t.Fatalf("%q arrived before the store existed: %v", msg, err)
		}
		if msg != "READY=1" {
			t.Fatalf("%q arrived before READY=1", msg)
		}
		if seen != fillers {
			t.Fatalf("READY=1 after %d of the %d queued datagrams: the queue was not full", seen, fillers)
		}
		// And still, as systemd would start what waits for the agent.
		if err := healthz(gw); err != nil {
			t.Fatalf("at READY=1 the gateway does not answer: %v", err)
		}
	})

	// Pings, with the status line among them.
	var pings []time.Time
	var statuses []string
	for len(pings) < 8 {
		msg, at := a.next(5 * pingInterval)
		switch {
		case msg == "":
			t.Fatalf("no notification for %s after %d pings; agent logs:\n%s", 5*pingInterval, len(pings), a.logs.String())
		case msg == "WATCHDOG=1":
			pings = append(pings, at)
		case strings.HasPrefix(msg, "STATUS="):
			statuses = append(statuses, msg)
		default:
			t.Errorf("unexpected notification %q", msg)
		}
	}
	if want := "STATUS=0 functions, 0 warm instances; mqtt: none; cloud: standalone"; len(statuses) == 0 || statuses[0] != want {
		t.Errorf("status lines %q, want %q first", statuses, want)
	}
	var gaps []time.Duration
	for i := 1; i < len(pings); i++ {
		gaps = append(gaps, pings[i].Sub(pings[i-1]))
	}
	sorted := slices.Clone(gaps)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i] < sorted[j] })
	median := sorted[len(sorted)/2]
	t.Logf("watchdog gaps (interval %s): %v", pingInterval, gaps)
	if median < pingInterval*3/4 || median > pingInterval*3/2 {
		t.Errorf("median gap between pings %s, want about %s", median, pingInterval)
	}
	if sorted[len(sorted)-1] >= watchdogTimeout {
		t.Errorf("a gap of %s: systemd (WatchdogSec=%s) would have killed the agent", sorted[len(sorted)-1], watchdogTimeout)
	}

	t.Run("frozen agent sends nothing", func(t *testing.T) {
		pid := a.cmd.Process.Pid
		if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 5*time.Second, "the agent to stop", func() bool { return procState(pid) == 'T' })
		a.drain() // sent before it stopped
		if msg, _ := a.next(5 * pingInterval); msg != "" {
			t.Errorf("a stopped agent sent %q", msg)
		}
		if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
			t.Fatal(err)
		}
		a.waitFor("WATCHDOG=1", 5*time.Second, nil)
		if err := healthz(gw); err != nil {
			t.Errorf("after SIGCONT: %v", err)
		}
	})

	t.Run("SIGTERM sends STOPPING", func(t *testing.T) {
		if err := a.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		a.waitFor("STOPPING=1", 10*time.Second, nil)
		if err := a.cmd.Wait(); err != nil {
			t.Errorf("agent exit after SIGTERM: %v", err)
		}
	})
}

// TestSystemdWatchdogStopsWhenStoreFails puts the state directory on an
// ext4 file system (a loop device) mounted errors=remount-ro, then makes
// ext4 hit an error, as a failing SD card would: the kernel turns the file
// system read-only under the open database, and root cannot write to it
// either. The agent keeps running and answering /healthz, but its probe
// cannot commit, so no WATCHDOG=1 may arrive: systemd would restart it.
//
// (Remounting a tmpfs read-only is refused with EBUSY while the database
// is open for writing, and chmod does not stop root: an ext4 error is the
// real failure that can be made here.)
func TestSystemdWatchdogStopsWhenStoreFails(t *testing.T) {
	for _, tool := range []string{"mkfs.ext4", "mount", "umount", "findmnt"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s (e2fsprogs, util-linux) to make a file system that fails", tool)
		}
	}
	dir := t.TempDir()
	img, mnt := filepath.Join(dir, "state.img"), filepath.Join(dir, "mnt")
	if err := os.Mkdir(mnt, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("truncate", "-s", "64M", img).CombinedOutput(); err != nil {
		t.Fatalf("truncate: %v: %s", err, out)
	}
	if out, err := exec.Command("mkfs.ext4", "-q", "-F", img).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v: %s", err, out)
	}
	if out, err := exec.Command("mount", "-o", "loop,errors=remount-ro", img, mnt).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a loop device here: %v: %s", err, out)
	}
	// Registered before the agent's stop, so it runs after it.
	t.Cleanup(func() {
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", mnt, err, out)
		}
	})
	dev, err := exec.Command("findmnt", "-n", "-o", "SOURCE", mnt).Output()
	if err != nil {
		t.Fatal(err)
	}
	trigger := filepath.Join("/sys/fs/ext4", filepath.Base(strings.TrimSpace(string(dev))), "trigger_fs_error")
	if _, err := os.Stat(trigger); err != nil {
		t.Skipf("this kernel cannot make ext4 fail on purpose (%s): %v", trigger, err)
	}

	a := startSystemdAgent(t, sdOptions{state: filepath.Join(mnt, "state"), watchdog: true})
	a.waitFor("READY=1", 30*time.Second, nil)
	for range 2 {
		a.waitFor("WATCHDOG=1", 5*time.Second, nil)
	}

	if err := os.WriteFile(trigger, []byte("edgefaas test\n"), 0); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(mnt, "probe"), []byte("x"), 0o600); !errors.Is(err, syscall.EROFS) {
		t.Fatalf("writing as root after the ext4 error: %v, want EROFS", err)
	}
	a.drain()
	deadline := time.Now().Add(5 * pingInterval)
	for time.Now().Before(deadline) {
		if msg, _ := a.next(time.Until(deadline)); msg == "WATCHDOG=1" {
			t.Fatalf("WATCHDOG=1 although the store cannot be written; agent logs:\n%s", a.logs.String())
		}
	}
	if s := procState(a.cmd.Process.Pid); s == 0 || s == 'Z' {
		t.Fatalf("the agent died (state %q) instead of only going silent", s)
	}
	if !strings.Contains(a.logs.String(), "watchdog probe failed") {
		t.Errorf("the agent did not log the failed probe; logs:\n%s", a.logs.String())
	}
	// It still serves: the silence is the probe's write failing, not a
	// dead agent.
	info, err := unixAPI(t, a.sock).Info(context.Background())
	if err != nil {
		t.Fatalf("admin API after the store failed: %v", err)
	}
	if err := healthz(info.Listen); err != nil {
		t.Errorf("gateway after the store failed: %v", err)
	}
}

// listeningInodes returns the socket inodes pid listens on: TCP (v4 and v6)
// in state LISTEN, and unix sockets accepting connections.
func listeningInodes(t *testing.T, pid int) map[uint64]string {
	t.Helper()
	own := map[uint64]bool{}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, fd := range fds {
		target, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
		if err != nil {
			continue
		}
		if s, ok := strings.CutPrefix(target, "socket:["); ok {
			ino, _ := strconv.ParseUint(strings.TrimSuffix(s, "]"), 10, 64)
			own[ino] = true
		}
	}
	out := map[uint64]string{}
	scan := func(file string, match func(fields []string) (uint64, string, bool)) {
		f, err := os.Open(fmt.Sprintf("/proc/%d/net/%s", pid, file))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		sc.Scan() // header
		for sc.Scan() {
			if ino, what, ok := match(strings.Fields(sc.Text())); ok && own[ino] {
				out[ino] = what
			}
		}
	}
	tcp := func(fields []string) (uint64, string, bool) {
		if len(fields) < 10 || fields[3] != "0A" { // TCP_LISTEN
			return 0, "", false
		}
		ino, _ := strconv.ParseUint(fields[9], 10, 64)
		return ino, "tcp " + fields[1], true
	}
	scan("tcp", tcp)
	scan("tcp6", tcp)
	scan("unix", func(fields []string) (uint64, string, bool) {
		// Num RefCount Protocol Flags Type St Inode [Path]; flag
		// __SO_ACCEPTCON (0x10000) marks a listening socket.
		if len(fields) < 7 {
			return 0, "", false
		}
		flags, _ := strconv.ParseUint(fields[3], 16, 64)
		ino, _ := strconv.ParseUint(fields[6], 10, 64)
		path := ""
		if len(fields) > 7 {
			path = fields[7]
		}
		return ino, "unix " + path, flags&0x10000 != 0
	})
	return out
}

func socketInode(t *testing.T, f *os.File) uint64 {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// TestSocketActivation passes the agent listening sockets made by the test,
// as systemd passes those of edgefaasd.socket and edgefaasd-gateway.socket,
// and talks to the agent through them. The agent must serve them and bind
// nothing of its own, except for a socket that was not passed.
func TestSocketActivation(t *testing.T) {
	tests := []struct {
		name        string
		passGateway bool
	}{
		{name: "both sockets", passGateway: true},
		{name: "admin socket only", passGateway: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			apiPath := filepath.Join(t.TempDir(), "edgefaasd.sock")
			apiLn, err := net.Listen("unix", apiPath)
			if err != nil {
				t.Fatal(err)
			}
			apiLn.(*net.UnixListener).SetUnlinkOnClose(false) // like systemd's: the agent must not remove it either
			defer apiLn.Close()
			apiFile, err := apiLn.(*net.UnixListener).File()
			if err != nil {
				t.Fatal(err)
			}
			defer apiFile.Close()
			files, names := []*os.File{apiFile}, "api"
			want := map[uint64]bool{socketInode(t, apiFile): true}

			var gwLn net.Listener
			if tt.passGateway {
				if gwLn, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
					t.Fatal(err)
				}
				defer gwLn.Close()
				gwFile, err := gwLn.(*net.TCPListener).File()
				if err != nil {
					t.Fatal(err)
				}
				defer gwFile.Close()
				files, names = append(files, gwFile), "api:gateway"
				want[socketInode(t, gwFile)] = true
			}

			a := startSystemdAgent(t, sdOptions{files: files, fdNames: names})
			a.waitFor("READY=1", 30*time.Second, nil)

			info, err := unixAPI(t, apiPath).Info(t.Context())
			if err != nil {
				t.Fatalf("admin API over the passed socket: %v", err)
			}
			if tt.passGateway && info.Listen != gwLn.Addr().String() {
				t.Errorf("gateway serves %s, want the passed %s", info.Listen, gwLn.Addr())
			}
			if err := healthz(info.Listen); err != nil {
				t.Errorf("gateway: %v", err)
			}
			resp, err := http.Post("http://"+info.Listen+"/function/ghost", "text/plain", strings.NewReader("x"))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 404 || resp.Header.Get("X-Faas-Status") != "not_found" {
				t.Errorf("invoke through the gateway: %s %q, want 404 not_found", resp.Status, resp.Header.Get("X-Faas-Status"))
			}

			if _, err := os.Stat(a.sock); !os.IsNotExist(err) {
				t.Errorf("the agent made its own admin socket %s: %v", a.sock, err)
			}
			listening := listeningInodes(t, a.cmd.Process.Pid)
			for ino := range want {
				if _, ok := listening[ino]; !ok {
					t.Errorf("the agent does not listen on passed socket inode %d; it listens on %v", ino, listening)
				}
			}
			var own []string
			for ino, what := range listening {
				if !want[ino] {
					own = append(own, what)
				}
			}
			switch {
			case tt.passGateway && len(own) > 0:
				t.Errorf("the agent bound sockets of its own: %v", own)
			case !tt.passGateway && (len(own) != 1 || !strings.HasPrefix(own[0], "tcp ")):
				t.Errorf("without a passed gateway the agent should bind exactly its own gateway; it bound %v", own)
			}

			a.stop()
			if _, err := os.Stat(apiPath); err != nil {
				t.Errorf("the passed socket's file is gone after the agent stopped: %v", err)
			}
		})
	}
}
