package systemd

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// activationReport is what the child process found.
type activationReport struct {
	Addrs     map[string]string // name -> address
	Err       string
	EnvLeft   []string // LISTEN_* still set after Listeners
	NotCloexc []string // listeners whose descriptor a child would inherit
	Inherit   []int    // descriptors from 3 on that a child would inherit
}

// TestActivationChild is the child of TestListeners: it runs only when that
// test starts the test binary with sockets passed as systemd would.
func TestActivationChild(t *testing.T) {
	if os.Getenv("EDGEFAAS_ACTIVATION_CHILD") != "1" {
		t.Skip("runs as the child of TestListeners")
	}
	var r activationReport
	lns, err := Listeners()
	if err != nil {
		r.Err = err.Error()
	}
	r.Addrs = map[string]string{}
	for name, ln := range lns {
		r.Addrs[name] = ln.Addr().String()
		sc, err := ln.(syscall.Conn).SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		_ = sc.Control(func(fd uintptr) {
			flags, err := unix.FcntlInt(fd, unix.F_GETFD, 0)
			if err != nil || flags&unix.FD_CLOEXEC == 0 {
				r.NotCloexc = append(r.NotCloexc, name)
			}
		})
	}
	for _, v := range []string{"LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"} {
		if _, ok := os.LookupEnv(v); ok {
			r.EnvLeft = append(r.EnvLeft, v)
		}
	}
	// The passed descriptors are closed once duplicated, and their numbers
	// may be reused since: whatever is open there now must not leak.
	for fd := 3; fd < 3+len(lns)+2; fd++ {
		if flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err == nil && flags&unix.FD_CLOEXEC == 0 {
			r.Inherit = append(r.Inherit, fd)
		}
	}
	if err := json.NewEncoder(os.Stdout).Encode(r); err != nil {
		t.Fatal(err)
	}
}

// TestListeners passes real listening sockets to a child process as
// systemd does: descriptors from 3 on, LISTEN_FDS, LISTEN_FDNAMES and a
// LISTEN_PID that must be the child's own. The pid is unknown before the
// start, so a shell sets it to its own pid and then execs the child, which
// keeps that pid.
func TestListeners(t *testing.T) {
	dir := t.TempDir()
	unixLn, err := net.Listen("unix", filepath.Join(dir, "api.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer unixLn.Close()
	tcpLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer tcpLn.Close()
	tcp2, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer tcp2.Close()

	const ourPid = "$$" // expanded by the shell to the pid the child will have
	tests := []struct {
		name      string
		lns       []net.Listener
		names     string
		pid       string
		wantAddrs map[string]string
		wantErr   string
	}{
		{name: "named", lns: []net.Listener{unixLn, tcpLn}, names: "api:gateway", pid: ourPid,
			wantAddrs: map[string]string{"api": unixLn.Addr().String(), "gateway": tcpLn.Addr().String()}},
		{name: "one only", lns: []net.Listener{tcpLn}, names: "gateway", pid: ourPid,
			wantAddrs: map[string]string{"gateway": tcpLn.Addr().String()}},
		{name: "unnamed", lns: []net.Listener{tcpLn}, names: "", pid: ourPid,
			wantAddrs: map[string]string{"LISTEN_FD_3": tcpLn.Addr().String()}},
		{name: "for another process", lns: []net.Listener{unixLn, tcpLn}, names: "api:gateway", pid: "1",
			wantAddrs: map[string]string{}},
		{name: "one name twice", lns: []net.Listener{tcpLn, tcp2}, names: "gateway:gateway", pid: ourPid,
			wantAddrs: map[string]string{}, wantErr: `2 sockets named "gateway"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runActivationChild(t, tt.lns, tt.names, tt.pid)
			if (tt.wantErr == "") != (r.Err == "") || !strings.Contains(r.Err, tt.wantErr) {
				t.Errorf("Listeners error %q, want %q", r.Err, tt.wantErr)
			}
			if fmt.Sprint(r.Addrs) != fmt.Sprint(tt.wantAddrs) {
				t.Errorf("Listeners = %v, want %v", r.Addrs, tt.wantAddrs)
			}
			if len(r.EnvLeft) > 0 {
				t.Errorf("%v still set after Listeners: sandboxes would inherit them", r.EnvLeft)
			}
			if len(r.NotCloexc) > 0 {
				t.Errorf("listeners %v would be inherited by children (no FD_CLOEXEC)", r.NotCloexc)
			}
			// Descriptors meant for another process are left alone, as
			// sd_listen_fds(3) leaves them.
			if len(r.Inherit) > 0 && tt.pid == ourPid {
				t.Errorf("descriptors %v would be inherited by children", r.Inherit)
			}
		})
	}
}

func runActivationChild(t *testing.T, lns []net.Listener, names, pid string) activationReport {
	t.Helper()
	var files []*os.File
	for _, ln := range lns {
		f, err := ln.(interface{ File() (*os.File, error) }).File()
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		files = append(files, f)
	}
	script := fmt.Sprintf(`LISTEN_PID=%s LISTEN_FDS=%d LISTEN_FDNAMES=%q exec "$0" "$@"`, pid, len(files), names)
	cmd := exec.Command("/bin/sh", "-c", script, os.Args[0], "-test.run=^TestActivationChild$", "-test.count=1")
	// GORACE: no second of sleep at exit when the test runs with -race.
	cmd.Env = append(os.Environ(), "EDGEFAAS_ACTIVATION_CHILD=1", "GORACE=atexit_sleep_ms=0")
	cmd.ExtraFiles = files
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	var r activationReport
	// The test binary prints PASS after the report.
	line, _, _ := strings.Cut(string(out), "\n")
	if err := json.Unmarshal([]byte(line), &r); err != nil {
		t.Fatalf("child's report %q: %v", out, err)
	}
	return r
}
