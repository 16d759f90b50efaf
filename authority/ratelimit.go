package authority

import (
	"sync"
	"time"
)

// RateLimit bounds failed client authentications (RFC 6749 §2.3.1: the
// token endpoint MUST resist brute force). Counting is per client id and
// per client IP in fixed windows; once either reaches its limit, requests
// for it are answered 429 with Retry-After until the window ends.
type RateLimit struct {
	// Window is the counting window; default 1m.
	Window time.Duration
	// PerClient is the failures allowed per client id per window; default 10.
	// Negative disables the per-client limit.
	PerClient int
	// PerIP is the failures allowed per IP per window; default 100 (several
	// clients may share an address). Negative disables the per-IP limit.
	PerIP int
	// MaxEntries bounds the memory of each counter; default 10000. When
	// full, expired windows are dropped first, then an arbitrary one.
	MaxEntries int
}

func (rl *RateLimit) applyDefaults() {
	if rl.Window <= 0 {
		rl.Window = time.Minute
	}
	if rl.PerClient == 0 {
		rl.PerClient = 10
	}
	if rl.PerIP == 0 {
		rl.PerIP = 100
	}
	if rl.MaxEntries <= 0 {
		rl.MaxEntries = 10000
	}
}

// failureCounter counts failures per key in fixed windows.
type failureCounter struct {
	limit  int // < 0: disabled
	window time.Duration
	max    int

	mu sync.Mutex
	m  map[string]failWindow
}

type failWindow struct {
	start time.Time
	n     int
}

func newFailureCounter(limit int, window time.Duration, maxEntries int) *failureCounter {
	return &failureCounter{limit: limit, window: window, max: maxEntries, m: map[string]failWindow{}}
}

// retryAfter is how long key stays blocked; 0 when it is not.
func (fc *failureCounter) retryAfter(key string, now time.Time) time.Duration {
	if fc.limit < 0 {
		return 0
	}
	fc.mu.Lock()
	defer fc.mu.Unlock()
	if len(fc.m) == 0 {
		return 0
	}
	w, ok := fc.m[key]
	if !ok || w.n < fc.limit {
		return 0
	}
	if left := w.start.Add(fc.window).Sub(now); left > 0 {
		return left
	}
	return 0
}

// fail counts one failure for key.
func (fc *failureCounter) fail(key string, now time.Time) {
	if fc.limit < 0 {
		return
	}
	fc.mu.Lock()
	defer fc.mu.Unlock()
	w, ok := fc.m[key]
	if !ok || now.Sub(w.start) >= fc.window {
		if !ok && len(fc.m) >= fc.max {
			fc.evict(now)
		}
		w = failWindow{start: now}
	}
	w.n++
	fc.m[key] = w
}

// evict makes room: expired windows first, else one arbitrary entry.
func (fc *failureCounter) evict(now time.Time) {
	for k, w := range fc.m {
		if now.Sub(w.start) >= fc.window {
			delete(fc.m, k)
		}
	}
	if len(fc.m) < fc.max {
		return
	}
	for k := range fc.m {
		delete(fc.m, k)
		return
	}
}
