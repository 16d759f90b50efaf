// Package registration serves the clients that arrive on their own:
// RFC 7591 dynamic client registration with RFC 7592 read, update and
// delete through a registration access token, and clients identified by a
// client ID metadata document (draft-ietf-oauth-client-id-metadata-document,
// as the MCP authorization spec uses it), both within a policy the operator
// sets. Such clients are marked Dynamic in the registry (clients.Client),
// never first-party, never client_credentials, never a signet:* scope.
//
// The registry stores registered clients; metadata-document clients are
// built from the fetched document (the hardened outbound fetcher caches
// it) whenever clients.Registry.Lookup meets an https URL as client id.
package registration

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/signet-auth/signet/audit"
	"github.com/signet-auth/signet/authority/cors"
	"github.com/signet-auth/signet/authority/refusal"
	"github.com/signet-auth/signet/clients"
	"github.com/signet-auth/signet/outbound"
	"github.com/signet-auth/signet/ratelimit"
	"github.com/signet-auth/signet/storage"
)

// Path is the registration endpoint; a client's configuration endpoint
// (RFC 7592 registration_client_uri) is Path/CLIENT_ID.
const Path = "/oauth2/register"

// maxBody bounds a registration request body.
const maxBody = 16 << 10

// Policy is what the operator allows clients that arrive on their own.
// The zero value allows nothing; Defaults fills in the documented defaults.
type Policy struct {
	// Registration turns on the RFC 7591 endpoint.
	Registration bool
	// InitialAccessTokenHash, when set, is the SHA-256 of the bearer token
	// a registration must carry (RFC 7591 §3); nil: open registration.
	InitialAccessTokenHash []byte
	// GrantTypes a dynamic client may have (default authorization_code,
	// refresh_token; device_code may be added; never client_credentials
	// or password).
	GrantTypes []string
	// AuthMethods a dynamic client may authenticate with (default none,
	// with PKCE required, and private_key_jwt).
	AuthMethods []string
	// Scopes are the scopes a dynamic client may be granted; a request for
	// others is accepted and they are left out. DefaultScopes are granted
	// when the client names none.
	Scopes        []string
	DefaultScopes []string
	// Audiences are the audiences (RFC 8707 resources) a dynamic client's
	// tokens may have; the first is the default. Required.
	Audiences []string
	// PrivateUseSchemes allows native apps' com.example.app:/cb redirect
	// URIs (RFC 8252 §7.1).
	PrivateUseSchemes bool
	// PerIP registrations (and failed registration access tokens) are
	// allowed per source address per Window (defaults 10 per hour).
	PerIP  int
	Window time.Duration
	// MaxClients caps the dynamically registered clients (default 1000).
	MaxClients int
	// UnusedTTL: a registered client unused this long is purged (default
	// 720h; 0 after Defaults is impossible).
	UnusedTTL time.Duration
	// MetadataDocuments turns on client ID metadata documents.
	MetadataDocuments bool
	// AllowHosts, when not empty, are the only hosts whose documents are
	// fetched; DenyHosts are never fetched. "*.example.com" matches every
	// subdomain of example.com.
	AllowHosts, DenyHosts []string
	// Fetches is how many documents not in the cache may be fetched per
	// FetchWindow over all requests, and FetchesPerIP per source address
	// (defaults 100 and 10 per minute; -1: no limit). Past either, such a
	// client_id is an unknown client; cached documents spend nothing.
	Fetches, FetchesPerIP int
	FetchWindow           time.Duration
}

// Defaults fills in the zero fields of p.
func (p *Policy) Defaults() {
	if p.GrantTypes == nil {
		p.GrantTypes = []string{clients.GrantAuthorizationCode, clients.GrantRefreshToken}
	}
	if p.AuthMethods == nil {
		p.AuthMethods = []string{clients.AuthNone, clients.AuthPrivateKeyJWT}
	}
	if p.PerIP == 0 {
		p.PerIP = 10
	}
	if p.Window <= 0 {
		p.Window = time.Hour
	}
	if p.MaxClients == 0 {
		p.MaxClients = 1000
	}
	if p.UnusedTTL <= 0 {
		p.UnusedTTL = 30 * 24 * time.Hour
	}
	if p.Fetches == 0 {
		p.Fetches = 100
	}
	if p.FetchesPerIP == 0 {
		p.FetchesPerIP = 10
	}
	if p.FetchWindow <= 0 {
		p.FetchWindow = time.Minute
	}
}

