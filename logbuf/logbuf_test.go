package logbuf

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// lockedBuffer is the file under a Buffer: it counts writes, and tells
// wrote (when set) of each.
type lockedBuffer struct {
	mu     sync.Mutex
	b      bytes.Buffer
	writes int
	wrote  chan struct{}
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.writes++
	if l.wrote != nil {
		l.wrote <- struct{}{}
	}
	return l.b.Write(p)
}

func (l *lockedBuffer) get() (string, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String(), l.writes
}

// TestLogBuffer_Ticker: lines are held until the injected ticker fires,
// then go out in one write, in order; a full buffer flushes by itself; a
// line larger than the buffer is written whole; Close flushes what is
// left and stops the ticker; a write after Close goes straight through.
func TestLogBuffer_Ticker(t *testing.T) {
	out := &lockedBuffer{wrote: make(chan struct{}, 16)}
	tick := make(chan time.Time)
	stopped := make(chan struct{})
	b := New(out, tick, func() { close(stopped) })

	for i := range 100 {
		fmt.Fprintf(b, "line %d\n", i)
	}
	if got, n := out.get(); got != "" || n != 0 {
		t.Fatalf("before the tick: %d writes, %q", n, got)
	}
	tick <- time.Now()
	<-out.wrote // the tick's flush wrote. (A second tick to wait for it ran a
	// second flush concurrently with the writes below, which then flushed
	// them early now and then: "3 writes, want 2", once in CI.)
	got, n := out.get()
	if n != 1 {
		t.Errorf("100 lines took %d writes, want 1", n)
	}
	for i := range 100 {
		if !strings.Contains(got, fmt.Sprintf("line %d\n", i)) {
			t.Fatalf("line %d missing after the tick", i)
		}
	}
	if !strings.HasPrefix(got, "line 0\nline 1\n") || !strings.HasSuffix(got, "line 99\n") {
		t.Errorf("out of order: %.40q ... ", got)
	}

	// Filling the buffer flushes it before the line that does not fit.
	line := strings.Repeat("x", 1023) + "\n"
	for range BufferSize/len(line) + 1 {
		b.Write([]byte(line))
	}
	if _, n := out.get(); n != 2 {
		t.Errorf("after filling the buffer: %d writes, want 2", n)
	}
	huge := strings.Repeat("y", BufferSize+1)
	b.Write([]byte(huge))
	if got, n := out.get(); n != 4 || !strings.HasSuffix(got, huge) {
		t.Errorf("a line larger than the buffer: %d writes (want 4: the buffered lines, then it)", n)
	}

	b.Write([]byte("last\n"))
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-stopped:
	default:
		t.Error("Close did not stop the ticker")
	}
	if got, _ := out.get(); !strings.HasSuffix(got, "last\n") {
		t.Error("Close did not flush")
	}
	b.Write([]byte("after close\n"))
	if got, _ := out.get(); !strings.HasSuffix(got, "after close\n") {
		t.Error("a line written after Close was held")
	}
	if err := b.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// TestLogBuffer_WarnFlushes: an info line waits for the timer; a warning
// goes out at once, with the info lines before it, through loggers derived
// with attributes and groups too.
func TestLogBuffer_WarnFlushes(t *testing.T) {
	out := &lockedBuffer{}
	b := New(out, nil, func() {})
	defer b.Close()
	log := slog.New(FlushOnWarn{slog.NewJSONHandler(b, nil), b}).With("component", "x").WithGroup("g")
	log.Info("request", "path", "/a")
	if got, _ := out.get(); got != "" {
		t.Fatalf("an info line was written at once: %s", got)
	}
	log.LogAttrs(context.Background(), slog.LevelWarn, "careful")
	got, n := out.get()
	if n != 1 || !strings.Contains(got, `"msg":"request"`) || !strings.Contains(got, `"msg":"careful"`) {
		t.Errorf("after a warning: %d writes: %s", n, got)
	}
	log.Error("bad")
	if got, _ := out.get(); !strings.Contains(got, `"msg":"bad"`) {
		t.Error("an error line was held")
	}
}
