package doctor

import (
	"context"
	"errors"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

func TestMeasureStep(t *testing.T) {
	tests := []struct {
		name string
		step time.Duration // applied to realtime between the two reads
		want time.Duration
	}{
		{"steady", 0, 0},
		{"stepped forward", 3 * time.Second, 3 * time.Second},
		{"stepped back", -40 * time.Millisecond, -40 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				start := time.Now()
				read := func() (time.Duration, time.Duration) {
					boot := time.Since(start) + time.Hour
					real := boot + 1e9*time.Second
					if time.Since(start) > 0 {
						real += tt.step
					}
					return real, boot
				}
				got, err := MeasureStep(context.Background(), read, time.Second)
				if err != nil || got != tt.want {
					t.Errorf("MeasureStep = %v, %v; want %v", got, err, tt.want)
				}
				if waited := time.Since(start); waited != time.Second {
					t.Errorf("MeasureStep waited %v, want the 1s window", waited)
				}
			})
		})
	}
}

func TestMeasureStepCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := MeasureStep(ctx, ReadClocks, time.Hour)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("MeasureStep on a cancelled context = %v, want context.Canceled", err)
	}
}

func TestClock(t *testing.T) {
	synced := Sync{Synced: true, MaxError: 16 * time.Millisecond}
	tests := []struct {
		name     string
		step     time.Duration
		stepErr  error
		sync     Sync
		syncErr  error
		want     [2]Severity
		wantText string
	}{
		{"quiet and synced", 20 * time.Microsecond, nil, synced, nil, [2]Severity{OK, OK}, "no wall-clock step"},
		{"stepped", 2 * time.Second, nil, synced, nil, [2]Severity{Warn, OK}, "stepped by 2s"},
		{"stepped back", -5 * time.Millisecond, nil, synced, nil, [2]Severity{Warn, OK}, "exactly one time daemon"},
		{"unsynced", 0, nil, Sync{}, nil, [2]Severity{OK, Warn}, "chrony"},
		{"unknown", 0, context.Canceled, Sync{}, errors.New("adjtimex: operation not permitted"), [2]Severity{Info, Info}, "not measured"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := Clock(tt.step, time.Second, tt.stepErr, tt.sync, tt.syncErr)
			if len(fs) != 2 || fs[0].Severity != tt.want[0] || fs[1].Severity != tt.want[1] {
				t.Fatalf("Clock(%v, %+v) = %+v, want severities %v", tt.step, tt.sync, fs, tt.want)
			}
			text := fs[0].Message + fs[0].Fix + fs[1].Message + fs[1].Fix
			if !strings.Contains(text, tt.wantText) {
				t.Errorf("Clock(%v, %+v) says %q, want %q in it", tt.step, tt.sync, text, tt.wantText)
			}
		})
	}
}

// TestReadClocks checks the real clocks: the offset of two reads in a row moves by
// far less than the step limit when nothing sets the clock.
func TestReadClocks(t *testing.T) {
	r1, b1 := ReadClocks()
	r2, b2 := ReadClocks()
	if b2 < b1 || r1 < 1e9*time.Second/2 {
		t.Fatalf("ReadClocks: realtime %v, boottime %v then %v: not plausible", r1, b1, b2)
	}
	if d := (r2 - b2) - (r1 - b1); d >= stepLimit || d <= -stepLimit {
		t.Errorf("offset moved %v between two reads in a row (limit %v)", d, stepLimit)
	}
	if _, err := ReadSync(); err != nil {
		t.Errorf("ReadSync: %v", err)
	}
}
