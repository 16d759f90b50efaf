package registration_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"html"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/signet-auth/signet/authority"
	"github.com/signet-auth/signet/authority/admin"
	"github.com/signet-auth/signet/clients"
	"github.com/signet-auth/signet/keys"
	"github.com/signet-auth/signet/keys/jwksdoc"
	"github.com/signet-auth/signet/login"
	"github.com/signet-auth/signet/outbound"
	"github.com/signet-auth/signet/registration"
	"github.com/signet-auth/signet/sessions"
	"github.com/signet-auth/signet/storage/bolt"
	"github.com/signet-auth/signet/users"
)

// testClock is an injected clock the test moves by hand.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

const (
	alicePassword = "correct horse battery"
	resource      = "https://mcp.example/mcp"
)

// env is a whole Signet over real HTTP on 127.0.0.1: bolt in a temp dir,
// the real key manager, authority, hosted login and the registration
// service, wired as cmd/signet wires them; docs is a loopback https
// server (httptest's test CA, which the fetcher trusts) serving client
// metadata documents.
type env struct {
	t      testing.TB
	clock  *testClock
	store  *bolt.Store
	keys   *keys.Manager
	srv    *authority.Server
	reg    *registration.Service
	http   *httptest.Server
	issuer string
	alice  users.User

	docs    *httptest.Server
	docMu   sync.Mutex
	docFn   map[string]http.HandlerFunc
	fetches map[string]int
}

type envOptions struct {
	policy registration.Policy
	// fetcher changes the outbound options (the test CA and loopback are
	// set before it runs).
	fetcher func(*outbound.Options)
	// forwarded takes the source address from X-Forwarded-For sent over
	// loopback (http.trusted_proxies: a proxy on loopback).
	forwarded bool
	// logger receives the server's logs; nil discards.
	logger *slog.Logger
}

// defaultPolicy is the policy of most tests: registration and metadata
// documents on, the defaults otherwise.
func defaultPolicy() registration.Policy {
	return registration.Policy{Registration: true, MetadataDocuments: true, Audiences: []string{resource},
		Scopes: []string{"openid", "profile", "mcp:tools"}, DefaultScopes: []string{"openid"}, PrivateUseSchemes: true, PerIP: -1}
}

