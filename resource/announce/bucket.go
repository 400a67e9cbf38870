package announce

import (
	"math"
	"time"
)

// bucket is a token bucket: it holds at most burst tokens and gains rate tokens
// per second; sending a frame costs one token. It is pure (time comes in as an
// argument) and owned by one goroutine, so it has no lock.
type bucket struct {
	rate   float64 // tokens per second, > 0
	burst  float64 // capacity, >= 1
	tokens float64
	last   time.Time // when tokens was last brought up to date
}

// newBucket returns a full bucket.
func newBucket(rate float64, burst int, now time.Time) *bucket {
	return &bucket{rate: rate, burst: float64(burst), tokens: float64(burst), last: now}
}

func (b *bucket) refill(now time.Time) {
	if now.After(b.last) {
		b.tokens += now.Sub(b.last).Seconds() * b.rate
		if b.tokens > b.burst {
			b.tokens = b.burst
		}
		b.last = now
	}
}

// wait returns how long from now until n tokens are available; 0 if they are
// now. n must not exceed the burst, or the wait would be forever.
func (b *bucket) wait(now time.Time, n int) time.Duration {
	b.refill(now)
	missing := float64(n) - b.tokens
	if missing <= 0 {
		return 0
	}
	d := time.Duration(math.Ceil(missing / b.rate * float64(time.Second)))
	if d < time.Nanosecond {
		d = time.Nanosecond
	}
	return d
}

// take spends n tokens. The caller has checked wait first; taking more than
// there are leaves a debt the next wait accounts for.
func (b *bucket) take(now time.Time, n int) {
	b.refill(now)
	b.tokens -= float64(n)
}
