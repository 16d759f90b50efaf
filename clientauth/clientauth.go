// Package clientauth authenticates OAuth clients: client_secret_basic,
// client_secret_post, public clients (method none) and private_key_jwt
// (RFC 7523 §2.2, OpenID Connect Core §9), with the failed-authentication
// rate limits. It is the one entry point every endpoint that authenticates
// a client calls (token, revocation, introspection), so a method added
// here is accepted at all of them alike.
package clientauth

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/signet-auth/signet/clients"
	"github.com/signet-auth/signet/outbound"
	"github.com/signet-auth/signet/ratelimit"
	"github.com/signet-auth/signet/replay"
	"github.com/signet-auth/signet/storage"
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

// Config configures an Authenticator.
type Config struct {
	// Clients is the registry clients are looked up in (required).
	Clients *clients.Registry
	// RateLimit bounds failed authentications.
	RateLimit RateLimit
	// Store keeps the jti of accepted assertions (JTIBucket); required
	// for private_key_jwt.
	Store storage.Store
	// Issuer is this server's issuer URL: an assertion's aud must be it,
	// the token endpoint URL or the URL of the endpoint called.
	Issuer string
	// AssertionLifetime caps how far ahead an assertion's exp may be
	// (default 5m); Leeway is the clock skew allowed (default 30s).
	AssertionLifetime time.Duration
	Leeway            time.Duration
	// Fetcher fetches the key sets of clients registered with a jwks_uri;
	// nil refuses those clients.
	Fetcher *outbound.Fetcher
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Logger receives internal errors; nil discards.
	Logger *slog.Logger
	// Federation authenticates clients by tokens of trusted external
	// issuers (package federation); nil: none are trusted.
	Federation Federation
}

// Authenticator authenticates clients. It is safe for concurrent use.
type Authenticator struct {
	tokenEndpoint    string
	cfg              Config
	log              *slog.Logger
	perClient, perIP *ratelimit.Counter
	jtis             *replay.Cache // nil without a store
}

