// Package authority is Signet's HTTP surface: the echo server, the OAuth 2.0
// endpoints, health and readiness, and the mapping of errors to RFC 6749
// §5.2 JSON. The admin API is package authority/admin, mounted through
// Config.Admin. It takes what it needs from the key manager through
// the small interfaces it defines (Signer, KeySet, KeyAdmin), so it never
// imports keys.
package authority

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"github.com/lestrrat-go/jwx/v2/jwk"

	"github.com/signet-auth/signet/authority/refusal"
	"github.com/signet-auth/signet/clientauth"
	"github.com/signet-auth/signet/clients"
	"github.com/signet-auth/signet/jwks"
	"github.com/signet-auth/signet/keys/jwssign"
	"github.com/signet-auth/signet/mfa"
	"github.com/signet-auth/signet/outbound"
	"github.com/signet-auth/signet/ratelimit"
	"github.com/signet-auth/signet/storage"
	"github.com/signet-auth/signet/users"
)

// Signer gives the active private key of an algorithm. *keys.Manager
// satisfies it. The key has KeyID and Algorithm set; when alg has no active
// key the error says so.
type Signer interface {
	SigningKey(alg string) (jwk.Key, error)
}

// KeySet gives the published public keys (pending, active, retired) and a
// version that changes whenever they do. The admin API verifies its bearer
// tokens against it. *keys.Manager satisfies it.
type KeySet interface {
	PublicSet() (jwk.Set, uint64)
}

// KeyInfo describes a key for the admin API: never private material.
type KeyInfo struct {
	KID         string    `json:"kid"`
	Alg         string    `json:"alg"`
	State       string    `json:"state"`
	CreatedAt   time.Time `json:"created_at,omitzero"`
	ActivatedAt time.Time `json:"activated_at,omitzero"`
	RetiredAt   time.Time `json:"retired_at,omitzero"`
	RevokedAt   time.Time `json:"revoked_at,omitzero"`
	ExpiresAt   time.Time `json:"expires_at,omitzero"`
}

// KeyAdmin is what the admin API does to keys. Rotate and Revoke record the
// audit event of a change in the transaction that makes it, attributed to
// audit.ActorFrom(ctx) (the admin client); the admin API records failures.
type KeyAdmin interface {
	Keys(ctx context.Context) ([]KeyInfo, error)
	// Rotate activates the pending keys; force allows activating a pending
	// key younger than the JWKS cache lifetime. Errors wrapping
	// ErrKeyConflict are answered 409.
	Rotate(ctx context.Context, force bool) error
	// Revoke removes kid from the JWKS at once; an unknown kid is an error
	// wrapping storage.ErrNotFound (404).
	Revoke(ctx context.Context, kid string) error
}

// TokenMetrics observes the token endpoint. Implementations must be cheap
// and safe for concurrent use: they run on every token request.
type TokenMetrics interface {
	// Issued counts a token issued by grant, algorithm and client.
	Issued(grant, alg, clientID string)
	// Failed counts a refused token request by its error code
	// (server_error for internal failures).
	Failed(code string)
	// Observe records the latency of one token request, success or not.
	Observe(d time.Duration)
}

