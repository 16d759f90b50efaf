package authority_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/signet-auth/signet/authority"
	"github.com/signet-auth/signet/clients"
	"github.com/signet-auth/signet/internal/signettest"
	"github.com/signet-auth/signet/jwks"
	"github.com/signet-auth/signet/keys"
	"github.com/signet-auth/signet/keys/custody"
	"github.com/signet-auth/signet/mfa"
	"github.com/signet-auth/signet/outbound"
	"github.com/signet-auth/signet/storage"
	"github.com/signet-auth/signet/users"
)

// keyAdmin adapts *keys.Manager to authority.KeyAdmin, as cmd/signet does.
type keyAdmin struct{ m *keys.Manager }

func (a keyAdmin) Keys(ctx context.Context) ([]authority.KeyInfo, error) {
	list, err := a.m.List(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]authority.KeyInfo, 0, len(list))
	for _, k := range list {
		out = append(out, authority.KeyInfo{KID: k.KID, Alg: k.Alg, State: string(k.State), CreatedAt: k.CreatedAt,
			ActivatedAt: k.ActivatedAt, RetiredAt: k.RetiredAt, RevokedAt: k.RevokedAt, ExpiresAt: k.ExpiresAt})
	}
	return out, nil
}

func (a keyAdmin) Rotate(ctx context.Context, force bool) error {
	err := a.m.Rotate(ctx, force)
	if errors.Is(err, keys.ErrPendingTooYoung) {
		return fmt.Errorf("%w: %w", authority.ErrKeyConflict, err)
	}
	return err
}

func (a keyAdmin) Revoke(ctx context.Context, kid string) error { return a.m.Revoke(ctx, kid) }

// env is a whole Signet over real HTTP: bolt in a temp dir, the real key
// manager and JWKS handler, and the authority server.
type env struct {
	t      testing.TB
	dbPath string
	store  storage.Store
	clock  *signettest.Clock
	keys   *keys.Manager
	srv    *authority.Server
	http   *httptest.Server
	issuer string
	logs   *signettest.LogBuffer
	// admin credentials created for every env
	adminID, adminSecret string
}

type envOptions struct {
	algs      []string
	rateLimit authority.RateLimit
	minAge    time.Duration
	metrics   authority.TokenMetrics
	login     authority.LoginRateLimit
	// password are the argon2id parameters; zero means cheap ones
	// (tests are about behaviour, BenchmarkPassword about cost) unless
	// realHash is set.
	password users.PasswordParams
	realHash bool
	// store, when set, is the store to run on instead of a bolt file.
	store storage.Store
	// dpop, when set, replaces the DPoP checker signet serve builds (its
	// replay cache in the store).
	dpop func(now func() time.Time) *jwks.DPoPChecker
	// outbound, when set, fetches clients' jwks_uri (test CA, allowed networks).
	outbound *outbound.Fetcher
	// adminPasswordOnly is Config.AdminScopePasswordOnly.
	adminPasswordOnly bool
	// noAdmin skips creating the admin client (a second replica on a shared store).
	noAdmin bool
	// custody, when set, holds the keys of the algorithms it names
	// (keys.Options.Custody).
	custody map[string]custody.Custody
	// grants are extension grants (authority.Config.Grants).
	grants map[string]authority.Grant
	// canIssue is authority.Config.CanIssue (a replica's staleness check).
	canIssue func() error
	// factorPolicy is authority.Config.FactorPolicy.
	factorPolicy mfa.Policy
}

// testFeedKey keys the revocation feed's subject hashes in tests.
var testFeedKey = bytes.Repeat([]byte{0x5e}, 32)