func newEnv(t testing.TB, o envOptions) *env {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	e := &env{t: t, clock: &testClock{t: time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)}, docFn: map[string]http.HandlerFunc{}, fetches: map[string]int{}}
	logger := slog.New(slog.DiscardHandler)
	if o.logger != nil {
		logger = o.logger
	}
	st, err := bolt.Open(filepath.Join(t.TempDir(), "signet.db"), bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	e.store = st
	algs := []string{"ES256"}
	e.keys, err = keys.Open(ctx, keys.Options{Store: st, KEK: bytes.Repeat([]byte{7}, 32), Algorithms: algs,
		MaxTokenTTL: time.Hour, Now: e.clock.Now, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	e.docs = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.docMu.Lock()
		fn := e.docFn[r.URL.Path]
		e.fetches[r.URL.Path]++
		e.docMu.Unlock()
		if fn == nil {
			http.NotFound(w, r)
			return
		}
		fn(w, r)
	}))
	pool := x509.NewCertPool()
	pool.AddCert(e.docs.Certificate())
	fo := outbound.Options{RootCAs: pool, AllowLoopback: true, Logger: logger}
	if o.fetcher != nil {
		o.fetcher(&fo)
	}
	fetcher := outbound.New(fo)

	var h http.Handler
	e.http = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(w, r) }))
	e.issuer = e.http.URL
	if o.policy.Audiences == nil {
		o.policy = defaultPolicy()
	}
	cfg := authority.Config{
		Admin:  admin.Routes,
		Issuer: e.issuer, Store: st, JWKS: jwksdoc.NewHandler(e.keys, 5*time.Minute, logger),
		Signer: e.keys, KeySet: e.keys, Algorithms: algs, Scopes: []string{"mcp:tools"},
		Password: users.PasswordParams{Memory: 64, Time: 1, Threads: 1}, Outbound: fetcher,
		LoginRateLimit: authority.LoginRateLimit{PerUserIP: -1, PerIP: -1, PerUser: -1},
		RateLimit:      authority.RateLimit{PerClient: -1, PerIP: -1},
		Logger:         logger, Now: e.clock.Now,
	}
	if o.forwarded {
		cfg.IPExtractor = echo.ExtractIPFromXFFHeader(echo.TrustLoopback(true))
	}
	cfg.Registration.Endpoint, cfg.Registration.MetadataDocuments = registration.Endpoint(o.policy, e.issuer), o.policy.MetadataDocuments
	e.srv, err = authority.New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.reg, err = registration.New(registration.Config{Policy: o.policy, Clients: e.srv.Clients(), Store: st, Fetcher: fetcher,
		Issuer: e.issuer, Now: e.clock.Now, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	e.srv.Register(e.reg.Register)
	sess := sessions.New(st, sessions.Options{Now: e.clock.Now, IdleTTL: time.Hour, AbsoluteTTL: 8 * time.Hour})
	ui, err := login.New(login.Config{Authority: e.srv, Sessions: sess, Now: e.clock.Now, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	e.srv.Register(ui.Register)
	h = e.srv
	t.Cleanup(func() {
		e.http.Close()
		e.docs.Close()
		cancel()
		_ = e.keys.Close()
		_ = st.Close()
	})
	if e.alice, err = e.srv.Users().Create(ctx, users.NewUser{Username: "alice", Password: alicePassword, Email: "alice@example.com", Name: "Alice"}); err != nil {
		t.Fatal(err)
	}
	return e
}

// serveDoc serves fn at path on the documents server and returns its URL.
func (e *env) serveDoc(path string, fn http.HandlerFunc) string {
	e.docMu.Lock()
	defer e.docMu.Unlock()
	e.docFn[path] = fn
	return e.docs.URL + path
}

// serveJSON serves a document at path; its client_id is its URL unless
// the document sets one.
func (e *env) serveJSON(path string, doc map[string]any) string {
	u := e.docs.URL + path
	if _, ok := doc["client_id"]; !ok {
		doc["client_id"] = u
	}
	b, _ := json.Marshal(doc)
	return e.serveDoc(path, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "max-age=300")
		_, _ = w.Write(b)
	})
}

func (e *env) fetchCount(path string) int {
	e.docMu.Lock()
	defer e.docMu.Unlock()
	return e.fetches[path]
}

// answer is a JSON HTTP answer.
type answer struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

func (a answer) str(k string) string { s, _ := a.body[k].(string); return s }

// call sends a JSON request (body nil: none) with a bearer token.
func (e *env) call(method, path, token string, body any) answer {
	e.t.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	u := path
	if strings.HasPrefix(path, "/") {
		u = e.issuer + path
	}
	req, _ := http.NewRequest(method, u, r)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	a := answer{status: resp.StatusCode, header: resp.Header, raw: string(b)}
	_ = json.Unmarshal(b, &a.body)
	return a
}

// register posts a registration request.
func (e *env) register(md map[string]any) answer {
	e.t.Helper()
	return e.call(http.MethodPost, registration.Path, "", md)
}

// publicClient is what the MCP SDK registers: a public native client.
func publicClient() map[string]any {
	return map[string]any{"client_name": "Tool Runner", "redirect_uris": []string{"http://127.0.0.1/callback"},
		"grant_types": []string{"authorization_code", "refresh_token"}, "response_types": []string{"code"},
		"token_endpoint_auth_method": "none", "scope": "mcp:tools openid"}
}

// form posts a form to the token endpoint.
func (e *env) token(form url.Values, basicID, basicSecret string) answer {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.issuer+"/oauth2/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if basicID != "" {
		req.SetBasicAuth(url.QueryEscape(basicID), url.QueryEscape(basicSecret))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	a := answer{status: resp.StatusCode, header: resp.Header, raw: string(b)}
	_ = json.Unmarshal(b, &a.body)
	return a
}

func pkce() (string, string) {
	var b [32]byte
	_, _ = rand.Read(b[:])
	v := base64.RawURLEncoding.EncodeToString(b[:])
	return v, authority.S256(v)
}

// browser keeps cookies and follows no redirects.
type browser struct {
	e *env
	c *http.Client
}

func (e *env) browser() *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{e: e, c: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

type page struct {
	status   int
	body     string
	location *url.URL
}

var (
	continueRE = regexp.MustCompile(`<a class="button" href="([^"]+)">Continue to the application</a>`)
	actionRE   = regexp.MustCompile(`<form method="post" action="([^"]+)"`)
	hiddenRE   = regexp.MustCompile(`<input type="hidden" name="([a-z]+)" value="([^"]*)">`)
)

func (b *browser) do(req *http.Request) page {
	b.e.t.Helper()
	resp, err := b.c.Do(req)
	if err != nil {
		b.e.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	p := page{status: resp.StatusCode, body: string(body)}
	if loc := resp.Header.Get("Location"); loc != "" {
		p.location, _ = url.Parse(loc)
	} else if m := continueRE.FindStringSubmatch(p.body); m != nil {
		p.location, _ = url.Parse(html.UnescapeString(m[1]))
	}
	return p
}

func (b *browser) authorize(q url.Values) page {
	req, _ := http.NewRequest(http.MethodGet, b.e.issuer+"/oauth2/authorize?"+q.Encode(), nil)
	return b.do(req)
}

// submit posts the page's form with extra fields.
func (b *browser) submit(p page, extra url.Values) page {
	b.e.t.Helper()
	m := actionRE.FindStringSubmatch(p.body)
	if m == nil {
		b.e.t.Fatalf("no form on the page (status %d):\n%s", p.status, p.body)
	}
	v := url.Values{}
	for _, h := range hiddenRE.FindAllStringSubmatch(p.body, -1) {
		v.Set(h[1], html.UnescapeString(h[2]))
	}
	for k, vals := range extra {
		v[k] = vals
	}
	req, _ := http.NewRequest(http.MethodPost, b.e.issuer+html.UnescapeString(m[1]), strings.NewReader(v.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(req)
}

// codeFlow logs alice in for clientID, checks the consent page with
// check, allows, and redeems the code with PKCE (public client).
func (e *env) codeFlow(b *browser, clientID, authzRedirect, scope string, check func(consent string)) answer {
	e.t.Helper()
	code, verifier := e.authorizeCode(b, clientID, authzRedirect, scope, check)
	return e.token(url.Values{"grant_type": {"authorization_code"}, "code": {code},
		"redirect_uri": {authzRedirect}, "code_verifier": {verifier}, "client_id": {clientID}}, "", "")
}

// authorizeCode runs the browser part of codeFlow and returns the code
// and the PKCE verifier.
func (e *env) authorizeCode(b *browser, clientID, authzRedirect, scope string, check func(consent string)) (string, string) {
	e.t.Helper()
	verifier, challenge := pkce()
	q := url.Values{"response_type": {"code"}, "client_id": {clientID}, "redirect_uri": {authzRedirect},
		"code_challenge": {challenge}, "code_challenge_method": {"S256"}}
	if scope != "" {
		q.Set("scope", scope)
	}
	p := b.authorize(q)
	if p.location == nil && strings.Contains(p.body, `name="password"`) {
		p = b.submit(p, url.Values{"username": {"alice"}, "password": {alicePassword}})
	}
	if p.location == nil {
		if !strings.Contains(p.body, `value="allow"`) {
			e.t.Fatalf("expected the consent page, got %d:\n%s", p.status, p.body)
		}
		if check != nil {
			check(p.body)
		}
		p = b.submit(p, url.Values{"decision": {"allow"}})
	}
	if p.location == nil || p.location.Query().Get("code") == "" {
		e.t.Fatalf("no code (status %d): %v\n%s", p.status, p.location, p.body)
	}
	return p.location.Query().Get("code"), verifier
}

// claims decodes a JWT payload without verifying it.
func claims(t testing.TB, jwt string) map[string]any {
	t.Helper()
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %q", jwt)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]any{}
	_ = json.Unmarshal(b, &m)
	return m
}

// confidential makes an operator's client_credentials client.
func (e *env) confidential(id string) string {
	e.t.Helper()
	_, secret, err := e.srv.Clients().Create(context.Background(), clients.Client{ID: id, Scopes: []string{"mcp:tools"}, Audiences: []string{"api"}})
	if err != nil {
		e.t.Fatal(err)
	}
	return secret
}