// Config is everything the server needs. Zero values mean the documented defaults.
type Config struct {
	// Issuer is the issuer URL, used byte for byte in iss and in metadata.
	Issuer string
	// Store keeps clients, users, refresh tokens and the audit log.
	Store storage.Store
	// JWKS serves /.well-known/jwks.json (a jwksdoc.Handler).
	JWKS http.Handler
	// Signer gives the active key per algorithm (required).
	Signer Signer
	// KeySet verifies admin bearer tokens (required).
	KeySet KeySet
	// Keys backs /admin/keys; nil answers those routes 501.
	Keys KeyAdmin
	// Algorithms are the live signing algorithms; the default for a new
	// client is RS256 when live, else the first. Default [RS256].
	Algorithms []string
	// DefaultTokenTTL (15m) is a new client's access-token lifetime;
	// MaxTokenTTL (1h) caps every client's.
	DefaultTokenTTL time.Duration
	MaxTokenTTL     time.Duration
	// Scopes are advertised in scopes_supported, after signet:admin.
	Scopes []string
	// RateLimit bounds failed client authentications.
	RateLimit RateLimit
	// AssertionLifetime caps how far ahead a private_key_jwt assertion's
	// exp may be (default 5m).
	AssertionLifetime time.Duration
	// Outbound fetches clients' jwks_uri documents; nil means a fetcher
	// with the defaults (public addresses only; loopback too when the
	// issuer is on loopback).
	Outbound *outbound.Fetcher
	// LoginRateLimit bounds failed password logins.
	LoginRateLimit LoginRateLimit
	// AdminScopePasswordOnly lets the password grant give the admin scope
	// without a second factor (factors.go).
	AdminScopePasswordOnly bool
	// FactorPolicy is who must sign in with a second factor, beyond the
	// users an operator requires one of, and their grace period
	// (factors.go, FactorDemand).
	FactorPolicy mfa.Policy
	// Password are the argon2id parameters of new password hashes.
	Password users.PasswordParams
	// RefreshIdleTTL (default 14 days) and RefreshAbsoluteTTL (90 days)
	// bound refresh token families; a client may shorten them.
	RefreshIdleTTL     time.Duration
	RefreshAbsoluteTTL time.Duration
	// FeedMaxAge is the max-age of /oauth2/revocations (default 30s).
	FeedMaxAge time.Duration
	// FeedSubjectKey keys the subject hashes of /oauth2/revocations
	// (revocations.go). Empty: the feed carries no subject cutoffs.
	FeedSubjectKey []byte
	// Leeway is the verifiers' clock skew allowance: a denylist entry or a
	// cutoff stays in the feed this long after the last token it can
	// affect has expired (default 1m, jwks.MaxLeeway).
	Leeway time.Duration
	// IPExtractor finds the client address for the per-IP limit; nil means
	// the TCP peer (echo.ExtractIPDirect). Set an X-Forwarded-For extractor
	// with trusted ranges when running behind a proxy.
	IPExtractor echo.IPExtractor
	// SeparateAdmin takes /admin off the main handler (it answers 404) and
	// serves it only from AdminHandler, for a loopback-only listener
	// (SECURITY.md A1).
	SeparateAdmin bool
	// Admin mounts the admin API (package authority/admin, Routes) on the
	// echo that serves /admin: the main one, or AdminHandler's when
	// SeparateAdmin is set. Nil: no admin API (/admin answers 404). It is
	// a func so that authority does not import the package that imports it.
	Admin func(s *Server, e *echo.Echo)
	// Registration advertises clients that arrive on their own (package
	// registration, whose routes cmd/signet adds with Register).
	Registration RegistrationMetadata
	// Backup writes a consistent snapshot of the store for GET /admin/backup;
	// nil answers 501.
	Backup func(ctx context.Context, w io.Writer) error
	// Metrics serves /metrics; nil leaves the route out.
	Metrics http.Handler
	// TokenMetrics receives token endpoint events (cmd wires it to
	// Prometheus, so authority stays free of a metrics library); nil: none.
	TokenMetrics TokenMetrics
	// Grants are the grant types served by other packages, by grant_type
	// (clients.GrantJWTBearer, clients.GrantTokenExchange). A type not
	// here answers unsupported_grant_type.
	Grants map[string]Grant
	// Federation authenticates clients by tokens of trusted external
	// issuers (package federation); nil: none.
	Federation clientauth.Federation
	// Ready reports whether the server can do its job (store reachable, an
	// active key loaded). Nil means always ready.
	Ready func(ctx context.Context) error
	// CanIssue, when set, is asked before every token request; an error
	// answers 503 temporarily_unavailable instead of signing (a replica
	// cut off from its shared store must not sign with a key the fleet
	// may have revoked). Nil means always.
	CanIssue func() error
	// Logger receives request logs and internal errors; nil discards.
	Logger *slog.Logger
	// AccessLog chooses the per-request log lines: AccessLogAll (default,
	// "") logs every request except successful health, readiness and JWKS
	// requests, which monitors and verifiers send all the time;
	// AccessLogErrors logs responses with status 400 and above;
	// AccessLogOff logs none.
	AccessLog string
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// DPoP checks DPoP proofs (RFC 9449) at the token endpoint, userinfo
	// and the admin API; nil: DPoP headers are ignored and tokens are
	// bearer tokens. Give it a replay cache in the store
	// (replay.DPoPBucket) when replicas share one.
	DPoP *jwks.DPoPChecker
}

