package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/robfig/cron/v3"

	"github.com/signet-auth/signet/audit"
	"github.com/signet-auth/signet/authority"
	"github.com/signet-auth/signet/authority/admin"
	"github.com/signet-auth/signet/backchannel"
	"github.com/signet-auth/signet/clients"
	"github.com/signet-auth/signet/config"
	"github.com/signet-auth/signet/exchange"
	"github.com/signet-auth/signet/jwks"
	"github.com/signet-auth/signet/keksource"
	"github.com/signet-auth/signet/keys"
	"github.com/signet-auth/signet/keys/jwksdoc"
	"github.com/signet-auth/signet/keys/setsign"
	"github.com/signet-auth/signet/logbuf"
	"github.com/signet-auth/signet/login"
	"github.com/signet-auth/signet/metrics"
	"github.com/signet-auth/signet/mfa"
	"github.com/signet-auth/signet/registration"
	"github.com/signet-auth/signet/replay"
	"github.com/signet-auth/signet/schema"
	"github.com/signet-auth/signet/sessions"
	"github.com/signet-auth/signet/storage"
	"github.com/signet-auth/signet/storeopen"
	"github.com/signet-auth/signet/upstream"
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
	Config    config.Config
	LogOutput io.Writer
	Getenv    func(string) string
	// Now is the clock for keys and tokens; nil means time.Now.
	Now func() time.Time
	// Schema is the store schema this binary runs; zero means schema.Default.
	Schema schema.Plan

	Logger *slog.Logger
	Store  storage.Store
	Keys   *keys.Manager
	Server *authority.Server
	// Sessions keeps browser logins (SSO sessions, consents, codes).
	Sessions *sessions.Manager

	kek          []byte        // for the fingerprint in backup headers
	closeCustody func() error  // logs out of a key custody (keys.custody)
	setSigners   *keys.Manager // the set-signing keys, when jwks.export.file is set
	exportDone   chan struct{} // closed when the export loop has stopped
	// backchannelDone is closed when the back-channel logout worker has
	// stopped; backchannelTuning lets tests shorten its back-off.
	backchannelDone   chan struct{}
	backchannelTuning func(*backchannel.Config)
	public            *listener
	admin             *listener // nil unless http.admin_addr is set
	// metrics serves only /metrics; nil unless http.metrics_addr names
	// an address of its own.
	metrics *listener
	cron    *cron.Cron
	cancel  context.CancelFunc
	pre     preflight // listeners bound and files found before the first write

	rotationJob cron.EntryID // the rotation's cron entry, for nextRotation
	postponed   atomic.Int64 // the due time (unix ns) whose rotation was last postponed, to warn once
	// rotation is when the rotation job runs; it retries a failed rotation.
	rotation *keys.Schedule

	leader scheduleLeader // decides whether this replica runs the jobs
	fresh  *freshness     // nil on bolt: how recently etcd answered
	// dpopReplay spends DPoP proof jtis in the store, for every replica.
	dpopReplay *replay.Cache
	purges     *metrics.Purges       // what the purge job did (signet_purge_*)
	dynamic    *registration.Service // dynamic clients (RFC 7591, metadata documents)

	closeOnce sync.Once
	closeErr  error
	logBuf    *logbuf.Buffer // nil unless the log goes to a file; access_log.go
}

