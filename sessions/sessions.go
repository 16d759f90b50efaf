// Package sessions keeps the browser-login state of Signet in storage:
// single sign-on sessions, login transactions, remembered consents and
// authorization codes. Every record goes through storage.Store, so it works
// on any backend and every replica sees it. Secrets (session cookies, codes)
// are stored only as SHA-256 hashes.
package sessions

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/signet-auth/signet/storage"
)

// Buckets.
const (
	sessionsBucket     = "sso_sessions"      // sha256(cookie) → Session
	userSessionsBucket = "user_sso_sessions" // user id "/" sha256(cookie) → ""
	consentsBucket     = "consents"          // user id "/" client id → Consent
	codesBucket        = "authorization_codes"
	// userCodesBucket indexes codes by user and client, so that withdrawing
	// a consent ends the codes in flight in its own transaction.
	userCodesBucket = "user_authorization_codes" // user id "/" client id "/" sha256(code) → ""
)

// Defaults.
const (
	DefaultIdleTTL        = 24 * time.Hour
	DefaultAbsoluteTTL    = 7 * 24 * time.Hour
	DefaultCodeTTL        = 60 * time.Second
	DefaultTransactionTTL = 15 * time.Minute
)

// touchEvery is how stale LastSeen may get before a lookup writes it: a
// write per page view would make every SSO redirect a commit.
const touchEvery = time.Minute

// ErrNotFound is returned for a session, transaction or code that does not
// exist or has expired.
var ErrNotFound = errors.New("sessions: not found or expired")

// Options configure a Manager. Zero values mean the defaults.
type Options struct {
	IdleTTL        time.Duration
	AbsoluteTTL    time.Duration
	CodeTTL        time.Duration
	TransactionTTL time.Duration
	Now            func() time.Time
}

// Manager reads and writes sessions, transactions, consents and codes.
type Manager struct {
	store storage.Store
	opts  Options

	keyMu sync.Mutex
	key   []byte // transaction MAC key, loaded on first use
}

