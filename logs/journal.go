package logs

import (
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/coreos/go-systemd/v22/journal"
)

// journalQueue is how many lines may wait for journald. journal.Send waits
// when journald's socket buffer is full, so it runs on a goroutine of its
// own: a slow journald costs lines their copy, never a function's Write.
const journalQueue = 4096

// journalWait bounds how long Close waits for the queue to drain into a
// journald that does not read.
const journalWait = 2 * time.Second

// journalSender copies stored lines to journald, best effort.
type journalSender struct {
	ch      chan Line
	done    chan struct{}
	log     *slog.Logger
	dropped atomic.Int64 // lines that found the queue full since the last report
}

func startJournal(log *slog.Logger) *journalSender {
	j := &journalSender{ch: make(chan Line, journalQueue), done: make(chan struct{}), log: log}
	go j.run()
	return j
}

// send queues a line without waiting. It is called under the line's
// function lock, which is what orders it before close.
func (j *journalSender) send(l Line) {
	select {
	case j.ch <- l:
	default:
		j.dropped.Add(1)
	}
}

func (j *journalSender) run() {
	defer close(j.done)
	down := false // the last send failed; logged once per outage
	for l := range j.ch {
		msg, pri, vars := journalEntry(l)
		if err := journal.Send(msg, pri, vars); err != nil {
			if !down {
				j.log.Warn("journald unreachable: function output goes to the log files only", "err", err)
			}
			down = true
			continue
		}
		if down {
			j.log.Info("journald reachable again")
		}
		down = false
		if n := j.dropped.Swap(0); n > 0 {
			j.log.Warn("journald too slow: function output lines not copied to it", "lines", n)
		}
	}
}

// close sends what is queued and stops, waiting journalWait at most.
func (j *journalSender) close() {
	close(j.ch)
	select {
	case <-j.done:
	case <-time.After(journalWait):
		j.log.Warn("journald not reading: lines still queued for it are dropped")
	}
}

// journalEntry maps a line to a journal message: warning for stderr and
// for the store's own notices (lost output), info for the rest.
func journalEntry(l Line) (string, journal.Priority, map[string]string) {
	pri := journal.PriInfo
	if l.Stream == StreamStderr || l.Stream == StreamNotice {
		pri = journal.PriWarning
	}
	vars := map[string]string{"FUNCTION": l.Function, "STREAM": l.Stream}
	if l.Instance != "" {
		vars["INSTANCE"] = l.Instance
	}
	if l.CallID != "" {
		vars["CALL_ID"] = l.CallID
	}
	return l.Text, pri, vars
}