// open starts everything after preflight (see Open in startup.go).
func (m *Main) open(ctx context.Context) error {
	if m.Getenv == nil {
		m.Getenv = os.Getenv
	}
	if m.Now == nil {
		m.Now = time.Now
	}
	c := &m.Config
	log := m.Logger // made by Open

	st, err := storeopen.OpenUnchecked(ctx, c, log)
	if err != nil {
		return err
	}
	m.Store = st
	if err := m.migrateSchema(ctx, st); err != nil {
		return err
	}
	existing, err := keys.List(ctx, st)
	if err != nil {
		return fmt.Errorf("read keys from %s: %w", storeopen.Name(c), err)
	}
	kek, err := keksource.Resolve(ctx, c, m.Getenv, len(existing) == 0, log)
	if err != nil {
		return err
	}
	m.kek = kek
	// Jobs and watchers live until Close, not until the caller's ctx ends.
	root, cancel := context.WithCancel(context.WithoutCancel(ctx))
	m.cancel = cancel
	// Changes the server makes on its own (the first key set) name it.
	root = audit.WithActor(root, audit.Actor{Name: audit.ActorSystem, Replica: c.ReplicaName()})
	custodies, closeCustody, err := openCustody(c, m.Getenv)
	if err != nil {
		return err
	}
	m.closeCustody = closeCustody
	m.Keys, err = keys.Open(root, keys.Options{
		Custody:       custodies,
		Store:         st,
		KEK:           kek,
		Algorithms:    c.Keys.Algorithms,
		RSABits:       c.Keys.RSABits,
		MaxTokenTTL:   c.Parsed.MaxTTL,
		PurgeLeeway:   c.Parsed.PurgeLeeway,
		MinPublishAge: c.Parsed.JWKSMaxAge,
		Schedule:      c.Parsed.Rotation.Next,
		Logger:        log.With("component", "keys"),
		Now:           m.Now,
	})
	if err != nil {
		return keksource.Explain(err, c, m.Getenv)
	}

	reg := prometheus.NewRegistry()
	metricsHandler := promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})
	var publicMetrics http.Handler
	if metricsOn(c.HTTP) == metricsPublic {
		publicMetrics = metricsHandler
	}
	jwksRequests := metrics.Register(reg, m.Keys, buildLabels(), m.nextRotation, m.Now)
	m.purges = metrics.NewPurges(reg)
	m.leader = startLeader(root, st, c, reg, log)
	var canIssue func() error
	if c.Storage.Backend == "etcd" {
		maxStale, _ := time.ParseDuration(c.Storage.Etcd.MaxStaleness) // validated
		m.fresh = startFreshness(root, st, maxStale)
		canIssue = m.fresh.Check
	}
	// DPoP proofs (RFC 9449) are checked by the jwks module's checker, the
	// one services use, with its replay cache in the store.
	m.dpopReplay = replay.New(st, replay.DPoPBucket, m.Now)
	dpopOpts := []jwks.DPoPOption{jwks.WithDPoPClock(m.Now), jwks.WithDPoPReplayCache(m.dpopReplay)}
	if c.DPoP.Nonce { // keyed from the KEK: every replica takes the others' nonces
		nonces, err := jwks.NewKeyedNonces(keksource.Subkey(kek, keksource.DPoPNonceInfo), c.DPoP.Period, m.Now)
		if err != nil {
			return err
		}
		dpopOpts = append(dpopOpts, jwks.WithDPoPNonces(nonces))
	}
	dpop, err := jwks.NewDPoPChecker(dpopOpts...)
	if err != nil {
		return err
	}
	if c.JWKS.Export.File != "" {
		signers, err := setsign.Open(root, st, keys.Options{
			Store: st, KEK: kek, Custody: custodies, Logger: log.With("component", "set-signing-keys"), Now: m.Now,
		})
		if err != nil {
			return keksource.Explain(err, c, m.Getenv)
		}
		m.setSigners = signers
		m.exportDone = make(chan struct{})
		go func() {
			defer close(m.exportDone)
			exportLoop(root, m.Keys, signers, c.Issuer, c.JWKS.Export.File, c.Parsed.ExportTTL, m.Now, log.With("component", "jwks-export"))
		}()
	}
	jh := jwksdoc.NewHandler(m.Keys, c.Parsed.JWKSMaxAge, log.With("component", "jwks"))
	jwksHandler := metrics.CountRequests(jh, jwksRequests)
	fetcher, err := c.OutboundFetcher(log.With("component", "outbound"))
	if err != nil {
		return err
	}
	regPolicy, err := c.RegistrationPolicy()
	if err != nil {
		return err
	}
	tokenExchange := &exchange.Grant{} // RFC 8693; its Tokens are the server below
	fed, grants, err := federationFor(c, fetcher, st, m.Now, log)
	if err != nil {
		return err
	}
	if grants == nil {
		grants = map[string]authority.Grant{}
	}
	grants[clients.GrantTokenExchange] = tokenExchange
	m.Server, err = authority.New(root, authority.Config{
		Registration:       authority.RegistrationMetadata{Endpoint: registration.Endpoint(regPolicy, c.Issuer), MetadataDocuments: regPolicy.MetadataDocuments},
		Admin:              admin.Routes,
		Issuer:             c.Issuer,
		AssertionLifetime:  c.ClientAuth.Lifetime,
		Outbound:           fetcher,
		Federation:         fed,
		Grants:             grants,
		Store:              st,
		JWKS:               jwksHandler,
		Signer:             m.Keys,
		KeySet:             m.Keys,
		Keys:               keyAdmin{m.Keys},
		Algorithms:         c.Keys.Algorithms,
		DefaultTokenTTL:    c.Parsed.DefaultTTL,
		MaxTokenTTL:        c.Parsed.MaxTTL,
		RefreshIdleTTL:     c.Parsed.RefreshIdle,
		RefreshAbsoluteTTL: c.Parsed.RefreshAbsolute,
		Leeway:             c.Parsed.PurgeLeeway,
		FeedSubjectKey:     keksource.FeedSubjectKey(m.kek),
		LoginRateLimit: authority.LoginRateLimit{
			Window:    c.Parsed.LoginWindow,
			PerUserIP: c.Login.RateLimit.PerUserIP,
			PerUser:   c.Login.RateLimit.PerUser,
			PerIP:     c.Login.RateLimit.PerIP,
		},
		Backup:        m.backupTo,
		Metrics:       publicMetrics,
		TokenMetrics:  metrics.NewTokens(reg),
		IPExtractor:   ipExtractor(c.Parsed.TrustedProxies),
		SeparateAdmin: c.HTTP.AdminAddr != "",
		Ready:         m.ready,
		CanIssue:      canIssue,
		Logger:        log,
		AccessLog:     c.Log.Access,
		Now:           m.Now,
		DPoP:          dpop,

		AdminScopePasswordOnly: c.Login.AdminScopePasswordOnly,
		FactorPolicy:           mfa.Policy{RequiredFor: c.Login.SecondFactor.RequiredFor, Grace: c.Parsed.FactorGrace},
	})
	if err != nil {
		return err
	}
	tokenExchange.Tokens = m.Server

	m.dynamic, err = registration.New(registration.Config{Policy: regPolicy, Clients: m.Server.Clients(), Store: st, Fetcher: fetcher,
		Issuer: c.Issuer, Now: m.Now, Logger: log.With("component", "registration")})
	if err != nil {
		return err
	}
	m.Server.Register(m.dynamic.Register)
	m.Sessions = sessions.New(st, sessions.Options{
		IdleTTL: c.Parsed.SessionIdle, AbsoluteTTL: c.Parsed.SessionAbsolute,
		CodeTTL: c.Parsed.CodeTTL, TransactionTTL: c.Parsed.TransactionTTL, Now: m.Now,
	})
	var external login.External // sign-in through upstream providers (package upstream)
	if len(c.UpstreamProviders()) > 0 || !c.Login.PasswordLogin {
		if external, err = upstream.New(upstream.Config{Providers: c.UpstreamProviders(), PasswordLogin: c.Login.PasswordLogin, Issuer: c.Issuer, Fetcher: fetcher,
			Sessions: m.Sessions, Users: m.Server.Users(), Store: st, KEK: kek, Leeway: c.Parsed.PurgeLeeway, Now: m.Now, Logger: log.With("component", "upstream")}); err != nil {
			return err
		}
	}
	ui, err := login.New(login.Config{
		Authority: m.Server, Sessions: m.Sessions, External: external,
		ProductName: c.UI.ProductName, LogoURL: c.UI.LogoURL, CSSFile: c.UI.CSSFile, TemplatesDir: c.UI.TemplatesDir,
		Factors: mfa.New(st, kek, m.Now), PasskeysSecondFactorOnly: !c.Login.Passkeys.Passwordless,
		Logger: log.With("component", "login"), Now: m.Now,
	})
	if err != nil {
		return err
	}
	m.Server.Register(ui.Register)
	m.startBackchannel(root, reg, fetcher, log)
	m.Server.Use(metrics.NewHTTP(reg).Middleware, storeDeadline)

	if err := m.ensureFirstClients(ctx); err != nil {
		return err
	}

	m.cron = cron.New(cron.WithLogger(cronLogger{log.With("component", "cron")}),
		cron.WithChain(cron.Recover(cronLogger{log}), cron.SkipIfStillRunning(cronLogger{log})))
	m.rotation = keys.NewSchedule(m.Keys, keys.ScheduleOptions{})
	m.rotationJob = m.cron.Schedule(m.rotation, cron.FuncJob(func() { m.rotateJob(root) }))
	m.cron.Schedule(c.Parsed.Purge, cron.FuncJob(func() { m.purgeJob(root) }))

	errorLog := slog.NewLogLogger(log.Handler(), slog.LevelWarn)
	m.public = serveOn(m.pre.publicLn, withReplica(withJWKS(jwksHandler, m.Server), c.ReplicaName()), errorLog)
	if c.HTTP.AdminAddr != "" {
		// The admin listener serves the admin API and what operating it
		// needs, nothing of the public surface (login pages, discovery,
		// JWKS, userinfo, revocation, introspection): /admin; the token
		// endpoint, so the CLI gets its admin token at the same URL;
		// /metrics when it is served here; /healthz and /readyz to probe
		// this listener. Anything else answers the admin API's JSON 404.
		// A plain prefix split, not an http.ServeMux: the mux answers
		// "/admin" and unclean paths with its own HTML redirect, which has
		// none of the server's headers (nosniff, no-store) and is not JSON.
		adminHandler := m.Server.AdminHandler()
		split := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch p := r.URL.Path; {
			case p == "/metrics" && metricsOn(c.HTTP) == metricsAdmin:
				metricsHandler.ServeHTTP(w, r)
			case p == "/oauth2/token", p == "/healthz", p == "/readyz":
				m.Server.ServeHTTP(w, r)
			default: // /admin, /admin/..., and a JSON 404 for the rest
				adminHandler.ServeHTTP(w, r)
			}
		})
		m.admin = serveOn(m.pre.adminLn, withReplica(split, c.ReplicaName()), errorLog)
		log.LogAttrs(ctx, slog.LevelInfo, "admin API on its own listener", slog.String("admin_addr", m.admin.ln.Addr().String()))
	}
	if m.pre.metricsLn != nil {
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", metricsHandler)
		m.metrics = serveOn(m.pre.metricsLn, mux, errorLog)
		log.LogAttrs(ctx, slog.LevelInfo, "metrics on their own listener", slog.String("metrics_addr", m.metrics.ln.Addr().String()))
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
		slog.String("db", storeopen.Name(c)),
		slog.Any("active_keys", active),
		slog.String("rotation", c.Keys.Rotation.Schedule),
		slog.String("timezone", c.Parsed.Location.String()),
		slog.Time("next_rotation", m.nextRotation()))
	return nil
}