// New returns a Manager over store.
func New(store storage.Store, opts Options) *Manager {
	if opts.IdleTTL <= 0 {
		opts.IdleTTL = DefaultIdleTTL
	}
	if opts.AbsoluteTTL <= 0 {
		opts.AbsoluteTTL = DefaultAbsoluteTTL
	}
	opts.IdleTTL = min(opts.IdleTTL, opts.AbsoluteTTL)
	if opts.CodeTTL <= 0 {
		opts.CodeTTL = DefaultCodeTTL
	}
	if opts.TransactionTTL <= 0 {
		opts.TransactionTTL = DefaultTransactionTTL
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Manager{store: store, opts: opts}
}

// Options are the effective options (defaults filled in).
func (m *Manager) Options() Options { return m.opts }

// NewSecret is 256 random bits, base64url.
func NewSecret() string {
	var b [32]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// Hash is the storage key of a secret: base64url(SHA-256).
func Hash(secret string) string {
	h := sha256.Sum256([]byte(secret))
	return base64.RawURLEncoding.EncodeToString(h[:])
}

// looksLikeSecret is the shape NewSecret makes; anything else is not
// looked up at all.
func looksLikeSecret(s string) bool {
	if len(s) != 43 {
		return false
	}
	for i := 0; i < len(s); i++ {
		b := s[i]
		if !(b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '-' || b == '_') {
			return false
		}
	}
	return true
}

// Session is one browser's single sign-on session. Times are unix
// nanoseconds except AuthTime (unix seconds, as in auth_time).
type Session struct {
	// Key is the storage key (the cookie's hash); codes name their session by it.
	Key string `json:"-"`
	// SID is the public session id (the sid claim); the cookie value is
	// another secret that is never stored.
	SID       string `json:"sid"`
	UserID    string `json:"user_id"`
	AuthTime  int64  `json:"auth_time"`
	CreatedAt int64  `json:"created_at"`
	LastSeen  int64  `json:"last_seen"`
	// Factors are the ways the user proved who they are in this session,
	// each with its time (factors.go); none stored means the password at
	// AuthTime (sessions made before factors were kept).
	Factors []Factor `json:"factors,omitempty"`
	// Clients are the clients the session issued a code or a device
	// approval to: when it ends, each is sent a back-channel logout
	// (package backchannel, backchannel.go).
	Clients []string `json:"clients,omitempty"`
	// Upstream is the provider the user signed in through (package
	// upstream), nil after any other login.
	Upstream *Upstream `json:"upstream,omitempty"`
}

// Upstream is a session's sign-in at an upstream provider: which one and,
// when Signet may end the provider's session at logout, the provider's ID
// token (the id_token_hint of that logout), sealed under the KEK by
// package upstream. It is never in a cookie, never in clear in storage.
type Upstream struct {
	Provider string `json:"provider"`
	// SealedIDToken is keys.SealSecret of the ID token; empty when the
	// provider's session is not to be ended from here.
	SealedIDToken []byte `json:"sealed_id_token,omitempty"`
}

func (m *Manager) alive(s *Session, now time.Time) bool {
	n := now.UnixNano()
	return n < s.CreatedAt+int64(m.opts.AbsoluteTTL) && n < s.LastSeen+int64(m.opts.IdleTTL)
}

// ExpiresAt is when the session ends unless used again.
func (m *Manager) ExpiresAt(s Session) time.Time {
	return time.Unix(0, min(s.CreatedAt+int64(m.opts.AbsoluteTTL), s.LastSeen+int64(m.opts.IdleTTL)))
}

// Start creates a session for user authenticated at authTime and returns
// the cookie value. It always makes a new id (no session fixation); the
// caller ends the previous session of the browser, if any.
func (m *Manager) Start(ctx context.Context, userID string, authTime time.Time) (string, Session, error) {
	return m.StartFactors(ctx, userID, []Factor{{Method: MethodPassword, At: authTime.Unix()}})
}

// StartFactors is Start for a login proven by factors; its auth_time is
// the latest factor's.
func (m *Manager) StartFactors(ctx context.Context, userID string, factors []Factor) (string, Session, error) {
	return m.StartUpstream(ctx, userID, factors, nil)
}

// StartUpstream is StartFactors for a sign-in through an upstream
// provider, kept with the session (nil: none).
func (m *Manager) StartUpstream(ctx context.Context, userID string, factors []Factor, up *Upstream) (string, Session, error) {
	cookie := NewSecret()
	key := Hash(cookie)
	now := m.opts.Now().UnixNano()
	var authTime int64
	for _, f := range factors {
		authTime = max(authTime, f.At)
	}
	s := Session{Key: key, SID: NewSecret()[:22], UserID: userID, AuthTime: authTime, CreatedAt: now, LastSeen: now, Factors: factors, Upstream: up}
	err := m.store.Batch(ctx, func(tx storage.Tx) error {
		if err := storage.PutJSON(tx, sessionsBucket, key, &s); err != nil {
			return err
		}
		return tx.Put(userSessionsBucket, userID+"/"+key, nil)
	})
	if err != nil {
		return "", Session{}, fmt.Errorf("start session: %w", err)
	}
	return cookie, s, nil
}

// Lookup returns the live session of cookie, or ErrNotFound.
func (m *Manager) Lookup(ctx context.Context, cookie string) (Session, error) {
	if !looksLikeSecret(cookie) {
		return Session{}, ErrNotFound
	}
	key := Hash(cookie)
	now := m.opts.Now()
	var s Session
	err := m.store.View(ctx, func(tx storage.Tx) error { return storage.GetJSON(tx, sessionsBucket, key, &s) })
	if errors.Is(err, storage.ErrNotFound) {
		return Session{}, ErrNotFound
	}
	if err != nil {
		return Session{}, fmt.Errorf("session: %w", err)
	}
	if !m.alive(&s, now) {
		return Session{}, ErrNotFound
	}
	s.Key = key
	if now.UnixNano()-s.LastSeen > int64(touchEvery) {
		err := m.store.Update(ctx, func(tx storage.Tx) error {
			var cur Session
			if err := storage.GetJSON(tx, sessionsBucket, key, &cur); err != nil {
				return err
			}
			cur.LastSeen, cur.Key = now.UnixNano(), key
			s = cur
			return storage.PutJSON(tx, sessionsBucket, key, &cur)
		})
		if errors.Is(err, storage.ErrNotFound) {
			return Session{}, ErrNotFound
		}
		if err != nil {
			return Session{}, fmt.Errorf("touch session: %w", err)
		}
	}
	return s, nil
}

// SessionExistsTx reports inside tx whether the session stored under key
// still exists: logout, force logout and expiry purge delete it.
func SessionExistsTx(tx storage.Tx, key string) (bool, error) {
	if key == "" {
		return false, nil
	}
	_, err := tx.Get(sessionsBucket, key)
	if errors.Is(err, storage.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// End deletes the session of cookie; an unknown cookie is not an error.
func (m *Manager) End(ctx context.Context, cookie string) error {
	if !looksLikeSecret(cookie) {
		return nil
	}
	key := Hash(cookie)
	err := m.store.Update(ctx, func(tx storage.Tx) error {
		var s Session
		if err := storage.GetJSON(tx, sessionsBucket, key, &s); err != nil {
			if errors.Is(err, storage.ErrNotFound) {
				return nil
			}
			return err
		}
		if err := tx.Delete(userSessionsBucket, s.UserID+"/"+key); err != nil {
			return err
		}
		if err := m.notifyEndTx(tx, &s); err != nil {
			return err
		}
		return tx.Delete(sessionsBucket, key)
	})
	if err != nil {
		return fmt.Errorf("end session: %w", err)
	}
	return nil
}

// EndSID deletes userID's session whose public id (the ID token's sid) is
// sid, and reports whether there was one: a relying party that logs out
// from its server, with the ID token and no browser, ends the session that
// token came from and no other. The user's index names the candidates (a
// user has a handful of sessions), so nothing scans all sessions.
func (m *Manager) EndSID(ctx context.Context, userID, sid string) (bool, error) {
	if userID == "" || sid == "" || strings.Contains(userID, "/") {
		return false, nil
	}
	ended := false
	err := m.store.Update(ctx, func(tx storage.Tx) error {
		ended = false
		var keys []string
		err := tx.Scan(userSessionsBucket, userID+"/", func(k string, _ []byte) error {
			keys = append(keys, k)
			return nil
		})
		if err != nil {
			return err
		}
		for _, k := range keys {
			key := strings.TrimPrefix(k, userID+"/")
			var cur Session
			if err := storage.GetJSON(tx, sessionsBucket, key, &cur); err != nil {
				if errors.Is(err, storage.ErrNotFound) {
					continue // the purge deletes the stale index entry
				}
				return err
			}
			if cur.SID != sid || cur.UserID != userID {
				continue
			}
			if err := tx.Delete(userSessionsBucket, k); err != nil {
				return err
			}
			ended = m.alive(&cur, m.opts.Now())
			if err := m.notifyEndTx(tx, &cur); err != nil {
				return err
			}
			return tx.Delete(sessionsBucket, key)
		}
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("end session %s: %w", sid, err)
	}
	return ended, nil
}

// EndUser deletes every session of userID (force logout) and returns how
// many there were. It takes the store, not a Manager, so that the offline
// CLI and the authority's logout hook can call it.
func EndUser(ctx context.Context, store storage.Store, userID string) (int, error) {
	n := 0
	err := store.Update(ctx, func(tx storage.Tx) error {
		var err error
		n, err = EndUserTx(tx, userID)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("end sessions of %s: %w", userID, err)
	}
	return n, nil
}

// EndUserTx is EndUser inside tx: the authority's force logout ends the
// SSO sessions in the same transaction that revokes the refresh tokens.
func EndUserTx(tx storage.Tx, userID string) (int, error) {
	if userID == "" || strings.Contains(userID, "/") {
		return 0, nil
	}
	var keys []string
	err := tx.Scan(userSessionsBucket, userID+"/", func(k string, _ []byte) error {
		keys = append(keys, k)
		return nil
	})
	if err != nil {
		return 0, err
	}
	for _, k := range keys {
		key := strings.TrimPrefix(k, userID+"/")
		if err := notifyEndKeyTx(tx, key, time.Now()); err != nil {
			return 0, err
		}
		if err := tx.Delete(sessionsBucket, key); err != nil {
			return 0, err
		}
		if err := tx.Delete(userSessionsBucket, k); err != nil {
			return 0, err
		}
	}
	return len(keys), nil
}
