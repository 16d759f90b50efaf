// Package ratelimit counts failures per key in fixed windows, in memory:
// failed client authentications (clientauth) and failed password logins
// (authority) are each bounded by a few such counters. A block always ends
// with its window, so no one can lock a key for longer than they keep
// failing.
package ratelimit

import (
	"sync"
	"time"
)

// Counter counts failures per key in fixed windows. Its memory is bounded:
// when full, expired windows are dropped first, then an arbitrary one.
type Counter struct {
	limit  int // < 0: disabled
	window time.Duration
	max    int

	mu sync.Mutex
	m  map[string]window
}

type window struct {
	start time.Time
	n     int
}

// NewCounter allows limit failures per key per window (a negative limit
// disables the counter) and remembers at most maxEntries keys.
func NewCounter(limit int, win time.Duration, maxEntries int) *Counter {
	return &Counter{limit: limit, window: win, max: maxEntries, m: map[string]window{}}
}

// RetryAfter is how long key stays blocked; 0 when it is not.
func (c *Counter) RetryAfter(key string, now time.Time) time.Duration {
	if c.limit < 0 {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) == 0 {
		return 0
	}
	w, ok := c.m[key]
	if !ok || w.n < c.limit {
		return 0
	}
	if left := w.start.Add(c.window).Sub(now); left > 0 {
		return left
	}
	return 0
}

// Fail counts one failure for key.
func (c *Counter) Fail(key string, now time.Time) {
	if c.limit < 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	w, ok := c.m[key]
	if !ok || now.Sub(w.start) >= c.window {
		if !ok && len(c.m) >= c.max {
			c.evict(now)
		}
		w = window{start: now}
	}
	w.n++
	c.m[key] = w
}

// evict makes room: expired windows first, else one arbitrary entry.
func (c *Counter) evict(now time.Time) {
	for k, w := range c.m {
		if now.Sub(w.start) >= c.window {
			delete(c.m, k)
		}
	}
	if len(c.m) < c.max {
		return
	}
	for k := range c.m {
		delete(c.m, k)
		return
	}
}

// Take spends one unit of key's budget for this window and returns 0, or,
// when the budget is spent, counts nothing and returns how long until the
// window ends. Check and count are one step, so concurrent callers never
// spend more than the limit (RetryAfter then Fail would).
func (c *Counter) Take(key string, now time.Time) time.Duration {
	if c.limit < 0 {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	w, ok := c.m[key]
	if ok && now.Sub(w.start) < c.window && w.n >= c.limit {
		return w.start.Add(c.window).Sub(now)
	}
	if !ok || now.Sub(w.start) >= c.window {
		if !ok && len(c.m) >= c.max {
			c.evict(now)
		}
		w = window{start: now}
	}
	w.n++
	c.m[key] = w
	return 0
}
