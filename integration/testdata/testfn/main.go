// Command testfn is an http-mode function that misbehaves on request, for
// the integration tests: it allocates past its memory limit, forks without
// end, spins, never answers or crashes.
package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "sleep" {
		time.Sleep(time.Hour)
		return
	}
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "testfn got %q", b)
	})
	http.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Seen-Call-Id", r.Header.Get("X-Call-Id"))
		w.Header().Set("X-Seen-Trigger", r.Header.Get("X-Faas-Trigger"))
		fmt.Fprintf(w, "%s %s?%s ", r.Method, r.URL.Path, r.URL.RawQuery)
		_, _ = io.Copy(w, r.Body)
	})
	started := time.Now().UnixNano() // tells instances apart
	http.HandleFunc("/id", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, started)
	})
	http.HandleFunc("/sleep", func(w http.ResponseWriter, r *http.Request) {
		d, _ := time.ParseDuration(r.URL.Query().Get("for"))
		time.Sleep(d)
		fmt.Fprintf(w, "slept %s", d)
	})
	http.HandleFunc("/env", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, os.Getenv(r.URL.Query().Get("k")))
	})
	http.HandleFunc("/oom", func(w http.ResponseWriter, r *http.Request) {
		var hold [][]byte
		for {
			b := make([]byte, 1<<20)
			for i := range b {
				b[i] = 1
			}
			hold = append(hold, b)
		}
	})
	http.HandleFunc("/fork", func(w http.ResponseWriter, r *http.Request) {
		started, failed := 0, 0
		for range 1000 {
			cmd := exec.Command("/proc/self/exe", "sleep")
			if err := cmd.Start(); err != nil {
				failed++
				continue
			}
			started++
		}
		fmt.Fprintf(w, "started=%d failed=%d", started, failed)
	})
	http.HandleFunc("/spin", func(w http.ResponseWriter, r *http.Request) {
		d, _ := time.ParseDuration(r.URL.Query().Get("for"))
		end := time.Now().Add(d)
		n := 0
		for time.Now().Before(end) {
			n++
		}
		fmt.Fprintf(w, "spun %d", n)
	})
	http.HandleFunc("/log", func(w http.ResponseWriter, r *http.Request) {
		fmt.Printf("log line for %s\n", r.Header.Get("X-Call-Id"))
		fmt.Fprintln(os.Stderr, "to stderr")
	})
	http.HandleFunc("/spew", func(w http.ResponseWriter, r *http.Request) {
		mb, _ := strconv.Atoi(r.URL.Query().Get("mb"))
		line := []byte(strings.Repeat("x", 99) + "\n")
		for range mb * 10486 { // 100-byte lines, ~1 MB per 10486 lines
			_, _ = os.Stdout.Write(line)
		}
		fmt.Fprintf(w, "wrote %d MB", mb)
	})
	http.HandleFunc("/hang", func(w http.ResponseWriter, r *http.Request) {
		select {}
	})
	http.HandleFunc("/crash", func(w http.ResponseWriter, r *http.Request) {
		os.Exit(3)
	})
	http.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) {
		b := make([]byte, 64<<10)
		for range 200 { // 12.5 MiB, past the default 6 MiB limit
			_, _ = w.Write(b)
		}
	})
	port := os.Getenv("PORT")
	if err := http.ListenAndServe(":"+port, nil); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