// New returns an Authenticator for cfg.
func New(cfg Config) (*Authenticator, error) {
	if cfg.Clients == nil {
		return nil, errors.New("clientauth: client registry is required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.AssertionLifetime <= 0 {
		cfg.AssertionLifetime = DefaultAssertionLifetime
	}
	if cfg.Leeway <= 0 {
		cfg.Leeway = DefaultLeeway
	}
	cfg.RateLimit.applyDefaults()
	rl := cfg.RateLimit
	a := &Authenticator{cfg: cfg, log: cfg.Logger, tokenEndpoint: strings.TrimSuffix(cfg.Issuer, "/") + TokenPath,
		perClient: ratelimit.NewCounter(rl.PerClient, rl.Window, rl.MaxEntries),
		perIP:     ratelimit.NewCounter(rl.PerIP, rl.Window, rl.MaxEntries),
	}
	if cfg.Store != nil {
		a.jtis = replay.New(cfg.Store, JTIBucket, cfg.Now)
	}
	return a, nil
}

// Request is what an endpoint read from the request for client
// authentication.
type Request struct {
	// Authorization is the request's one Authorization header field, ""
	// when there is none (the caller refuses a repeated field).
	Authorization string
	// ClientID and ClientSecret are the client_id and client_secret
	// form parameters.
	ClientID, ClientSecret string
	// Assertion and AssertionType are client_assertion and
	// client_assertion_type (private_key_jwt).
	Assertion, AssertionType string
	// GrantType and GrantAssertion are the token request's grant_type and
	// assertion. The assertion of an RFC 7523 §2.1 jwt-bearer grant sent
	// without client credentials identifies the client through its
	// federated binding (RFC 7523 §3.1: client authentication is optional
	// with a JWT grant).
	GrantType, GrantAssertion string
	// Endpoint is the absolute URL of the endpoint called, which an
	// assertion's aud may name.
	Endpoint string
	// IP is the client address the per-IP limit counts.
	IP string
}

// TokenPath is the token endpoint's path, whose URL an assertion's aud
// may name at every endpoint (OpenID Connect Core §9 says to send it).
const TokenPath = "/oauth2/token"

// Methods are the client authentication methods Authenticate accepts, for
// discovery (token_endpoint_auth_methods_supported and the same for
// revocation and introspection).
func Methods() []string {
	return []string{clients.AuthSecretBasic, clients.AuthSecretPost, clients.AuthPrivateKeyJWT}
}

// SigningAlgs are the assertion algorithms accepted, for discovery
// (token_endpoint_auth_signing_alg_values_supported).
func SigningAlgs() []string { return clients.AssertionAlgorithms() }

// Error is a refused authentication, in RFC 6749 §5.2 terms. Code and
// Description go to the client; Err is only logged.
type Error struct {
	Code        string // invalid_client, invalid_request, temporarily_unavailable, server_error
	Description string
	Status      int
	// Basic marks an invalid_client answer to a request that used HTTP
	// Basic: it gets WWW-Authenticate (RFC 6749 §5.2).
	Basic bool
	// RetryAfter is set on 429 answers.
	RetryAfter time.Duration
	Err        error
}

func (e *Error) Error() string { return "client authentication: " + e.Code + ": " + e.Description }

func (e *Error) Unwrap() error { return e.Err }

func invalidRequest(desc string) *Error {
	return &Error{Code: "invalid_request", Description: desc, Status: http.StatusBadRequest}
}

func invalidClient(desc string, basic bool, err error) *Error {
	return &Error{Code: "invalid_client", Description: desc, Status: http.StatusUnauthorized, Basic: basic, Err: err}
}

// dummyHash is compared against when the client is unknown, so that an
// unknown client id costs the same as a wrong secret.
var dummyHash = sha256.Sum256([]byte("signet: no such client"))

// Authenticate identifies the client of a request by exactly one method:
// client_secret_basic, client_secret_post, private_key_jwt or none (a
// public client). Every failure that could help guess a secret has the
// same answer, and an unknown client costs the same hash and compare as a
// wrong secret. Errors are *Error.
func (a *Authenticator) Authenticate(ctx context.Context, req Request) (*clients.Entry, error) {
	if req.Assertion != "" || req.AssertionType != "" {
		if req.Authorization != "" || req.ClientSecret != "" {
			return nil, invalidRequest("client authenticated with a client assertion and another method: use one method")
		}
		return a.authenticateAssertion(ctx, req)
	}
	if req.GrantType == clients.GrantJWTBearer && req.GrantAssertion != "" && req.Authorization == "" && req.ClientSecret == "" && a.cfg.Federation != nil {
		return a.authenticateFederated(ctx, req, req.GrantAssertion, true)
	}
	var id, secret string
	basic := false
	if h := req.Authorization; h != "" {
		basic = true
		scheme, cred, _ := strings.Cut(h, " ")
		if !strings.EqualFold(scheme, "Basic") {
			return nil, invalidClient("unsupported Authorization scheme: use HTTP Basic or client_secret_post", true, nil)
		}
		if req.ClientSecret != "" {
			return nil, invalidRequest("client authenticated with both HTTP Basic and client_secret_post: use one method")
		}
		var ok bool
		if id, secret, ok = parseBasic(cred); !ok {
			return nil, invalidClient("malformed HTTP Basic credentials (RFC 6749 section 2.3.1)", true, nil)
		}
		if req.ClientID != "" && req.ClientID != id {
			return nil, invalidRequest("client_id in the body does not match the Authorization header")
		}
	} else {
		id, secret = req.ClientID, req.ClientSecret
		if id == "" {
			return nil, invalidClient("client authentication required (HTTP Basic or client_secret_post)", true, nil)
		}
	}

	if !basic && secret == "" {
		if ent := a.publicClient(ctx, id); ent != nil {
			return ent, nil // nothing to guess, so nothing to rate-limit
		}
	}
	now := a.cfg.Now()
	g, err := a.guard(id, req.IP, basic, now)
	if err != nil {
		return nil, err
	}
	ent, err := a.cfg.Clients.Lookup(ctx, id)
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return nil, fmt.Errorf("authenticate client: %w", err) // not a refusal: the endpoint maps it (a store that did not answer is 503)
	}
	sum := sha256.Sum256([]byte(secret))
	if ent == nil {
		subtle.ConstantTimeCompare(sum[:], dummyHash[:])
		return g.fail("client authentication failed", err)
	}
	ok := subtle.ConstantTimeCompare(sum[:], ent.Record.SecretHash) == 1
	if !ok && len(ent.Record.PreviousSecretHash) > 0 && now.Before(ent.Record.PreviousSecretExpiresAt) {
		ok = subtle.ConstantTimeCompare(sum[:], ent.Record.PreviousSecretHash) == 1
	}
	if !ok || secret == "" {
		return g.fail("client authentication failed", nil)
	}
	// Past this point the caller holds the secret: precise answers help it
	// and tell a stranger nothing.
	if ent.Record.Disabled {
		return g.fail("client is disabled", nil)
	}
	if basic && !ent.Basic {
		return g.fail("client is not registered for client_secret_basic", nil)
	}
	if !basic && !ent.Post {
		return g.fail("client is not registered for client_secret_post", nil)
	}
	return ent, nil
}