// ensureDemoClient is --dev: on a store without clients it creates the demo
// client and logs its credentials with a curl line to paste. Never outside
// dev mode, since the secret lands in the log.
func (m *Main) ensureDemoClient(ctx context.Context) error {
	_, err := m.ensureDemoClientCreated(ctx)
	return err
}

// ensureDemoClientCreated is ensureDemoClient, saying whether it made the
// client.
func (m *Main) ensureDemoClientCreated(ctx context.Context) (bool, error) {
	id, secret, created, err := authority.EnsureDemoClient(ctx, m.Server.Clients())
	if err != nil {
		return false, err
	}
	if !created {
		m.Logger.LogAttrs(ctx, slog.LevelInfo, "dev mode: the store already has clients, no demo client created")
		return false, nil
	}
	curl := fmt.Sprintf("curl -s -u %s:%s -d grant_type=client_credentials -d scope=%s %s/oauth2/token",
		id, secret, authority.DemoScope, strings.TrimSuffix(m.Config.Issuer, "/"))
	m.Logger.LogAttrs(ctx, slog.LevelWarn, "dev mode: demo client created; its secret is shown only here",
		slog.String("client_id", id),
		slog.String("client_secret", secret),
		slog.String("scope", authority.DemoScope),
		slog.String("audience", authority.DemoAudience),
		slog.String("try", curl))
	return true, nil
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

// MetricsURL is the base URL of the metrics listener, or "" without one.
func (m *Main) MetricsURL() string {
	if m.metrics == nil {
		return ""
	}
	return "http://" + m.metrics.ln.Addr().String()
}

// Which listener serves /metrics (metricsOn).
const (
	metricsPublic = "public"
	metricsAdmin  = "admin"
	metricsOwn    = "own"
)

// metricsOn says where /metrics is served: on the admin listener when
// there is one (key ages and traffic are not the public's business),
// else on the public one, unless http.metrics_addr names one of those
// addresses or an address of its own. Port 0 addresses never match.
func metricsOn(h config.HTTP) string {
	same := func(a, b string) bool { return a == b && !strings.HasSuffix(a, ":0") }
	switch {
	case h.MetricsAddr == "" && h.AdminAddr == "", same(h.MetricsAddr, h.Addr):
		return metricsPublic
	case h.MetricsAddr == "", same(h.MetricsAddr, h.AdminAddr):
		return metricsAdmin
	}
	return metricsOwn
}

// listener is one HTTP server on one address.
type listener struct {
	ln     net.Listener
	srv    *http.Server
	served chan error
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
	for _, l := range []*listener{m.public, m.admin, m.metrics} {
		if l != nil {
			errs = append(errs, l.shutdown(m.Config.Parsed.ShutdownTimeout))
		}
	}
	if m.cron != nil {
		m.rotation.Close() // a rotation waiting to retry stops now
		<-m.cron.Stop().Done()
	}
	if m.leader != nil {
		m.leader.Close() // resign: the next leader takes over at once
	}
	if m.cancel != nil {
		m.cancel()
	}
	if m.exportDone != nil {
		<-m.exportDone
	}
	if m.backchannelDone != nil {
		<-m.backchannelDone
	}
	if m.Keys != nil {
		errs = append(errs, m.Keys.Close())
	}
	if m.setSigners != nil {
		errs = append(errs, m.setSigners.Close())
	}
	if m.closeCustody != nil {
		errs = append(errs, m.closeCustody())
	}
	if m.Store != nil {
		errs = append(errs, m.Store.Close())
	}
	_ = m.logBuf.Close() // last: every line above, and the requests' lines, are out
	return errors.Join(errs...)
}

func (m *Main) ready(ctx context.Context) error {
	if m.fresh != nil {
		// At once, from the last known state: the freshness probe asks
		// etcd all the time, and a probe here would hang for as long as
		// etcd does not answer (a load balancer gives up first).
		if err := m.fresh.Check(); err != nil {
			return err
		}
		return m.Keys.Ready()
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := m.Store.View(ctx, func(storage.Tx) error { return nil }); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	return m.Keys.Ready()
}

// rotateJob runs the scheduled rotation, tried again with back-off while
// it fails (keys.Schedule.Run), each attempt fenced as the leader's.
func (m *Main) rotateJob(root context.Context) {
	m.rotation.Run(root, m.rotateOnce)
}

// rotateOnce is one attempt; an error is a failure to try again.
func (m *Main) rotateOnce(root context.Context) error {
	lead, done, ok := m.leader.Lead(root)
	if !ok {
		m.Logger.LogAttrs(root, slog.LevelDebug, "rotation left to the leader")
		return nil
	}
	defer done()
	root = lead
	if !m.rotationDue() {
		return nil
	}
	ctx, cancel := context.WithTimeout(audit.WithActor(root, audit.Actor{Name: audit.ActorCron, Replica: m.Config.ReplicaName()}), time.Minute)
	defer cancel()
	err := m.Keys.RotateScheduled(ctx)
	switch {
	case errors.Is(err, storage.ErrFenced):
		m.Logger.LogAttrs(ctx, slog.LevelWarn, "scheduled rotation refused: no longer the leader", slog.String("err", err.Error()))
		m.leader.StepDown(err)
	case errors.Is(err, keys.ErrPendingTooYoung):
		if m.postponed.Swap(m.Keys.NextRotation().UnixNano()) != m.Keys.NextRotation().UnixNano() { // once per due time
			m.Logger.LogAttrs(ctx, slog.LevelWarn, "rotation postponed until the pending key has been published long enough", slog.String("reason", err.Error()))
		}
	case err != nil:
		return err // logged by Run
	}
	m.Logger.LogAttrs(ctx, slog.LevelInfo, "next rotation", slog.Time("at", m.nextRotation()))
	return nil
}

// nextRotation is when the next scheduled rotation is due: the time
// stored with the keys, the same on every replica; before the first
// scheduled rotation stored one, when cron runs the job next (zero before
// cron has started).
func (m *Main) nextRotation() time.Time {
	if t := m.Keys.NextRotation(); !t.IsZero() {
		return t
	}
	if m.cron == nil {
		return time.Time{}
	}
	return m.cron.Entry(m.rotationJob).Next
}

func (m *Main) purgeJob(root context.Context) {
	lead, done, ok := m.leader.Lead(root)
	if !ok {
		return
	}
	defer done()
	root = lead
	ctx, cancel := context.WithTimeout(audit.WithActor(root, audit.Actor{Name: audit.ActorCron, Replica: m.Config.ReplicaName()}), time.Minute)
	defer cancel()
	n, err := m.Keys.Purge(ctx)
	if err != nil {
		err = fmt.Errorf("purge keys: %w", err)
	}
	reports := []storage.Purged{{Kind: "keys", Deleted: n, Err: err}, m.purgeAudit(ctx)}
	// Browser sessions, login transactions and codes; refresh token
	// families, denylist entries and subject cutoffs that can no longer
	// affect a token.
	reports = append(reports, m.Sessions.Purge(ctx)...)
	reports = append(reports, m.Server.Purge(ctx)...)
	reports = append(reports, m.dpopReplay.Purge(ctx, replay.DPoPBucket))
	reports = append(reports, m.dynamic.Purge(ctx)) // dynamic clients unused too long
	for _, r := range reports {
		m.purges.Observe(r, m.Now())
		switch {
		case r.Err != nil:
			// Retried at the next run; signet_purge_failures_total and
			// signet_purge_oldest_expired_seconds say when it keeps failing.
			m.Logger.LogAttrs(ctx, slog.LevelWarn, "purge failed", slog.String("kind", r.Kind),
				slog.Int("deleted", r.Deleted), slog.String("err", r.Err.Error()))
			m.stepDownIfFenced(r.Err)
		case r.Deleted > 0:
			m.Logger.LogAttrs(ctx, slog.LevelInfo, "purge", slog.String("kind", r.Kind), slog.Int("deleted", r.Deleted))
		}
	}
}

func newLogger(w io.Writer, c config.Log) *slog.Logger {
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

// stepDownIfFenced ends this replica's term when a scheduled write was
// refused because another replica leads now.
func (m *Main) stepDownIfFenced(err error) {
	if errors.Is(err, storage.ErrFenced) {
		m.leader.StepDown(err)
	}
}
