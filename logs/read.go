package logs

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	"github.com/edgefaas/edgefaas/errdefs"
)

// Query selects the lines of one function.
type Query struct {
	Function string    // required
	Since    time.Time // zero: everything kept
	CallID   string    // only this call's lines
	Tail     int       // when > 0, only the last Tail matching lines (before following)
}

func (q Query) match(l Line) bool {
	return (q.CallID == "" || l.CallID == q.CallID) && (q.Since.IsZero() || !l.Time.Before(q.Since))
}

// Read returns the function's stored lines that match q, oldest first. A
// function that has no log files is ErrNotFound.
func (s *Store) Read(ctx context.Context, q Query) ([]Line, error) {
	f, err := s.function(q.Function, false)
	if err != nil {
		return nil, err
	}
	snap, err := f.snapshot(nil)
	if err != nil {
		return nil, err
	}
	if len(snap.files) == 0 {
		return nil, fmt.Errorf("logs of function %q: %w", q.Function, errdefs.ErrNotFound)
	}
	lines, _, err := snap.read(ctx, q)
	return lines, err
}

// snapshot is the function's files as they were at one instant: they are
// opened under the function's lock, so a later rotation (a rename) or trim
// (an unlink) does not change what is read.
type snapshot struct {
	files  []*os.File // oldest first
	limits []int64    // bytes to read of each file; -1: all
	seq    uint64     // of the last line stored at that instant
}

// snapshot writes the buffer out and opens the files. When sub is not nil
// it starts receiving live lines at the same instant, so the lines a
// follower reads and the ones it is sent neither overlap nor leave a gap.
func (f *function) snapshot(sub *subscriber) (snapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.gone != nil {
		return snapshot{}, f.gone
	}
	if err := f.load(); err != nil {
		return snapshot{}, fmt.Errorf("logs of function %q: %w", f.name, err)
	}
	f.flush()
	var snap snapshot
	for n := len(f.rotated); n >= 0; n-- {
		file, err := os.Open(f.path(n))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			snap.close()
			return snapshot{}, fmt.Errorf("logs of function %q: %w", f.name, err)
		}
		limit := int64(-1)
		if n == 0 {
			// Bytes past f.size are appended after this instant; they may
			// end in half a line.
			limit = f.size
		}
		snap.files = append(snap.files, file)
		snap.limits = append(snap.limits, limit)
	}
	snap.seq = f.seq
	if sub != nil {
		f.subs[sub] = struct{}{}
	}
	return snap, nil
}

func (snap snapshot) close() {
	for _, file := range snap.files {
		file.Close()
	}
}

// read parses the snapshot's files and returns the lines matching q, and
// the highest sequence number it saw. Records that do not parse (a line
// torn by a crash) are skipped.
func (snap snapshot) read(ctx context.Context, q Query) ([]Line, uint64, error) {
	defer snap.close()
	lines := []Line{}
	var last uint64
	for i, file := range snap.files {
		if err := ctx.Err(); err != nil {
			return nil, 0, err
		}
		var r io.Reader = file
		if snap.limits[i] >= 0 {
			r = io.LimitReader(file, snap.limits[i])
		}
		br := bufio.NewReaderSize(r, 64<<10)
		for {
			b, err := br.ReadBytes('\n')
			var rec record
			if len(b) > 0 && json.Unmarshal(b, &rec) == nil {
				last = max(last, rec.Seq)
				if q.match(rec.Line) {
					lines = append(lines, rec.Line)
				}
			}
			if err == io.EOF {
				break
			}
			if err != nil {
				return nil, 0, fmt.Errorf("logs of function %q: %w", q.Function, err)
			}
		}
	}
	if q.Tail > 0 && len(lines) > q.Tail {
		lines = slices.Clone(lines[len(lines)-q.Tail:])
	}
	return lines, last, nil
}
