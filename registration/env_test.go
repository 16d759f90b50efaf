package registration_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/labstack/echo/v4"

	"github.com/signet-auth/signet/authority"
	"github.com/signet-auth/signet/clients"
	"github.com/signet-auth/signet/internal/signettest"
	"github.com/signet-auth/signet/keys"
	"github.com/signet-auth/signet/login"
	"github.com/signet-auth/signet/outbound"
	"github.com/signet-auth/signet/registration"
	"github.com/signet-auth/signet/storage/bolt"
	"github.com/signet-auth/signet/users"
)

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
	clock  *signettest.Clock
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
	s := signettest.Start(t, signettest.Options{Logger: o.logger, Algorithms: []string{"ES256"}})
	e := &env{t: t, clock: s.Clock, store: s.Bolt, keys: s.Keys, http: s.HTTP, issuer: s.Issuer,
		docFn: map[string]http.HandlerFunc{}, fetches: map[string]int{}}
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
	t.Cleanup(e.docs.Close)
	pool := x509.NewCertPool()
	pool.AddCert(e.docs.Certificate())
	fo := outbound.Options{RootCAs: pool, AllowLoopback: true, Logger: s.Logger}
	if o.fetcher != nil {
		o.fetcher(&fo)
	}
	fetcher := outbound.New(fo)

	if o.policy.Audiences == nil {
		o.policy = defaultPolicy()
	}
	cfg := s.Config()
	cfg.Scopes = []string{"mcp:tools"}
	cfg.Outbound = fetcher
	cfg.RateLimit = authority.RateLimit{PerClient: -1, PerIP: -1}
	if o.forwarded {
		cfg.IPExtractor = echo.ExtractIPFromXFFHeader(echo.TrustLoopback(true))
	}
	cfg.Registration.Endpoint, cfg.Registration.MetadataDocuments = registration.Endpoint(o.policy, e.issuer), o.policy.MetadataDocuments
	e.srv = s.Authority(cfg)
	var err error
	e.reg, err = registration.New(registration.Config{Policy: o.policy, Clients: e.srv.Clients(), Store: s.Store, Fetcher: fetcher,
		Issuer: e.issuer, Now: e.clock.Now, Logger: s.Logger})
	if err != nil {
		t.Fatal(err)
	}
	e.srv.Register(e.reg.Register)
	s.Login(e.srv, login.Config{Sessions: s.Sessions(s.Store)})
	s.Serve(e.srv)
	if e.alice, err = e.srv.Users().Create(context.Background(), users.NewUser{Username: "alice", Password: alicePassword, Email: "alice@example.com", Name: "Alice"}); err != nil {
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

// browser keeps cookies and follows no redirects.
type browser struct {
	*signettest.Browser
	e *env
}

func (e *env) browser() *browser {
	return &browser{Browser: signettest.NewBrowser(e.t, e.issuer, nil), e: e}
}

type page = signettest.Page

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
	verifier, challenge := signettest.PKCE()
	q := url.Values{"response_type": {"code"}, "client_id": {clientID}, "redirect_uri": {authzRedirect},
		"code_challenge": {challenge}, "code_challenge_method": {"S256"}}
	if scope != "" {
		q.Set("scope", scope)
	}
	p := b.Authorize(q)
	if p.Location == nil && strings.Contains(p.Body, `name="password"`) {
		p = b.Submit(p, url.Values{"username": {"alice"}, "password": {alicePassword}})
	}
	if p.Location == nil {
		if !strings.Contains(p.Body, `value="allow"`) {
			e.t.Fatalf("expected the consent page, got %d:\n%s", p.Status, p.Body)
		}
		if check != nil {
			check(p.Body)
		}
		p = b.Submit(p, url.Values{"decision": {"allow"}})
	}
	if p.Location == nil || p.Location.Query().Get("code") == "" {
		e.t.Fatalf("no code (status %d): %v\n%s", p.Status, p.Location, p.Body)
	}
	return p.Location.Query().Get("code"), verifier
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
