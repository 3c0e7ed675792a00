package logs

import (
	"fmt"
	"strconv"
	"time"
)

// bucket is a token bucket counted in bytes: it holds at most burst, and
// fills at rate per second of the injected clock. It starts full.
type bucket struct {
	rate, burst float64
	tokens      float64
	last        time.Time // zero until the first take
}

// take spends cost bytes if the bucket holds them. A full bucket pays for
// any line, going negative, so a configuration where one line costs more
// than the burst still lets lines through, at the sustained rate.
func (b *bucket) take(now time.Time, cost int64) bool {
	switch d := now.Sub(b.last); {
	case b.last.IsZero():
		b.tokens = b.burst
	case d > 0:
		b.tokens = min(b.burst, b.tokens+d.Seconds()*b.rate)
	}
	b.last = now
	c := float64(cost)
	if b.tokens < c && b.tokens < b.burst {
		return false
	}
	b.tokens -= c
	return true
}

// drops counts the lines one writer lost to its function's rate limit since
// the last notice.
type drops struct {
	lines, bytes int64
}

// notice is the text of the line that reports the drops.
func (d drops) notice(rate int64) string {
	kib := strconv.FormatFloat(float64(rate)/1024, 'f', -1, 64)
	return fmt.Sprintf("dropped %d lines (%d bytes) of output: over the rate limit of %s KiB/s", d.lines, d.bytes, kib)
}