// RegistrationMetadata is what discovery says of clients that arrive on
// their own.
type RegistrationMetadata struct {
	Endpoint          string // registration_endpoint; "" when off
	MetadataDocuments bool   // client_id_metadata_document_supported
}

// Server is the echo application. It is an http.Handler; run it under an
// http.Server so the caller controls listening and graceful shutdown.
type Server struct {
	cfg     Config
	echo    *echo.Echo
	admin   *echo.Echo // nil unless cfg.SeparateAdmin
	log     *slog.Logger
	clients *clients.Registry
	audit   *AuditLog
	keys    keyCache
	// ID tokens (typ JWT) and logout tokens (logout+jwt); idtoken.go
	idKeys, logoutKeys *jwssign.Cache
	auth               *clientauth.Authenticator
	// userCodes counts wrong user codes, deviceStarts device
	// authorizations, per address (devicegrant.go).
	userCodes, deviceStarts *ratelimit.Counter
	users                   *users.Registry
	login                   *ratelimit.LoginLimiter
	feed                    feedCache
	// refusals logs deliberate refusals once per episode (error.go).
	refusals refusal.Log
	// dummyHash is verified against when a login names no user, so that
	// an unknown user costs the same argon2id run as a wrong password.
	dummyHash string

	metadata []byte
}

// New validates cfg, loads the clients into memory and builds the routes.
// ctx bounds the background watch that keeps the client cache fresh: cancel
// it (or close the store) at shutdown.
func New(ctx context.Context, cfg Config) (*Server, error) {
	if err := cfg.applyDefaults(); err != nil {
		return nil, err
	}
	if err := cfg.FactorPolicy.Validate(); err != nil {
		return nil, fmt.Errorf("authority: %w", err)
	}
	s := &Server{cfg: cfg, log: cfg.Logger, idKeys: &jwssign.Cache{Typ: "JWT"}, logoutKeys: &jwssign.Cache{Typ: "logout+jwt"}}
	s.keys.src = cfg.Signer
	s.clients = clients.New(cfg.Store, clients.Options{Now: cfg.Now, Algorithms: cfg.Algorithms, DefaultTokenTTL: cfg.DefaultTokenTTL, MaxTokenTTL: cfg.MaxTokenTTL, Logger: cfg.Logger})
	if err := s.clients.Watch(ctx); err != nil {
		return nil, fmt.Errorf("authority: %w", err)
	}
	s.audit = NewAuditLog(cfg.Store, cfg.Now)
	fetcher := cfg.Outbound
	if fetcher == nil {
		fetcher = outbound.New(outbound.Options{AllowLoopback: outbound.IsLoopbackURL(cfg.Issuer), Logger: cfg.Logger})
	}
	auth, err := clientauth.New(clientauth.Config{Clients: s.clients, RateLimit: cfg.RateLimit, Store: cfg.Store, Issuer: cfg.Issuer,
		AssertionLifetime: cfg.AssertionLifetime, Fetcher: fetcher, Now: cfg.Now, Logger: cfg.Logger, Federation: cfg.Federation})
	if err != nil {
		return nil, fmt.Errorf("authority: %w", err)
	}
	s.auth = auth
	maxEntries := cfg.RateLimit.MaxEntries
	if maxEntries <= 0 {
		maxEntries = 10000
	}
	s.userCodes = ratelimit.NewCounter(userCodeFailures, userCodeWindow, maxEntries)
	s.deviceStarts = ratelimit.NewCounter(deviceStartsPerIP, userCodeWindow, maxEntries)
	s.login = ratelimit.NewLoginLimiter(cfg.LoginRateLimit)
	s.users = users.New(cfg.Store, cfg.Password, cfg.Now)
	s.dummyHash = users.HashPassword(newJTI(), cfg.Password)
	md, err := buildMetadata(cfg)
	if err != nil {
		return nil, fmt.Errorf("authority: %w", err)
	}
	s.metadata = md

	e := s.newEcho()
	jwksHandler := echo.WrapHandler(cfg.JWKS)
	e.GET("/.well-known/jwks.json", jwksHandler)
	e.HEAD("/.well-known/jwks.json", jwksHandler)
	e.OPTIONS("/.well-known/jwks.json", jwksHandler)
	for _, p := range []string{"/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"} {
		e.GET(p, s.discovery)
		e.HEAD(p, s.discovery)
		e.OPTIONS(p, metadataCORS.Preflight)
	}
	e.Any("/oauth2/token", s.token)
	e.Any("/oauth2/device_authorization", s.deviceAuthorization)
	e.Any("/oauth2/revoke", s.revoke)
	e.Any("/oauth2/introspect", s.introspect)
	e.Any("/oauth2/userinfo", s.userinfo)
	// The endpoints a page calls itself answer its preflight (package
	// cors); these OPTIONS routes replace Any's.
	e.OPTIONS("/oauth2/token", clientCORS.Preflight)
	e.OPTIONS("/oauth2/revoke", clientCORS.Preflight)
	e.OPTIONS("/oauth2/userinfo", userinfoCORS.Preflight)
	e.GET("/oauth2/revocations", s.revocations)
	e.HEAD("/oauth2/revocations", s.revocations)
	e.OPTIONS("/oauth2/revocations", metadataCORS.Preflight)
	e.GET("/healthz", s.healthz)
	e.GET("/readyz", s.readyz)
	if cfg.Metrics != nil {
		e.GET("/metrics", echo.WrapHandler(cfg.Metrics))
	}
	if cfg.SeparateAdmin {
		s.admin = s.newEcho()
	}
	if cfg.Admin != nil {
		if s.admin != nil {
			cfg.Admin(s, s.admin)
		} else {
			cfg.Admin(s, e)
		}
	}
	s.echo = e
	s.feed.watch(ctx, cfg.Store)
	return s, nil
}