// Check reports what is wrong with p, naming the policy field.
func (p *Policy) Check() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	for _, g := range p.GrantTypes {
		switch g {
		case clients.GrantAuthorizationCode, clients.GrantRefreshToken, clients.GrantDeviceCode:
		default:
			bad("grant_types", "%q: a dynamic client may have authorization_code, refresh_token and %s only", g, clients.GrantDeviceCode)
		}
	}
	for _, m := range p.AuthMethods {
		switch m {
		case clients.AuthNone, clients.AuthPrivateKeyJWT, clients.AuthSecretBasic, clients.AuthSecretPost:
		default:
			bad("auth_methods", "%q: expected none, private_key_jwt, client_secret_basic or client_secret_post", m)
		}
	}
	if len(p.AuthMethods) == 0 {
		bad("auth_methods", "empty: allow none (public clients with PKCE) or private_key_jwt")
	}
	for _, s := range p.Scopes {
		if strings.HasPrefix(s, "signet:") || !clients.ValidScopeToken(s) {
			bad("scopes", "%q: a dynamic client may not hold Signet's own scopes (signet:*), and a scope is printable ASCII without spaces", s)
		}
	}
	for _, s := range p.DefaultScopes {
		if !slices.Contains(p.Scopes, s) {
			bad("default_scopes", "%q is not in scopes: add it there or remove it here", s)
		}
	}
	if (p.Registration || p.MetadataDocuments) && len(p.Audiences) == 0 {
		bad("audiences", "empty: name the resources (audiences) dynamic clients may get tokens for, such as https://mcp.example.com")
	}
	if p.PerIP < -1 || p.MaxClients < -1 {
		bad("registration.per_ip", "use a positive number, or -1 for no limit")
	}
	if p.Fetches < -1 || p.FetchesPerIP < -1 {
		bad("metadata_documents.fetches", "use a positive number, or -1 for no limit")
	}
	for _, h := range append(append([]string{}, p.AllowHosts...), p.DenyHosts...) {
		if h == "" || strings.ContainsAny(h, "/:@ ") || strings.Count(h, "*") > 1 || (strings.Contains(h, "*") && !strings.HasPrefix(h, "*.")) {
			bad("metadata_documents.allow_hosts", "%q: expected a host name such as mcp.example.com or *.example.com", h)
		}
	}
	return errors.Join(errs...)
}

// Config configures the registration service.
type Config struct {
	Policy Policy
	// Clients is the server's registry (authority.Server.Clients).
	Clients *clients.Registry
	// Store holds the audit events.
	Store storage.Store
	// Fetcher fetches metadata documents (the server's outbound fetcher).
	Fetcher *outbound.Fetcher
	// Issuer is the server's issuer URL.
	Issuer string
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Logger receives internal errors; nil discards.
	Logger *slog.Logger
}

// Service serves registration and resolves metadata-document clients.
type Service struct {
	cfg      Config
	log      *slog.Logger
	perIP    *ratelimit.Counter
	failures *ratelimit.Counter

	fetches      *ratelimit.Counter // metadata documents fetched, all addresses
	fetchesPerIP *ratelimit.Counter
	refused      refusal.Log
	admit        func(context.Context) error // admitFetch, bound once: the warm lookup allocates no method value
}

// New returns the service for cfg after checking its policy, and wires it
// into the registry: metadata-document clients are resolved by it, and
// the use of registered clients is noted for the purge.
func New(cfg Config) (*Service, error) {
	cfg.Policy.Defaults()
	if err := cfg.Policy.Check(); err != nil {
		return nil, fmt.Errorf("registration: %w", err)
	}
	if cfg.Clients == nil || cfg.Store == nil {
		return nil, errors.New("registration: clients and store are required")
	}
	if cfg.Policy.MetadataDocuments && cfg.Fetcher == nil {
		return nil, errors.New("registration: metadata documents need a fetcher")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	cfg.Issuer = strings.TrimSuffix(cfg.Issuer, "/")
	s := &Service{cfg: cfg, log: cfg.Logger,
		perIP:    ratelimit.NewCounter(cfg.Policy.PerIP, cfg.Policy.Window, 10000),
		failures: ratelimit.NewCounter(cfg.Policy.PerIP, cfg.Policy.Window, 10000),

		fetches:      ratelimit.NewCounter(cfg.Policy.Fetches, cfg.Policy.FetchWindow, 1),
		fetchesPerIP: ratelimit.NewCounter(cfg.Policy.FetchesPerIP, cfg.Policy.FetchWindow, 10000),
	}
	s.admit = s.admitFetch
	if cfg.Policy.MetadataDocuments {
		cfg.Clients.SetResolver(s.Resolve)
	}
	if cfg.Policy.Registration {
		// Often enough that a used client is never purged, rarely enough
		// that the token path writes nothing most of the time.
		cfg.Clients.SetUseTracking(min(cfg.Policy.UnusedTTL/10, 24*time.Hour))
	}
	return s, nil
}

// Endpoint is the registration_endpoint the issuer advertises under
// policy p (authority.Config.Registration), "" when registration is off.
func Endpoint(p Policy, issuer string) string {
	if !p.Registration {
		return ""
	}
	return strings.TrimSuffix(issuer, "/") + Path
}

// Register adds the routes to the server's echo (authority.Server.Register),
// and, with metadata documents on, the middleware that tells Resolve the
// source address of the OAuth requests that may name a new client_id.
func (s *Service) Register(e *echo.Echo) {
	if s.cfg.Policy.MetadataDocuments {
		e.Use(sourceAddress)
	}
	if !s.cfg.Policy.Registration {
		return
	}
	// Clients that run in a page (an MCP client in a browser tab)
	// register from it: the endpoint answers any origin's preflight and
	// lets it read the answer. No cookie is involved, only the initial
	// and registration access tokens, which the page itself holds.
	readable := func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			browserCORS.Answer(c)
			return next(c)
		}
	}
	e.POST(Path, s.register, readable)
	e.OPTIONS(Path, browserCORS.Preflight)
	e.GET(Path+"/:id", s.read, readable)
	e.PUT(Path+"/:id", s.update, readable)
	e.DELETE(Path+"/:id", s.remove, readable)
	e.OPTIONS(Path+"/:id", browserCORS.Preflight)
}

