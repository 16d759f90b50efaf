package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/robfig/cron/v3"

	"github.com/signet-auth/signet/authority"
	"github.com/signet-auth/signet/jwks"
	"github.com/signet-auth/signet/keys"
	"github.com/signet-auth/signet/storage"
)

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("serve", stderr)
	var cf configFlags
	cf.register(fs)
	dev := fs.Bool("dev", false, "development mode: on an empty store, create a demo client and log a ready curl line")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := cf.load(fs)
	if err != nil {
		return err
	}
	if *dev {
		cfg.Dev = true
	}
	m := &Main{Config: cfg, LogOutput: stderr, Getenv: os.Getenv}
	if err := m.Open(ctx); err != nil {
		m.Close()
		return err
	}
	<-ctx.Done()
	m.Logger.LogAttrs(context.Background(), slog.LevelInfo, "shutting down")
	return m.Close()
}

// Main is the running server, so that tests can start the real wiring in
// process (Open on 127.0.0.1:0) and stop it (Close).
type Main struct {
	Config    Config
	LogOutput io.Writer
	Getenv    func(string) string
	// Now is the clock for keys and tokens; nil means time.Now.
	Now func() time.Time

	Logger *slog.Logger
	Store  storage.Store
	Keys   *keys.Manager
	Server *authority.Server

	public *listener
	admin  *listener // nil unless http.admin_addr is set
	cron   *cron.Cron
	cancel context.CancelFunc

	closeOnce sync.Once
	closeErr  error
}

// Open starts everything: store, keys, HTTP, cron. On error, call Close.
func (m *Main) Open(ctx context.Context) error {
	if m.Getenv == nil {
		m.Getenv = os.Getenv
	}
	if m.Now == nil {
		m.Now = time.Now
	}
	c := &m.Config
	m.Logger = newLogger(m.LogOutput, c.Log)
	log := m.Logger

	st, err := openConfigStore(ctx, c, log)
	if err != nil {
		return err
	}
	m.Store = st
	existing, err := keys.List(ctx, st)
	if err != nil {
		return fmt.Errorf("read keys from %s: %w", storeName(c), err)
	}
	kek, err := resolveKEK(ctx, c, m.Getenv, len(existing) == 0, log)
	if err != nil {
		return err
	}
	// Jobs and watchers live until Close, not until the caller's ctx ends.
	root, cancel := context.WithCancel(context.WithoutCancel(ctx))
	m.cancel = cancel
	m.Keys, err = keys.Open(root, keys.Options{
		Store:         st,
		KEK:           kek,
		Algorithms:    c.Keys.Algorithms,
		RSABits:       c.Keys.RSABits,
		MaxTokenTTL:   c.parsed.maxTTL,
		PurgeLeeway:   c.parsed.purgeLeeway,
		MinPublishAge: c.parsed.jwksMaxAge,
		Logger:        log.With("component", "keys"),
		Now:           m.Now,
	})
	var de *keys.DecryptError
	if errors.As(err, &de) {
		return fmt.Errorf("%w: the key-encryption key does not match the one this store was made with; "+
			"set SIGNET_KEK or keys.encryption_key_file (now %s) to the original", err, c.KEKPath())
	}
	if err != nil {
		return err
	}

	reg := prometheus.NewRegistry()
	jwksRequests := registerMetrics(reg, m.Keys, m.Now)
	jh := jwks.NewHandler(m.Keys, c.parsed.jwksMaxAge, log.With("component", "jwks"))
	m.Server, err = authority.New(root, authority.Config{
		Issuer:             c.Issuer,
		Store:              st,
		JWKS:               countRequests(jh, jwksRequests),
		Signer:             m.Keys,
		KeySet:             m.Keys,
		Keys:               keyAdmin{m.Keys},
		Algorithms:         c.Keys.Algorithms,
		DefaultTokenTTL:    c.parsed.defaultTTL,
		MaxTokenTTL:        c.parsed.maxTTL,
		RefreshIdleTTL:     c.parsed.refreshIdle,
		RefreshAbsoluteTTL: c.parsed.refreshAbsolute,
		Leeway:             c.parsed.purgeLeeway,
		LoginRateLimit: authority.LoginRateLimit{
			Window:    c.parsed.loginWindow,
			PerUserIP: c.Login.RateLimit.PerUserIP,
			PerUser:   c.Login.RateLimit.PerUser,
			PerIP:     c.Login.RateLimit.PerIP,
		},
		Metrics:       promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}),
		TokenMetrics:  newTokenMetrics(reg),
		IPExtractor:   ipExtractor(c.parsed.trustedProxies),
		SeparateAdmin: c.HTTP.AdminAddr != "",
		Ready:         m.ready,
		Logger:        log,
		Now:           m.Now,
	})
	if err != nil {
		return err
	}

	if c.Dev {
		if err := m.ensureDemoClient(ctx); err != nil {
			return err
		}
	}

	m.cron = cron.New(cron.WithLogger(cronLogger{log.With("component", "cron")}),
		cron.WithChain(cron.Recover(cronLogger{log}), cron.SkipIfStillRunning(cronLogger{log})))
	m.cron.Schedule(c.parsed.rotation, cron.FuncJob(func() { m.rotateJob(root) }))
	m.cron.Schedule(c.parsed.purge, cron.FuncJob(func() { m.purgeJob(root) }))

	errorLog := slog.NewLogLogger(log.Handler(), slog.LevelWarn)
	if m.public, err = listen("http.addr", c.HTTP.Addr, m.Server, errorLog); err != nil {
		return err
	}
	if c.HTTP.AdminAddr != "" {
		// The admin listener answers the token endpoint too, so the CLI can
		// get its admin token and use it at one URL.
		mux := http.NewServeMux()
		mux.Handle("/admin/", m.Server.AdminHandler())
		mux.Handle("/", m.Server)
		if m.admin, err = listen("http.admin_addr", c.HTTP.AdminAddr, mux, errorLog); err != nil {
			return err
		}
		log.LogAttrs(ctx, slog.LevelInfo, "admin API on its own listener", slog.String("admin_addr", m.admin.ln.Addr().String()))
	}
	m.cron.Start()
	var active []string
	for _, k := range m.Keys.Current() {
		if k.State == keys.StateActive {
			active = append(active, k.Alg+":"+k.KID)
		}
	}
	log.LogAttrs(ctx, slog.LevelInfo, "signet serving",
		slog.String("addr", m.public.ln.Addr().String()),
		slog.String("issuer", c.Issuer),
		slog.String("db", storeName(c)),
		slog.Any("active_keys", active),
		slog.String("rotation", c.Keys.Rotation.Schedule))
	return nil
}