// Values of Config.AccessLog.
const (
	AccessLogAll    = "all"
	AccessLogErrors = "errors"
	AccessLogOff    = "off"
)

func (cfg *Config) applyDefaults() error {
	switch cfg.AccessLog {
	case "":
		cfg.AccessLog = AccessLogAll
	case AccessLogAll, AccessLogErrors, AccessLogOff:
	default:
		return fmt.Errorf("authority: access log %q: expected %s, %s or %s", cfg.AccessLog, AccessLogAll, AccessLogErrors, AccessLogOff)
	}
	if cfg.Issuer == "" {
		return errors.New("authority: issuer is required")
	}
	if cfg.Store == nil {
		return errors.New("authority: store is required")
	}
	if cfg.JWKS == nil {
		return errors.New("authority: jwks handler is required")
	}
	if cfg.Signer == nil {
		return errors.New("authority: signer is required")
	}
	if cfg.KeySet == nil {
		return errors.New("authority: key set is required")
	}
	if len(cfg.Algorithms) == 0 {
		cfg.Algorithms = []string{clients.DefaultAlg}
	}
	for _, a := range cfg.Algorithms {
		if !clients.SupportedAlgorithm(a) {
			return fmt.Errorf("authority: algorithms: %q is not supported (supported: %v)", a, clients.SupportedAlgorithms())
		}
	}
	if cfg.MaxTokenTTL <= 0 {
		cfg.MaxTokenTTL = clients.DefaultMaxTTL
	}
	if cfg.DefaultTokenTTL <= 0 {
		cfg.DefaultTokenTTL = min(clients.DefaultTokenTTL, cfg.MaxTokenTTL)
	}
	if cfg.DefaultTokenTTL > cfg.MaxTokenTTL {
		return fmt.Errorf("authority: default token TTL %s is longer than the maximum %s", cfg.DefaultTokenTTL, cfg.MaxTokenTTL)
	}
	cfg.Password.ApplyDefaults()
	if err := cfg.Password.Validate(); err != nil {
		return fmt.Errorf("authority: %w", err)
	}
	if cfg.RefreshIdleTTL <= 0 {
		cfg.RefreshIdleTTL = DefaultRefreshIdleTTL
	}
	if cfg.RefreshAbsoluteTTL <= 0 {
		cfg.RefreshAbsoluteTTL = DefaultRefreshAbsoluteTTL
	}
	if cfg.RefreshIdleTTL > cfg.RefreshAbsoluteTTL {
		return fmt.Errorf("authority: refresh idle TTL %s is longer than the absolute TTL %s", cfg.RefreshIdleTTL, cfg.RefreshAbsoluteTTL)
	}
	if cfg.FeedMaxAge <= 0 {
		cfg.FeedMaxAge = DefaultFeedMaxAge
	}
	if cfg.Leeway <= 0 {
		cfg.Leeway = time.Minute
	}
	if cfg.IPExtractor == nil {
		cfg.IPExtractor = echo.ExtractIPDirect()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return nil
}

func (s *Server) newEcho() *echo.Echo {
	e := echo.New()
	e.HideBanner = true
	e.HidePort = true
	e.IPExtractor = s.cfg.IPExtractor
	e.HTTPErrorHandler = s.handleError
	e.Pre(securityHeaders)
	e.Use(middleware.RequestID())
	e.Use(s.accessLog)
	e.Use(middleware.Recover())
	return e
}

// securityHeaders runs before routing, so that every answer has them:
// success, error, 404 and 405 alike. nosniff because every body is JSON
// (or metrics text) and must never be taken for HTML. The admin API
// answers carry client secrets and the registry: no cache may keep them,
// as no cache may keep a token answer (RFC 6749 §5.1; the OAuth endpoints
// set this themselves, the revocation feed is meant to be cached).
func securityHeaders(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		h := c.Response().Header()
		h["X-Content-Type-Options"] = noSniff
		if p := c.Request().URL.Path; p == "/admin" || strings.HasPrefix(p, "/admin/") {
			h["Cache-Control"] = noStore
			h["Pragma"] = noCache
		}
		return next(c)
	}
}

