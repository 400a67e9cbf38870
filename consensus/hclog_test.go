package consensus

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
)

func TestHCLogAdapter(t *testing.T) {
	var buf bytes.Buffer
	l := newHCLog(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	l.Named("snapshot").With("path", "/data").Warn("retaining", "count", 2)
	l.Trace("hidden")
	l.StandardLogger(nil).Print("from the std logger")
	got := buf.String()
	for _, want := range []string{"level=WARN", "subsystem=raft", "logger=snapshot", "path=/data", "count=2", "from the std logger"} {
		if !strings.Contains(got, want) {
			t.Errorf("log output %q lacks %q", got, want)
		}
	}
	if strings.Contains(got, "hidden") {
		t.Errorf("trace line logged at debug level: %q", got)
	}
	if l.IsTrace() || !l.IsDebug() || l.GetLevel() != hclog.Debug {
		t.Errorf("levels: IsTrace %v IsDebug %v GetLevel %v, want false true DEBUG", l.IsTrace(), l.IsDebug(), l.GetLevel())
	}
	if got := l.Named("a").Named("b").Name(); got != "a.b" {
		t.Errorf("Name: got %q, want a.b", got)
	}
}