// ensureDemoClient is --dev: on a store without clients it creates the demo
// client and logs its credentials with a curl line to paste. Never outside
// dev mode, since the secret lands in the log.
func (m *Main) ensureDemoClient(ctx context.Context) error {
	id, secret, created, err := authority.EnsureDemoClient(ctx, m.Server.Clients())
	if err != nil {
		return err
	}
	if !created {
		m.Logger.LogAttrs(ctx, slog.LevelInfo, "dev mode: the store already has clients, no demo client created")
		return nil
	}
	curl := fmt.Sprintf("curl -s -u %s:%s -d grant_type=client_credentials -d scope=%s %s/oauth2/token",
		id, secret, authority.DemoScope, strings.TrimSuffix(m.Config.Issuer, "/"))
	m.Logger.LogAttrs(ctx, slog.LevelWarn, "dev mode: demo client created; its secret is shown only here",
		slog.String("client_id", id),
		slog.String("client_secret", secret),
		slog.String("scope", authority.DemoScope),
		slog.String("audience", authority.DemoAudience),
		slog.String("try", curl))
	return nil
}

// Addr is the address the server listens on.
func (m *Main) Addr() string { return m.public.ln.Addr().String() }

// AdminURL is the base URL of the admin listener, or "" without one.
func (m *Main) AdminURL() string {
	if m.admin == nil {
		return ""
	}
	return "http://" + m.admin.ln.Addr().String()
}

// listener is one HTTP server on one address.
type listener struct {
	ln     net.Listener
	srv    *http.Server
	served chan error
}

// listen starts serving h on addr; field names the setting for errors.
func listen(field, addr string, h http.Handler, errorLog *log.Logger) (*listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", field, addr, err)
	}
	l := &listener{ln: ln, served: make(chan error, 1), srv: &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          errorLog,
	}}
	go func() { l.served <- l.srv.Serve(ln) }()
	return l, nil
}