var noSniff = []string{"nosniff"}

// accessLog writes the "request" line of each request accessLogged
// chooses. It does what echo's RequestLogger did with HandleError (the
// error handler runs first, so the line has the status sent; the error
// still goes up, where echo ignores it for a committed response) without
// its per-request closure and values struct: it runs on every token.
func (s *Server) accessLog(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if s.cfg.AccessLog == AccessLogOff {
			return next(c)
		}
		start := time.Now()
		err := next(c)
		if err != nil {
			c.Error(err)
		}
		req, res := c.Request(), c.Response()
		if !s.accessLogged(c.Path(), res.Status) || !s.log.Enabled(req.Context(), slog.LevelInfo) {
			return err
		}
		id := req.Header.Get(echo.HeaderXRequestID)
		if id == "" {
			id = res.Header().Get(echo.HeaderXRequestID)
		}
		path := req.URL.Path // the path only: a query string could carry a token
		if path == "" {
			path = "/"
		}
		s.log.LogAttrs(req.Context(), slog.LevelInfo, "request",
			slog.String("request_id", id),
			slog.String("method", req.Method),
			slog.String("path", path),
			slog.Int("status", res.Status),
			slog.Float64("latency_ms", float64(time.Since(start).Microseconds())/1000),
			slog.String("remote_ip", c.RealIP()),
		)
		return err
	}
}

// accessLogged says whether a request to route (echo's route template) that
// answered status gets an access log line.
func (s *Server) accessLogged(route string, status int) bool {
	if status >= 400 {
		return true
	}
	if s.cfg.AccessLog != AccessLogAll {
		return false
	}
	switch route {
	case "/healthz", "/readyz", "/.well-known/jwks.json":
		return false
	}
	return true
}

// ServeHTTP serves a request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.echo.ServeHTTP(w, r) }

// AdminHandler serves /admin when Config.SeparateAdmin is set (nil otherwise).
func (s *Server) AdminHandler() http.Handler {
	if s.admin == nil {
		return nil
	}
	return s.admin
}

// Logger is the server's logger (Config.Logger).
func (s *Server) Logger() *slog.Logger { return s.log }

// KeyAdmin is Config.Keys, nil when key administration is not configured.
func (s *Server) KeyAdmin() KeyAdmin { return s.cfg.Keys }

// Backup is Config.Backup, nil when backup is not configured.
func (s *Server) Backup() func(ctx context.Context, w io.Writer) error { return s.cfg.Backup }

