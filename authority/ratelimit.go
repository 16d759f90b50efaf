package authority

import (
	"sync"
	"time"

	"github.com/signet-auth/signet/users"
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

// LoginRateLimit bounds failed password logins (grant_type=password).
// Failures are counted per username+IP, per IP and per username, in fixed
// windows: a block always ends with its window, so no one can lock an
// account for longer than they keep failing. The per-username count (which
// a distributed attacker can drive) does not block an address that logged
// in to that account successfully within KnownFor: such a user is never
// locked out by someone else's failures.
type LoginRateLimit struct {
	// Window is the counting window; default 1m.
	Window time.Duration
	// PerUserIP is failures per username from one address; default 5.
	PerUserIP int
	// PerIP is failures per address over all usernames; default 20.
	PerIP int
	// PerUser is failures per username over all addresses; default 100.
	PerUser int
	// KnownFor is how long a successful login exempts its address from the
	// per-username limit; default 30 days.
	KnownFor time.Duration
	// MaxEntries bounds the memory of each counter; default 10000.
	MaxEntries int
}

func (rl *LoginRateLimit) applyDefaults() {
	if rl.Window <= 0 {
		rl.Window = time.Minute
	}
	if rl.PerUserIP == 0 {
		rl.PerUserIP = 5
	}
	if rl.PerIP == 0 {
		rl.PerIP = 20
	}
	if rl.PerUser == 0 {
		rl.PerUser = 100
	}
	if rl.KnownFor <= 0 {
		rl.KnownFor = 30 * 24 * time.Hour
	}
	if rl.MaxEntries <= 0 {
		rl.MaxEntries = 10000
	}
}

// loginLimiter applies a LoginRateLimit.
type loginLimiter struct {
	userIP, ip, user *failureCounter
	knownFor         time.Duration
	max              int

	mu    sync.Mutex
	known map[string]time.Time // username+"\x00"+ip → last success
}

func newLoginLimiter(rl LoginRateLimit) *loginLimiter {
	return &loginLimiter{
		userIP:   newFailureCounter(rl.PerUserIP, rl.Window, rl.MaxEntries),
		ip:       newFailureCounter(rl.PerIP, rl.Window, rl.MaxEntries),
		user:     newFailureCounter(rl.PerUser, rl.Window, rl.MaxEntries),
		knownFor: rl.KnownFor,
		max:      rl.MaxEntries,
		known:    map[string]time.Time{},
	}
}

func (l *loginLimiter) isKnown(pair string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	t, ok := l.known[pair]
	return ok && now.Sub(t) < l.knownFor
}

// retryAfter is how long a login for username from ip must wait; 0: go on.
func (l *loginLimiter) retryAfter(username, ip string, now time.Time) time.Duration {
	username = users.NameKey(username)
	pair := username + "\x00" + ip
	wait := max(l.userIP.retryAfter(pair, now), l.ip.retryAfter(ip, now))
	if w := l.user.retryAfter(username, now); w > wait && !l.isKnown(pair, now) {
		wait = w
	}
	return wait
}

func (l *loginLimiter) fail(username, ip string, now time.Time) {
	username = users.NameKey(username)
	l.userIP.fail(username+"\x00"+ip, now)
	l.ip.fail(ip, now)
	l.user.fail(username, now)
}

func (l *loginLimiter) succeed(username, ip string, now time.Time) {
	pair := users.NameKey(username) + "\x00" + ip
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.known[pair]; !ok && len(l.known) >= l.max {
		for k, t := range l.known {
			if now.Sub(t) >= l.knownFor {
				delete(l.known, k)
			}
		}
		if len(l.known) >= l.max {
			for k := range l.known {
				delete(l.known, k)
				break
			}
		}
	}
	l.known[pair] = now
}