// shutdown stops accepting and waits (up to timeout) for in-flight requests.
func (l *listener) shutdown(timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var errs []error
	if err := l.srv.Shutdown(ctx); err != nil {
		errs = append(errs, fmt.Errorf("http shutdown %s: %w", l.ln.Addr(), err))
	}
	if err := <-l.served; err != nil && !errors.Is(err, http.ErrServerClosed) {
		errs = append(errs, fmt.Errorf("http %s: %w", l.ln.Addr(), err))
	}
	return errors.Join(errs...)
}

// ipExtractor finds the client address for the per-IP limits: the TCP
// peer, or X-Forwarded-For when the peer is one of the trusted proxies.
func ipExtractor(trusted []*net.IPNet) echo.IPExtractor {
	if len(trusted) == 0 {
		return echo.ExtractIPDirect()
	}
	opts := []echo.TrustOption{echo.TrustLoopback(false), echo.TrustLinkLocal(false), echo.TrustPrivateNet(false)}
	for _, n := range trusted {
		opts = append(opts, echo.TrustIPRange(n))
	}
	return echo.ExtractIPFromXFFHeader(opts...)
}

// URL is the base URL of the listener (not the configured issuer).
func (m *Main) URL() string { return "http://" + m.Addr() }

// Close shuts down in order: stop accepting and finish in-flight requests,
// stop cron and wait for a running job, stop watchers, close the store.
// Calling it again returns the first result.
func (m *Main) Close() error {
	m.closeOnce.Do(func() { m.closeErr = m.close() })
	return m.closeErr
}

func (m *Main) close() error {
	var errs []error
	for _, l := range []*listener{m.public, m.admin} {
		if l != nil {
			errs = append(errs, l.shutdown(m.Config.parsed.shutdownTimeout))
		}
	}
	if m.cron != nil {
		<-m.cron.Stop().Done()
	}
	if m.cancel != nil {
		m.cancel()
	}
	if m.Keys != nil {
		errs = append(errs, m.Keys.Close())
	}
	if m.Store != nil {
		errs = append(errs, m.Store.Close())
	}
	return errors.Join(errs...)
}

func (m *Main) ready(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := m.Store.View(ctx, func(storage.Tx) error { return nil }); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	return m.Keys.Ready()
}

func (m *Main) rotateJob(root context.Context) {
	ctx, cancel := context.WithTimeout(root, time.Minute)
	defer cancel()
	err := m.Keys.Rotate(ctx, false)
	switch {
	case errors.Is(err, keys.ErrPendingTooYoung):
		m.Logger.LogAttrs(ctx, slog.LevelWarn, "rotation postponed to the next run", slog.String("reason", err.Error()))
	case err != nil:
		m.Logger.LogAttrs(ctx, slog.LevelError, "scheduled rotation failed", slog.String("err", err.Error()))
	}
}

func (m *Main) purgeJob(root context.Context) {
	ctx, cancel := context.WithTimeout(root, time.Minute)
	defer cancel()
	if _, err := m.Keys.Purge(ctx); err != nil {
		m.Logger.LogAttrs(ctx, slog.LevelError, "purge failed", slog.String("err", err.Error()))
	}
	// Expired or revoked refresh token families, denylist entries and
	// subject cutoffs that can no longer affect a token.
	n, err := m.Server.Purge(ctx)
	if err != nil {
		m.Logger.LogAttrs(ctx, slog.LevelError, "session purge failed", slog.String("err", err.Error()))
		return
	}
	if n > 0 {
		m.Logger.LogAttrs(ctx, slog.LevelInfo, "session purge", slog.Int("deleted", n))
	}
}

func newLogger(w io.Writer, c logConfig) *slog.Logger {
	if w == nil {
		w = os.Stderr
	}
	var level slog.Level
	_ = level.UnmarshalText([]byte(c.Level))
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// cronLogger adapts slog to cron.Logger.
type cronLogger struct{ l *slog.Logger }

func (c cronLogger) Info(msg string, kv ...any) { c.l.Debug("cron: "+msg, kv...) }
func (c cronLogger) Error(err error, msg string, kv ...any) {
	c.l.Error("cron: "+msg, append(kv, "err", err)...)
}
