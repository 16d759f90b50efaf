// Package signettest runs a whole Signet for tests: a bbolt file in the
// test's temp dir, the real key manager, the authority server, sessions
// and the hosted login over real HTTP on 127.0.0.1, with an injected
// clock, plus a cookie-keeping browser and the JWT and PKCE helpers the
// end-to-end tests of several packages share. It is for tests only; no
// production code imports it.
package signettest

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/signet-auth/signet/authority"
	"github.com/signet-auth/signet/authority/admin"
	"github.com/signet-auth/signet/keys"
	"github.com/signet-auth/signet/keys/jwksdoc"
	"github.com/signet-auth/signet/login"
	"github.com/signet-auth/signet/sessions"
	"github.com/signet-auth/signet/storage"
	"github.com/signet-auth/signet/storage/bolt"
	"github.com/signet-auth/signet/users"
)

// epoch is where a stack's clock starts unless the test gives one.
var epoch = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

// KEK returns the key-encryption key test stacks open their keys with
// (a fresh slice: callers may keep it).
func KEK() []byte { return bytes.Repeat([]byte{7}, 32) }

// Clock is an injected clock the test moves by hand; safe for
// concurrent use.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock returns a clock standing at t.
func NewClock(t time.Time) *Clock { return &Clock{t: t} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Add moves the clock by d.
func (c *Clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// Options change what Start opens. The zero value is a bolt file, RS256
// and ES256 keys, a clock at 1 May 2026 12:00 UTC, logs discarded, plain
// HTTP on 127.0.0.1.
type Options struct {
	// Logger receives the stack's logs; nil discards them.
	Logger *slog.Logger
	// LogStore gives Logger to the bolt store as well.
	LogStore bool
	// Store, when set, is the store to run on instead of a bolt file
	// (Start closes it at the end of the test all the same).
	Store storage.Store
	// Algorithms are the signing algorithms; nil means RS256 and ES256.
	Algorithms []string
	// Clock, when set, is the injected clock; nil starts one at 1 May
	// 2026 12:00 UTC.
	Clock *Clock
	// RealTime leaves the clock out: the key manager, the authority and
	// the sessions read the wall clock (Stack.Clock is nil).
	RealTime bool
	// Keys, when set, edits the key manager's options before it opens.
	Keys func(*keys.Options)
	// TLS serves https (httptest's TLS server and test CA).
	TLS bool
	// Localhost names the issuer http://localhost:PORT instead of the IP
	// address (a WebAuthn RP ID cannot be an IP address; cookies are per
	// host, so two stacks need two names for one browser).
	Localhost bool
}

// Stack is the storage, keys and HTTP server of one Signet; the test
// builds the authority on it (Config, Authority, Hosted) and serves it
// (Serve). Start closes everything at the end of the test.
type Stack struct {
	T      testing.TB
	Clock  *Clock // nil with Options.RealTime
	Now    func() time.Time
	Logger *slog.Logger
	// DBPath is the bolt file (set even when Options.Store replaces it).
	DBPath string
	Store  storage.Store
	// Bolt is Store as a bolt store; nil when Options.Store is set.
	Bolt       *bolt.Store
	Keys       *keys.Manager
	Algorithms []string
	HTTP       *httptest.Server
	Issuer     string

	// ctx outlives every call the test makes: the authority's background
	// work runs under it until the cleanup cancels it.
	ctx     context.Context
	handler http.Handler
}

// Start opens the store and the key manager and starts the HTTP server;
// the server answers once Serve gives it a handler, so that the issuer
// (its URL) is known before the authority is built.
func Start(t testing.TB, o Options) *Stack {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &Stack{T: t, Logger: o.Logger, Algorithms: o.Algorithms, ctx: ctx}
	if s.Logger == nil {
		s.Logger = slog.New(slog.DiscardHandler)
	}
	if s.Algorithms == nil {
		s.Algorithms = []string{"RS256", "ES256"}
	}
	if !o.RealTime {
		s.Clock = o.Clock
		if s.Clock == nil {
			s.Clock = NewClock(epoch)
		}
		s.Now = s.Clock.Now
	} else {
		s.Now = time.Now
	}
	s.DBPath = filepath.Join(t.TempDir(), "signet.db")
	s.Store = o.Store
	if s.Store == nil {
		bo := bolt.Options{Timeout: time.Second}
		if o.LogStore {
			bo.Logger = s.Logger
		}
		b, err := bolt.Open(s.DBPath, bo)
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		s.Store, s.Bolt = b, b
	}
	ko := keys.Options{Store: s.Store, KEK: KEK(), Algorithms: s.Algorithms, MaxTokenTTL: time.Hour, Now: s.Now, Logger: s.Logger}
	if o.Keys != nil {
		o.Keys(&ko)
	}
	var err error
	if s.Keys, err = keys.Open(ctx, ko); err != nil {
		cancel()
		_ = s.Store.Close()
		t.Fatal(err)
	}
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) })
	if o.TLS {
		s.HTTP = httptest.NewTLSServer(handler)
	} else {
		s.HTTP = httptest.NewServer(handler)
	}
	s.Issuer = s.HTTP.URL
	if o.Localhost {
		s.Issuer = strings.Replace(s.Issuer, "127.0.0.1", "localhost", 1)
	}
	t.Cleanup(func() {
		s.HTTP.Close()
		cancel()
		_ = s.Keys.Close()
		_ = s.Store.Close()
	})
	return s
}

