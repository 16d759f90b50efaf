package authority

import (
	"sync"
	"time"

	"github.com/signet-auth/signet/clientauth"
	"github.com/signet-auth/signet/ratelimit"
	"github.com/signet-auth/signet/users"
)

// RateLimit bounds failed client authentications; clientauth applies it.
type RateLimit = clientauth.RateLimit

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
	userIP, ip, user *ratelimit.Counter
	knownFor         time.Duration
	max              int

	mu    sync.Mutex
	known map[string]time.Time // username+"\x00"+ip → last success
}

func newLoginLimiter(rl LoginRateLimit) *loginLimiter {
	return &loginLimiter{
		userIP:   ratelimit.NewCounter(rl.PerUserIP, rl.Window, rl.MaxEntries),
		ip:       ratelimit.NewCounter(rl.PerIP, rl.Window, rl.MaxEntries),
		user:     ratelimit.NewCounter(rl.PerUser, rl.Window, rl.MaxEntries),
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
	wait := max(l.userIP.RetryAfter(pair, now), l.ip.RetryAfter(ip, now))
	if w := l.user.RetryAfter(username, now); w > wait && !l.isKnown(pair, now) {
		wait = w
	}
	return wait
}

func (l *loginLimiter) fail(username, ip string, now time.Time) {
	username = users.NameKey(username)
	l.userIP.Fail(username+"\x00"+ip, now)
	l.ip.Fail(ip, now)
	l.user.Fail(username, now)
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