func newEnv(t testing.TB, o envOptions) *env {
	t.Helper()
	if len(o.algs) == 0 {
		o.algs = []string{"RS256", "ES256", "EdDSA"}
	}
	if o.rateLimit.PerClient == 0 {
		o.rateLimit.PerClient = -1 // tests that count failures set it
	}
	if o.rateLimit.PerIP == 0 {
		o.rateLimit.PerIP = -1
	}
	if o.password == (users.PasswordParams{}) && !o.realHash {
		o.password = users.PasswordParams{Memory: 64, Time: 1, Threads: 1}
	}
	if o.login.PerUserIP == 0 {
		o.login.PerUserIP, o.login.PerIP, o.login.PerUser = -1, -1, -1
	}
	e := &env{t: t, logs: &signettest.LogBuffer{}}
	logger := slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s := signettest.Start(t, signettest.Options{Logger: logger, LogStore: true, Store: o.store, Algorithms: o.algs,
		Keys: func(ko *keys.Options) { ko.MinPublishAge, ko.Custody = o.minAge, o.custody }})
	e.clock, e.dbPath, e.store, e.keys, e.http, e.issuer = s.Clock, s.DBPath, s.Store, s.Keys, s.HTTP, s.Issuer
	dpop := signettest.DPoPChecker(t, s.Store, e.clock.Now)
	if o.dpop != nil {
		dpop = o.dpop(e.clock.Now)
	}
	cfg := s.Config()
	cfg.Keys = keyAdmin{e.keys}
	cfg.Scopes = []string{"read", "write"}
	cfg.RateLimit, cfg.LoginRateLimit, cfg.Password = o.rateLimit, o.login, o.password
	cfg.FeedSubjectKey, cfg.TokenMetrics, cfg.Outbound = testFeedKey, o.metrics, o.outbound
	cfg.DPoP, cfg.Grants, cfg.CanIssue, cfg.FactorPolicy = dpop, o.grants, o.canIssue, o.factorPolicy
	cfg.AdminScopePasswordOnly = o.adminPasswordOnly
	e.srv = s.Authority(cfg)
	s.Serve(e.srv)
	if o.noAdmin {
		return e
	}
	var err error
	_, e.adminSecret, err = e.srv.Clients().Create(t.Context(), clients.Client{
		ID: "admin", Scopes: []string{authority.AdminScope}, Audiences: []string{authority.AdminAudience},
	})
	if err != nil {
		t.Fatal(err)
	}
	e.adminID = "admin"
	return e
}

// createClient registers a client and returns its secret.
func (e *env) createClient(spec clients.Client) string {
	e.t.Helper()
	_, secret, err := e.srv.Clients().Create(e.t.Context(), spec)
	if err != nil {
		e.t.Fatalf("Create(%s) = %v", spec.ID, err)
	}
	return secret
}

// postForm sends a form to the token endpoint with Basic credentials
// (when id is not empty) and returns status, headers and decoded body.
func (e *env) tokenRequest(form url.Values, id, secret string) (int, http.Header, map[string]any) {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodPost, e.issuer+"/oauth2/token", strings.NewReader(form.Encode()))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if id != "" {
		req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	}
	return e.do(req)
}

func (e *env) do(req *http.Request) (int, http.Header, map[string]any) {
	e.t.Helper()
	resp, err := e.http.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	var m map[string]any
	if len(b) > 0 {
		if err := json.Unmarshal(b, &m); err != nil {
			e.t.Fatalf("%s %s: body is not JSON: %q", req.Method, req.URL.Path, b)
		}
	}
	return resp.StatusCode, resp.Header, m
}

// token gets an access token for id/secret with extra form values.
func (e *env) token(id, secret string, extra url.Values) string {
	e.t.Helper()
	form := url.Values{"grant_type": {"client_credentials"}}
	for k, v := range extra {
		form[k] = v
	}
	status, _, body := e.tokenRequest(form, id, secret)
	if status != http.StatusOK {
		e.t.Fatalf("token(%s) = %d %v, want 200", id, status, body)
	}
	return body["access_token"].(string)
}

// adminToken is a signet:admin token for the env's admin client.
func (e *env) adminToken() string {
	return e.token(e.adminID, e.adminSecret, url.Values{"scope": {authority.AdminScope}, "audience": {authority.AdminAudience}})
}

// admin calls the admin API with a bearer token and a JSON body.
func (e *env) admin(method, path, bearer string, body any) (int, http.Header, map[string]any) {
	e.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, e.issuer+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if method == http.MethodPost || method == http.MethodPatch {
		req.Header.Set("Content-Type", "application/json")
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	return e.do(req)
}

// decodePayload returns a token's claims without verifying it, plus
// "aud_raw": the aud claim's JSON text.
func decodePayload(t testing.TB, tok string) map[string]any {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("token has %d parts", len(parts))
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	m["aud_raw"] = string(raw["aud"])
	return m
}
