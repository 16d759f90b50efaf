package ratelimit

import (
	"sync"
	"time"
)

// Login bounds failed password logins (the password grant, the login
// page).
// Failures are counted per username+IP, per IP and per username, in fixed
// windows: a block always ends with its window, so no one can lock an
// account for longer than they keep failing. The per-username count (which
// a distributed attacker can drive) does not block an address that logged
// in to that account successfully within KnownFor: such a user is never
// locked out by someone else's failures.
type Login struct {
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

func (rl *Login) applyDefaults() {
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

// LoginLimiter applies a Login policy. Usernames reach it normalised by
// the caller (users.NameKey), so that this package needs none of ours.
type LoginLimiter struct {
	userIP, ip, user *Counter
	knownFor         time.Duration
	max              int

	mu    sync.Mutex
	known map[string]time.Time // username+"\x00"+ip → last success
}

// NewLoginLimiter applies rl, its zero fields set to the defaults.
func NewLoginLimiter(rl Login) *LoginLimiter {
	rl.applyDefaults()
	return &LoginLimiter{
		userIP:   NewCounter(rl.PerUserIP, rl.Window, rl.MaxEntries),
		ip:       NewCounter(rl.PerIP, rl.Window, rl.MaxEntries),
		user:     NewCounter(rl.PerUser, rl.Window, rl.MaxEntries),
		knownFor: rl.KnownFor,
		max:      rl.MaxEntries,
		known:    map[string]time.Time{},
	}
}

func (l *LoginLimiter) isKnown(pair string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	t, ok := l.known[pair]
	return ok && now.Sub(t) < l.knownFor
}

// RetryAfter is how long a login for username from ip must wait; 0: go on.
func (l *LoginLimiter) RetryAfter(username, ip string, now time.Time) time.Duration {
	pair := username + "\x00" + ip
	wait := max(l.userIP.RetryAfter(pair, now), l.ip.RetryAfter(ip, now))
	if w := l.user.RetryAfter(username, now); w > wait && !l.isKnown(pair, now) {
		wait = w
	}
	return wait
}

// Fail counts a failed login.
func (l *LoginLimiter) Fail(username, ip string, now time.Time) {
	l.userIP.Fail(username+"\x00"+ip, now)
	l.ip.Fail(ip, now)
	l.user.Fail(username, now)
}

// Succeed records a successful login: its address is known for username.
func (l *LoginLimiter) Succeed(username, ip string, now time.Time) {
	pair := username + "\x00" + ip
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