// Serve makes h answer the stack's requests; call it before the first
// request.
func (s *Stack) Serve(h http.Handler) { s.handler = h }

// Config is the authority configuration the tests start from: admin
// routes, the stack's keys, store, clock and logger, scope "read", cheap
// argon2id parameters (tests are about behaviour, not cost) and no login
// rate limit.
func (s *Stack) Config() authority.Config {
	return authority.Config{
		Admin:  admin.Routes,
		Issuer: s.Issuer, Store: s.Store, JWKS: jwksdoc.NewHandler(s.Keys, 5*time.Minute, s.Logger),
		Signer: s.Keys, KeySet: s.Keys, Algorithms: s.Algorithms, Scopes: []string{"read"},
		Password:       users.PasswordParams{Memory: 64, Time: 1, Threads: 1},
		LoginRateLimit: authority.LoginRateLimit{PerUserIP: -1, PerIP: -1, PerUser: -1},
		Logger:         s.Logger, Now: s.nowOrNil(),
	}
}

// nowOrNil is the clock for configurations: nil with RealTime, so the
// packages take their own default (the wall clock) as they do in
// production.
func (s *Stack) nowOrNil() func() time.Time {
	if s.Clock == nil {
		return nil
	}
	return s.Now
}

// Authority builds the authority server from cfg.
func (s *Stack) Authority(cfg authority.Config) *authority.Server {
	s.T.Helper()
	srv, err := authority.New(s.ctx, cfg)
	if err != nil {
		s.T.Fatal(err)
	}
	return srv
}

// Sessions is a session manager on st with the stack's clock, an hour
// idle and eight hours at most.
func (s *Stack) Sessions(st storage.Store) *sessions.Manager {
	return sessions.New(st, sessions.Options{Now: s.nowOrNil(), IdleTTL: time.Hour, AbsoluteTTL: 8 * time.Hour})
}

// Login builds the hosted login from cfg (its clock and logger default
// to the stack's) and registers it on srv.
func (s *Stack) Login(srv *authority.Server, cfg login.Config) {
	s.T.Helper()
	cfg.Authority = srv
	if cfg.Now == nil {
		cfg.Now = s.nowOrNil()
	}
	if cfg.Logger == nil {
		cfg.Logger = s.Logger
	}
	ui, err := login.New(cfg)
	if err != nil {
		s.T.Fatal(err)
	}
	srv.Register(ui.Register)
}

// Hosted is the usual assembly: the authority from cfg, sessions on
// cfg.Store and the hosted login, served by the stack.
func (s *Stack) Hosted(cfg authority.Config) (*authority.Server, *sessions.Manager) {
	s.T.Helper()
	srv := s.Authority(cfg)
	sess := s.Sessions(cfg.Store)
	s.Login(srv, login.Config{Sessions: sess})
	s.Serve(srv)
	return srv, sess
}

// LogBuffer collects log output written from many goroutines (a
// stack's JSON log, for tests that read what was logged).
type LogBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *LogBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *LogBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
