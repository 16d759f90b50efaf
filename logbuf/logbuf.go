// Package logbuf buffers a log file: whole lines are held in memory and
// written in one system call per flush, with errors flushed at once.
package logbuf

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"time"
)

// Log buffering. With the access log on, every request writes a line; one
// write system call per line cost about 19 µs of CPU per token on the
// loopback load run (issue 18), more than everything else the request does
// besides HTTP and signing. So when the log goes to a file descriptor,
// lines collect in memory and go out in one write:
//   - every FlushInterval, so a tail of the log lags by at most that;
//   - at once after a line at warn or above (errors are never held back,
//     and are out before a crash that may follow them);
//   - when the buffer holds BufferSize bytes;
//   - when startup ends (the "signet serving" line) and at Close, after the
//     listeners have finished their requests, so SIGTERM loses no line.
//
// What a SIGKILL or an unrecovered panic can lose is the info lines of
// the last FlushInterval. An in-memory writer (tests, io.Discard)
// costs no system call and is left unbuffered.
const (
	// FlushInterval is how often a Buffer driven by a ticker should flush.
	FlushInterval = time.Second
	// BufferSize is what a Buffer holds before it flushes by itself.
	BufferSize = 64 << 10
)

// Buffer is an io.Writer that holds whole lines (slog writes one line
// per Write) until Flush.
type Buffer struct {
	mu     sync.Mutex
	w      io.Writer
	buf    []byte
	closed bool
	stop   chan struct{}
	done   chan struct{}
}

// New buffers writes to w and flushes on every receive from tick;
// stopTick is called at Close (a time.Ticker's Stop).
func New(w io.Writer, tick <-chan time.Time, stopTick func()) *Buffer {
	b := &Buffer{w: w, buf: make([]byte, 0, BufferSize), stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(b.done)
		defer stopTick()
		for {
			select {
			case <-tick:
				_ = b.Flush()
			case <-b.stop:
				return
			}
		}
	}()
	return b
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return b.w.Write(p)
	}
	if len(b.buf)+len(p) > cap(b.buf) {
		if err := b.flushLocked(); err != nil {
			return 0, err
		}
		if len(p) > cap(b.buf) {
			return b.w.Write(p)
		}
	}
	b.buf = append(b.buf, p...)
	return len(p), nil
}

// Flush writes out what is buffered.
func (b *Buffer) Flush() error {
	if b == nil {
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.flushLocked()
}

func (b *Buffer) flushLocked() error {
	if len(b.buf) == 0 {
		return nil
	}
	_, err := b.w.Write(b.buf)
	b.buf = b.buf[:0] // a failed write is not retried: the next lines would pile up behind it
	return err
}

// Close stops the timer and flushes; later writes go straight through, so
// a line logged after Close is not lost either.
func (b *Buffer) Close() error {
	if b == nil {
		return nil
	}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	err := b.flushLocked()
	b.mu.Unlock()
	close(b.stop)
	<-b.done
	return err
}

// FlushOnWarn wraps a handler writing to B: B is flushed after every
// record at warn or above.
type FlushOnWarn struct {
	slog.Handler
	B *Buffer
}

func (h FlushOnWarn) Handle(ctx context.Context, r slog.Record) error {
	err := h.Handler.Handle(ctx, r)
	if r.Level >= slog.LevelWarn {
		if ferr := h.B.Flush(); err == nil {
			err = ferr
		}
	}
	return err
}

func (h FlushOnWarn) WithAttrs(as []slog.Attr) slog.Handler {
	return FlushOnWarn{h.Handler.WithAttrs(as), h.B}
}

func (h FlushOnWarn) WithGroup(name string) slog.Handler {
	return FlushOnWarn{h.Handler.WithGroup(name), h.B}
}
