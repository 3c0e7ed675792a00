package sandbox

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
)

// Listening reports whether a TCP socket in the sandbox's network namespace
// listens on port. It reads /proc/PID/net/tcp and tcp6 of the init (the
// namespace's socket table): no thread has to enter the namespace, so a
// caller can poll it every 100 us to learn the moment a server is up,
// where a dial into the namespace costs a new thread (~0.3 ms) each time.
func (s *Sandbox) Listening(port int) (bool, error) {
	pid := s.Pid()
	if pid <= 0 {
		return false, fmt.Errorf("sandbox %q has no init", s.ID())
	}
	return ListeningIn(pid, port)
}

// ListeningIn is Listening for the network namespace of any process (the
// benchmarks use it on runc's containers, to wait for them the same way).
func ListeningIn(pid, port int) (bool, error) {
	want := []byte(fmt.Sprintf(":%04X", port))
	for _, file := range []string{"tcp", "tcp6"} {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/net/" + file)
		if err != nil {
			return false, fmt.Errorf("sockets of pid %d: %w", pid, err)
		}
		if listensOn(b, want) {
			return true, nil
		}
	}
	return false, nil
}

// listensOn scans a /proc/net/tcp table for a socket in state LISTEN (0A)
// whose local address ends in want (":1F90" for port 8080).
func listensOn(table, want []byte) bool {
	sc := bufio.NewScanner(bytes.NewReader(table))
	sc.Scan() // header
	for sc.Scan() {
		f := bytes.Fields(sc.Bytes())
		if len(f) > 3 && bytes.HasSuffix(f[1], want) && string(f[3]) == "0A" {
			return true
		}
	}
	return false
}
