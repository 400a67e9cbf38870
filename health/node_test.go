package health

import (
	"testing"
	"time"
)

func TestLoopLag(t *testing.T) {
	const ms = time.Millisecond
	var l LoopLag
	steps := []struct {
		gap               time.Duration
		wantLast, wantMax time.Duration
	}{
		{25 * ms, 0, 0}, // on time
		{20 * ms, 0, 0}, // early (the tick after a late one): no lateness
		{65 * ms, 40 * ms, 40 * ms},
		{25 * ms, 0, 40 * ms},     // the worst of the last read (40) is kept until read again
		{30 * ms, 5 * ms, 5 * ms}, // that read reset the worst to the last lateness
	}
	for i, s := range steps {
		l.Note(s.gap, 25*ms)
		last, worst := l.Lag()
		if last != s.wantLast || worst != s.wantMax {
			t.Errorf("step %d (gap %v): Lag() = %v, %v; want %v, %v", i, s.gap, last, worst, s.wantLast, s.wantMax)
		}
	}
}