// browserCORS is what a page may send to the registration endpoints.
var browserCORS = cors.Public("GET, POST, PUT, DELETE", "Authorization")

// Purge deletes the registered clients unused for Policy.UnusedTTL, each
// with an audit event; the server's purge job runs it on the leader.
func (s *Service) Purge(ctx context.Context) storage.Purged {
	now := s.cfg.Now()
	return s.cfg.Clients.PurgeUnusedDynamic(ctx, now.Add(-s.cfg.Policy.UnusedTTL), func(tx storage.Tx, id string) error {
		return audit.Put(tx, audit.Attribute(ctx, audit.Event{Time: now, Action: "clients.purge_unused", Target: id,
			Outcome: audit.OutcomeOK, Detail: "dynamic client unused for " + s.cfg.Policy.UnusedTTL.String()}))
	})
}

// regError is an RFC 7591 §3.2.2 (or RFC 6750 §3.1) error answer.
type regError struct {
	status int
	code   string
	desc   string
	retry  time.Duration
}

func (s *Service) fail(c echo.Context, e *regError) error {
	h := c.Response().Header()
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	if e.status == http.StatusUnauthorized {
		h.Set("WWW-Authenticate", `Bearer error="`+e.code+`"`)
	}
	if e.retry > 0 {
		h.Set("Retry-After", strconv.Itoa(int(e.retry.Seconds()+0.999)))
	}
	return c.JSON(e.status, map[string]string{"error": e.code, "error_description": e.desc})
}

func badMetadata(desc string) *regError {
	return &regError{http.StatusBadRequest, "invalid_client_metadata", desc, 0}
}

func badRedirect(desc string) *regError {
	return &regError{http.StatusBadRequest, "invalid_redirect_uri", desc, 0}
}

var errInvalidToken = &regError{http.StatusUnauthorized, "invalid_token", "the access token is missing, invalid or not for this client", 0}

func tooMany(wait time.Duration) *regError {
	return &regError{http.StatusTooManyRequests, "temporarily_unavailable", "too many registration requests from this address; retry later", wait}
}

// bearer returns the request's bearer token, "" when there is none.
func bearer(r *http.Request) string {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(tok)
}