// Store is the server's store.
func (s *Server) Store() storage.Store { return s.cfg.Store }

// Now is the server's clock.
func (s *Server) Now() time.Time { return s.cfg.Now() }

// Users is the server's user registry.
func (s *Server) Users() *users.Registry { return s.users }

// Clients is the server's client registry (kept in memory and in sync with
// the store).
func (s *Server) Clients() *clients.Registry { return s.clients }

func (s *Server) healthz(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
}

func (s *Server) readyz(c echo.Context) error {
	if s.cfg.Ready != nil {
		if err := s.cfg.Ready(c.Request().Context()); err != nil {
			s.log.LogAttrs(c.Request().Context(), slog.LevelWarn, "not ready", slog.String("err", err.Error()))
			return c.JSON(http.StatusServiceUnavailable, map[string]string{"status": "unavailable", "reason": err.Error()})
		}
	}
	return c.JSON(http.StatusOK, map[string]string{"status": "ready"})
}

// handleError is the one place errors become responses. An *Error is
// rendered as RFC 6749 §5.2 JSON with its status and headers; router errors
// (404, 405) pass through as JSON; anything unexpected is logged with the
// request id and answered with a bare 500, never with its text.
func (s *Server) handleError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	ctx := c.Request().Context()
	reqID := c.Response().Header().Get(echo.HeaderXRequestID)
	var oe *Error
	if errors.As(err, &oe) {
		h := c.Response().Header()
		h["Cache-Control"] = noStore
		h["Pragma"] = noCache
		switch {
		case oe.basic:
			h.Set(echo.HeaderWWWAuthenticate, `Basic realm="signet"`)
		case oe.bearer != "":
			h.Set(echo.HeaderWWWAuthenticate, oe.bearer)
		}
		if oe.Code == "use_dpop_nonce" && s.cfg.DPoP != nil { // RFC 9449 §8, §9: the nonce to use
			h.Set("DPoP-Nonce", s.cfg.DPoP.Nonce())
		}
		if oe.retryAfter > 0 {
			h.Set(echo.HeaderRetryAfter, strconv.Itoa(oe.retryAfter))
		}
		if oe.allow != "" {
			h.Set(echo.HeaderAllow, oe.allow)
		}
		if oe.refusal != "" {
			s.noteRefusal(ctx, oe, reqID)
		} else if oe.Status >= 500 {
			msg := oe.Description
			if oe.Err != nil {
				msg = oe.Err.Error()
			}
			s.log.LogAttrs(ctx, slog.LevelError, "internal error", slog.String("request_id", reqID), slog.String("err", msg))
		} else {
			s.log.LogAttrs(ctx, slog.LevelDebug, "request refused", slog.String("request_id", reqID), slog.String("error", oe.Code))
		}
		_ = c.JSON(oe.Status, errorBody{oe.Code, descText(oe.Description)})
		return
	}
	var he *echo.HTTPError
	if errors.As(err, &he) {
		msg := http.StatusText(he.Code)
		if m, ok := he.Message.(string); ok && he.Code < 500 {
			msg = m
		}
		if he.Code >= 500 {
			s.log.LogAttrs(ctx, slog.LevelError, "internal error", slog.String("request_id", reqID), slog.String("err", he.Error()))
		}
		_ = c.JSON(he.Code, errorBody{errorCodeForStatus(he.Code), descText(msg)})
		return
	}
	s.log.LogAttrs(ctx, slog.LevelError, "internal error", slog.String("request_id", reqID), slog.String("err", err.Error()))
	_ = c.JSON(http.StatusInternalServerError, errorBody{"server_error", "internal error"})
}

type errorBody struct {
	Error       string `json:"error"`
	Description string `json:"error_description,omitempty"`
}

func errorCodeForStatus(status int) string {
	switch status {
	case http.StatusNotFound:
		return "not_found"
	case http.StatusMethodNotAllowed:
		return "method_not_allowed"
	case http.StatusRequestEntityTooLarge:
		return "invalid_request"
	case http.StatusUnauthorized:
		return "unauthorized"
	case http.StatusForbidden:
		return "forbidden"
	}
	if status >= 500 {
		return "server_error"
	}
	return "invalid_request"
}