// guard is the rate limit of one authentication attempt.
type guard struct {
	a          *Authenticator
	id, ip     string
	basic      bool
	now        time.Time
	clientWait time.Duration
}

func tooMany(wait time.Duration) *Error {
	return &Error{Code: "temporarily_unavailable", Description: "too many failed authentication attempts; retry later", Status: http.StatusTooManyRequests, RetryAfter: wait}
}

// guard refuses an address over its limit at once. The per-client limit
// only answers failures: anyone who knows a client id could otherwise lock
// that client out from anywhere. The holder of the right credential always
// gets through (its own address's limit aside); a guesser past the limit
// learns nothing but 429.
func (a *Authenticator) guard(id, ip string, basic bool, now time.Time) (*guard, error) {
	if wait := a.perIP.RetryAfter(ip, now); wait > 0 {
		return nil, tooMany(wait)
	}
	return &guard{a: a, id: id, ip: ip, basic: basic, now: now, clientWait: a.perClient.RetryAfter(id, now)}, nil
}

// fail counts a failure and returns the answer for it.
func (g *guard) fail(desc string, err error) (*clients.Entry, error) {
	if g.clientWait > 0 {
		return nil, tooMany(g.clientWait)
	}
	if clients.ValidID(g.id) { // no client has another id: bounded keys only
		g.a.perClient.Fail(g.id, g.now)
	}
	g.a.perIP.Fail(g.ip, g.now)
	return nil, invalidClient(desc, g.basic, err)
}

// publicClient returns the client id as a public client (auth method none),
// or nil when it is not one: then the ordinary secret check runs and fails.
func (a *Authenticator) publicClient(ctx context.Context, id string) *clients.Entry {
	ent, err := a.cfg.Clients.Lookup(ctx, id)
	if err != nil || ent.Record.Disabled || !ent.Record.Public || !slices.Contains(ent.Record.AuthMethods, clients.AuthNone) {
		return nil
	}
	return ent
}

// parseBasic decodes HTTP Basic credentials whose id and secret are each
// application/x-www-form-urlencoded (RFC 6749 §2.3.1).
func parseBasic(cred string) (id, secret string, ok bool) {
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(cred))
	if err != nil {
		return "", "", false
	}
	u, pw, found := strings.Cut(string(raw), ":")
	if !found {
		return "", "", false
	}
	if id, err = url.QueryUnescape(u); err != nil || id == "" {
		return "", "", false
	}
	if secret, err = url.QueryUnescape(pw); err != nil {
		return "", "", false
	}
	return id, secret, true
}
