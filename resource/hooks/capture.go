package hooks

import (
	"bytes"
	"log/slog"
	"sync"
)

// capture turns a run's two output streams into log lines, within one budget of
// MaxOutput bytes. Each stream's writer is called by one goroutine (os/exec's
// copier), the budget is shared.
type capture struct {
	log *slog.Logger

	mu        sync.Mutex // guards the fields below
	budget    int
	lines     int
	truncated bool
	lastLine  string
	lastErr   string // the last line on stderr: what a failing hook says about itself
	streams   []*lineWriter
}

func newCapture(log *slog.Logger) *capture { return &capture{log: log, budget: MaxOutput} }

// writer returns the io.Writer for one stream.
func (c *capture) writer(stream string) *lineWriter {
	w := &lineWriter{c: c, stream: stream}
	c.mu.Lock()
	c.streams = append(c.streams, w)
	c.mu.Unlock()
	return w
}

// flush logs each stream's unterminated last line. Call it after the copiers
// finished (after exec.Cmd.Wait).
func (c *capture) flush() {
	c.mu.Lock()
	streams := c.streams
	c.mu.Unlock()
	for _, w := range streams {
		if len(w.buf) > 0 || w.cut {
			c.emit(w.stream, w.buf, w.cut)
			w.buf, w.cut = nil, false
		}
	}
}

func (c *capture) result() (lines int, truncated bool, last string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.lastErr != "" {
		return c.lines, c.truncated, c.lastErr // the two streams interleave at random; stderr explains
	}
	return c.lines, c.truncated, c.lastLine
}

// emit logs one line if the budget allows.
func (c *capture) emit(stream string, line []byte, cut bool) {
	line = bytes.TrimSuffix(line, []byte{'\r'})
	c.mu.Lock()
	if c.budget <= 0 {
		c.mu.Unlock()
		return
	}
	c.budget -= len(line) + 1
	over := c.budget <= 0
	if over {
		c.truncated = true
	}
	c.lines++
	s := string(line)
	c.lastLine = s
	if stream == "stderr" {
		c.lastErr = s
	}
	c.mu.Unlock()
	attrs := []any{"stream", stream, "line", s}
	if cut {
		attrs = append(attrs, "cut_at", MaxLine)
	}
	c.log.Info("hook output", attrs...)
	if over {
		c.log.Warn("hook output over the limit; the rest is dropped", "limit_bytes", MaxOutput)
	}
}

// lineWriter splits one stream into lines of at most MaxLine bytes.
type lineWriter struct {
	c      *capture
	stream string
	buf    []byte // the current line so far
	cut    bool   // the current line was longer than MaxLine; the rest is dropped
}

// Write implements io.Writer. It never fails: output past the budget is dropped,
// not refused, so the hook never blocks or gets EPIPE because of logging.
func (w *lineWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		chunk := p
		if i >= 0 {
			chunk = p[:i]
		}
		if room := MaxLine - len(w.buf); len(chunk) > room {
			w.buf = append(w.buf, chunk[:room]...)
			w.cut = true
		} else {
			w.buf = append(w.buf, chunk...)
		}
		if i < 0 {
			break
		}
		w.c.emit(w.stream, w.buf, w.cut)
		w.buf, w.cut = w.buf[:0], false
		p = p[i+1:]
	}
	return n, nil
}