// readMetadata reads a JSON client metadata body.
func readMetadata(c echo.Context) (clientMetadata, *regError) {
	var md clientMetadata
	r := c.Request()
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(strings.ToLower(ct), "application/json") {
		return md, &regError{http.StatusBadRequest, "invalid_request", "the body must be application/json", 0}
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil || len(b) > maxBody {
		return md, &regError{http.StatusBadRequest, "invalid_request", "the body is unreadable or larger than 16 KiB", 0}
	}
	if err := json.Unmarshal(b, &md); err != nil {
		return md, badMetadata("the body is not a JSON object of client metadata: " + clients.QuoteValue(err.Error()))
	}
	return md, nil
}

// register is POST /oauth2/register (RFC 7591 §3.1).
func (s *Service) register(c echo.Context) error {
	now := s.cfg.Now()
	ip := c.RealIP()
	if wait := s.perIP.RetryAfter(ip, now); wait > 0 {
		return s.fail(c, tooMany(wait))
	}
	s.perIP.Fail(ip, now) // every attempt counts: a flood is what it bounds
	actor := "anonymous"
	if want := s.cfg.Policy.InitialAccessTokenHash; want != nil {
		if subtle.ConstantTimeCompare(clients.HashToken(bearer(c.Request())), want) != 1 {
			return s.fail(c, errInvalidToken)
		}
		actor = "initial-access-token"
	}
	md, e := readMetadata(c)
	if e != nil {
		return s.fail(c, e)
	}
	spec, e := s.toClient(md, false)
	if e != nil {
		return s.fail(c, e)
	}
	spec.ID = "dcr-" + random(16)
	token := random(32)
	ctx := c.Request().Context()
	reqID := c.Response().Header().Get(echo.HeaderXRequestID)
	cl, secret, err := s.cfg.Clients.CreateDynamic(ctx, spec, clients.HashToken(token), s.cfg.Policy.MaxClients, func(tx storage.Tx, cl clients.Client) error {
		return audit.Put(tx, audit.Event{Time: now, Actor: actor, Action: "clients.register", Target: cl.ID, Outcome: audit.OutcomeOK,
			Detail: "dynamic client " + clients.QuoteValue(cl.ClientName) + " from " + ip, RequestID: reqID})
	})
	var ve *clients.ValidationError
	switch {
	case errors.Is(err, clients.ErrTooManyDynamic):
		return s.fail(c, &regError{http.StatusForbidden, "access_denied", "this server holds as many dynamically registered clients as it allows; ask its operator", 0})
	case errors.As(err, &ve):
		return s.fail(c, validationError(ve))
	case err != nil:
		s.log.LogAttrs(ctx, slog.LevelError, "register client", slog.String("request_id", reqID), slog.String("err", err.Error()))
		return s.fail(c, &regError{http.StatusServiceUnavailable, "temporarily_unavailable", "the client could not be stored; retry later", 0})
	}
	out := s.describe(cl)
	out["client_id_issued_at"] = cl.CreatedAt.Unix()
	out["registration_access_token"] = token
	if secret != "" {
		out["client_secret"] = secret
		out["client_secret_expires_at"] = 0
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	c.Response().Header().Set("Pragma", "no-cache")
	return c.JSON(http.StatusCreated, out)
}

// client authenticates an RFC 7592 request: the registration access token
// of the client the URL names, compared in constant time. Every failure is
// the same 401, and counts against the address.
func (s *Service) client(c echo.Context) (*clients.Entry, *regError) {
	now := s.cfg.Now()
	ip := c.RealIP()
	if wait := s.failures.RetryAfter(ip, now); wait > 0 {
		return nil, tooMany(wait)
	}
	sum := clients.HashToken(bearer(c.Request()))
	ent, err := s.cfg.Clients.Lookup(c.Request().Context(), c.Param("id"))
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return nil, &regError{http.StatusServiceUnavailable, "temporarily_unavailable", "the client could not be read; retry later", 0}
	}
	want, real := dummyHash, false // an unknown client costs the same compare
	if ent != nil && ent.Record.Dynamic && len(ent.Record.RegistrationTokenHash) > 0 {
		want, real = ent.Record.RegistrationTokenHash, true
	}
	if subtle.ConstantTimeCompare(sum, want) != 1 || !real {
		s.failures.Fail(ip, now)
		return nil, errInvalidToken
	}
	return ent, nil
}

// validationError is the registry's refusal in RFC 7591 §3.2.2 terms.
func validationError(ve *clients.ValidationError) *regError {
	if ve.Field == "redirect_uris" {
		return badRedirect(ve.Field + ": " + ve.Problem)
	}
	return badMetadata(ve.Field + ": " + ve.Problem)
}

var dummyHash = clients.HashToken("signet: no registration access token")

// read is GET /oauth2/register/:id (RFC 7592 §2.1).
func (s *Service) read(c echo.Context) error {
	ent, e := s.client(c)
	if e != nil {
		return s.fail(c, e)
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.JSON(http.StatusOK, s.describe(ent.Record.Client))
}

// update is PUT /oauth2/register/:id (RFC 7592 §2.2): the body replaces
// the client's metadata.
func (s *Service) update(c echo.Context) error {
	ent, e := s.client(c)
	if e != nil {
		return s.fail(c, e)
	}
	md, e := readMetadata(c)
	if e != nil {
		return s.fail(c, e)
	}
	old := ent.Record.Client
	if md.ClientID != old.ID {
		return s.fail(c, badMetadata("client_id must be the client's own"))
	}
	spec, e := s.toClient(md, false)
	if e != nil {
		return s.fail(c, e)
	}
	if spec.Public != old.Public || (md.TokenEndpointAuthMethod != "" && !slices.Contains(old.AuthMethods, md.TokenEndpointAuthMethod)) {
		return s.fail(c, badMetadata("token_endpoint_auth_method cannot change; register a new client"))
	}
	p := clients.Patch{GrantTypes: &spec.GrantTypes, Scopes: &spec.Scopes, DefaultScopes: &spec.DefaultScopes,
		RedirectURIs: &spec.RedirectURIs, ApplicationType: &spec.ApplicationType, ClientName: &spec.ClientName}
	if slices.Contains(old.AuthMethods, clients.AuthPrivateKeyJWT) {
		p.JWKS, p.JWKSURI = &spec.JWKS, &spec.JWKSURI
	}
	ctx := c.Request().Context()
	cl, err := s.cfg.Clients.Update(ctx, old.ID, p)
	var ve *clients.ValidationError
	switch {
	case errors.As(err, &ve):
		return s.fail(c, validationError(ve))
	case errors.Is(err, storage.ErrNotFound):
		return s.fail(c, errInvalidToken)
	case err != nil:
		s.log.LogAttrs(ctx, slog.LevelError, "update dynamic client", slog.String("client_id", old.ID), slog.String("err", err.Error()))
		return s.fail(c, &regError{http.StatusServiceUnavailable, "temporarily_unavailable", "the client could not be stored; retry later", 0})
	}
	s.record(c, audit.Event{Actor: old.ID, Action: "clients.update", Target: old.ID, Outcome: audit.OutcomeOK, Detail: "dynamic client, by its registration access token"})
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.JSON(http.StatusOK, s.describe(cl))
}

// remove is DELETE /oauth2/register/:id (RFC 7592 §2.3).
func (s *Service) remove(c echo.Context) error {
	ent, e := s.client(c)
	if e != nil {
		return s.fail(c, e)
	}
	ctx := c.Request().Context()
	id := ent.Record.ID
	reqID := c.Response().Header().Get(echo.HeaderXRequestID)
	err := s.cfg.Clients.DeleteWith(ctx, id, func(tx storage.Tx) error {
		return audit.Put(tx, audit.Event{Time: s.cfg.Now(), Actor: id, Action: "clients.delete", Target: id, Outcome: audit.OutcomeOK,
			Detail: "dynamic client, by its registration access token", RequestID: reqID})
	})
	if errors.Is(err, storage.ErrNotFound) {
		return s.fail(c, errInvalidToken)
	} else if err != nil {
		s.log.LogAttrs(ctx, slog.LevelError, "delete dynamic client", slog.String("client_id", id), slog.String("err", err.Error()))
		return s.fail(c, &regError{http.StatusServiceUnavailable, "temporarily_unavailable", "the client could not be deleted; retry later", 0})
	}
	return c.NoContent(http.StatusNoContent)
}

func (s *Service) record(c echo.Context, ev audit.Event) {
	ev.Time, ev.RequestID = s.cfg.Now(), c.Response().Header().Get(echo.HeaderXRequestID)
	if err := audit.New(s.cfg.Store, s.cfg.Now).Record(c.Request().Context(), ev); err != nil {
		s.log.LogAttrs(c.Request().Context(), slog.LevelError, "audit", slog.String("action", ev.Action), slog.String("err", err.Error()))
	}
}

// describe is a client's metadata as RFC 7591 §3.2.1 answers it.
func (s *Service) describe(cl clients.Client) map[string]any {
	method := clients.AuthNone
	if len(cl.AuthMethods) > 0 {
		method = cl.AuthMethods[0]
	}
	out := map[string]any{
		"client_id":                  cl.ID,
		"redirect_uris":              cl.RedirectURIs,
		"grant_types":                cl.GrantTypes,
		"response_types":             []string{"code"},
		"token_endpoint_auth_method": method,
		"scope":                      strings.Join(cl.Scopes, " "),
		"application_type":           orDefault(cl.ApplicationType, clients.AppWeb),
		"registration_client_uri":    s.cfg.Issuer + Path + "/" + cl.ID,
		"dynamic":                    true,
	}
	if cl.ClientName != "" {
		out["client_name"] = cl.ClientName
	}
	if cl.JWKSURI != "" {
		out["jwks_uri"] = cl.JWKSURI
	}
	if len(cl.JWKS) > 0 {
		out["jwks"] = cl.JWKS
	}
	return out
}

func orDefault(v, d string) string {
	if v == "" {
		return d
	}
	return v
}

// random returns n random bytes, base64url.
func random(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return base64.RawURLEncoding.EncodeToString(b)
}
