package logs

import "github.com/coreos/go-systemd/v22/journal"

// journal copies lines to journald when configured. A journald that is not
// there, or refuses, costs the lines their copy, never their place in the
// files; the failure is logged once per outage.
func (s *Store) journal(lines []Line) {
	if !s.cfg.Journal {
		return
	}
	for _, l := range lines {
		msg, pri, vars := journalEntry(l)
		if err := journal.Send(msg, pri, vars); err != nil {
			if !s.journalDown.Swap(true) {
				s.log.Warn("journald unreachable: function output goes to the log files only", "err", err)
			}
			continue
		}
		if s.journalDown.Swap(false) {
			s.log.Info("journald reachable again")
		}
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
