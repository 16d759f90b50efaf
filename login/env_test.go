package login_test

import (
	"bytes"
	"context"
	"crypto/rand"
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
	"sync/atomic"
	"testing"
	"time"

	"github.com/signet-auth/signet/authority"
	"github.com/signet-auth/signet/authority/admin"
	"github.com/signet-auth/signet/clients"
	"github.com/signet-auth/signet/keys"
	"github.com/signet-auth/signet/keys/jwksdoc"
	"github.com/signet-auth/signet/login"
	"github.com/signet-auth/signet/mfa"
	"github.com/signet-auth/signet/outbound"
	"github.com/signet-auth/signet/sessions"
	"github.com/signet-auth/signet/storage"
	"github.com/signet-auth/signet/storage/bolt"
	"github.com/signet-auth/signet/upstream"
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

// env is a whole Signet with its login surface over real HTTP on
// 127.0.0.1: bolt in a temp dir, the real key manager, authority, sessions.
type env struct {
	t      testing.TB
	clock  *testClock
	store  *bolt.Store
	keys   *keys.Manager
	srv    *authority.Server
	sess   *sessions.Manager
	http   *httptest.Server
	issuer string
	alice  users.User
	mfa    *mfa.Factors // nil unless envOptions.factors
}

const alicePassword = "correct horse battery"

type envOptions struct {
	login    authority.LoginRateLimit
	realHash bool
	tls      bool // an https issuer (httptest's TLS server)
	// wrap, when set, is the store the authority and the sessions run on,
	// made from the bolt file (the keys stay on the file); log, when set,
	// receives the JSON log.
	wrap    func(storage.Store) storage.Store
	log     io.Writer
	factors bool // second factors on (package mfa; factors_test.go)
	// policy is who must have a second factor (requirement_test.go).
	policy mfa.Policy
	// localhost names the issuer http://localhost:PORT: a WebAuthn RP ID
	// cannot be an IP address (passkey_test.go).
	localhost bool
	// noPassword is an upstream-only deployment (password_login: false,
	// package upstream without providers); secondFactorOnly turns off
	// passkey sign-in without a password (passkeylogin_test.go).
	noPassword, secondFactorOnly bool
	// replicas serves the requests by two replicas in turn over the
	// shared store (passkeylogin_test.go).
	replicas bool
}

func newEnv(t testing.TB, o envOptions) *env {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	e := &env{t: t, clock: &testClock{t: time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)}}
	logger := slog.New(slog.DiscardHandler)
	if o.log != nil {
		logger = slog.New(slog.NewJSONHandler(o.log, nil))
	}
	st, err := bolt.Open(filepath.Join(t.TempDir(), "signet.db"), bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	e.store = st
	var shared storage.Store = st
	if o.wrap != nil {
		shared = o.wrap(st)
	}
	algs := []string{"RS256", "ES256"}
	e.keys, err = keys.Open(ctx, keys.Options{Store: st, KEK: bytes.Repeat([]byte{7}, 32), Algorithms: algs,
		MaxTokenTTL: time.Hour, Now: e.clock.Now, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	var h http.Handler
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(w, r) })
	if o.tls {
		e.http = httptest.NewTLSServer(handler)
	} else {
		e.http = httptest.NewServer(handler)
	}
	e.issuer = e.http.URL
	if o.localhost {
		e.issuer = strings.Replace(e.issuer, "127.0.0.1", "localhost", 1)
	}
	pw := users.PasswordParams{Memory: 64, Time: 1, Threads: 1}
	if o.realHash {
		pw = users.PasswordParams{}
	}
	if o.login.PerUserIP == 0 {
		o.login.PerUserIP, o.login.PerIP, o.login.PerUser = -1, -1, -1
	}
	// stack is one replica: its own authority, sessions, factors and login
	// surface over the shared store.
	stack := func() (*authority.Server, *sessions.Manager, *mfa.Factors) {
		srv, err := authority.New(ctx, authority.Config{
			Admin:  admin.Routes,
			Issuer: e.issuer, Store: shared, JWKS: jwksdoc.NewHandler(e.keys, 5*time.Minute, logger),
			Signer: e.keys, KeySet: e.keys, Algorithms: algs, Scopes: []string{"read"},
			Password: pw, LoginRateLimit: o.login, Logger: logger, Now: e.clock.Now, DPoP: newDPoPChecker(t, st, e.clock.Now),
			FactorPolicy: o.policy,
		})
		if err != nil {
			t.Fatal(err)
		}
		sess := sessions.New(shared, sessions.Options{Now: e.clock.Now, IdleTTL: time.Hour, AbsoluteTTL: 8 * time.Hour})
		var factors *mfa.Factors
		if o.factors {
			factors = mfa.New(shared, bytes.Repeat([]byte{7}, 32), e.clock.Now)
		}
		var external login.External
		if o.noPassword {
			external, err = upstream.New(upstream.Config{Issuer: e.issuer, Fetcher: outbound.New(outbound.Options{}), Sessions: sess,
				Users: srv.Users(), Store: shared, KEK: bytes.Repeat([]byte{7}, 32), Now: e.clock.Now, Logger: logger})
			if err != nil {
				t.Fatal(err)
			}
		}
		ui, err := login.New(login.Config{Authority: srv, Sessions: sess, Now: e.clock.Now, Logger: logger, Factors: factors,
			External: external, PasskeysSecondFactorOnly: o.secondFactorOnly})
		if err != nil {
			t.Fatal(err)
		}
		srv.Register(ui.Register)
		return srv, sess, factors
	}
	e.srv, e.sess, e.mfa = stack()
	h = e.srv
	if o.replicas {
		// Requests alternate between two replicas: every step of a flow
		// is answered by the other one from the step before.
		other, _, _ := stack()
		var n atomic.Uint64
		h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if n.Add(1)%2 == 0 {
				other.ServeHTTP(w, r)
				return
			}
			e.srv.ServeHTTP(w, r)
		})
	}
	t.Cleanup(func() {
		e.http.Close()
		cancel()
		_ = e.keys.Close()
		_ = st.Close()
	})
	e.alice, err = e.srv.Users().Create(ctx, users.NewUser{Username: "alice", Password: alicePassword,
		Email: "alice@example.com", EmailVerified: true, Name: "Alice Liddell"})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// webClient registers a confidential first-party web client with the code
// flow and refresh tokens; it returns its secret.
func (e *env) webClient(id string, mod func(*clients.Client)) string {
	e.t.Helper()
	cl := clients.Client{ID: id, GrantTypes: []string{clients.GrantAuthorizationCode, clients.GrantRefreshToken},
		Scopes: []string{"openid", "profile", "email", "offline_access", "read"}, DefaultScopes: []string{"openid"},
		Audiences: []string{"api"}, RedirectURIs: []string{"https://app.example/cb"},
		PostLogoutRedirectURIs: []string{"https://app.example/bye"}, FirstParty: true}
	if mod != nil {
		mod(&cl)
	}
	_, secret, err := e.srv.Clients().Create(context.Background(), cl)
	if err != nil {
		e.t.Fatalf("create client %s: %v", id, err)
	}
	return secret
}

// pkce returns a verifier and its S256 challenge.
func pkce() (string, string) {
	var b [32]byte
	_, _ = rand.Read(b[:])
	v := base64.RawURLEncoding.EncodeToString(b[:])
	return v, authority.S256(v)
}

// browser is a cookie-keeping HTTP client that does not follow redirects,
// so a test sees every hop.
type browser struct {
	e *env
	c *http.Client
}

func (e *env) browser() *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{e: e, c: &http.Client{Jar: jar, Transport: e.http.Client().Transport,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// page is one answer the browser got.
type page struct {
	status int
	header http.Header
	body   string
	// location is where the server sends the browser next: a Location
	// header or a continue page's link; nil when neither.
	location *url.URL
}

func (b *browser) do(req *http.Request) page {
	b.e.t.Helper()
	resp, err := b.c.Do(req)
	if err != nil {
		b.e.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	p := page{status: resp.StatusCode, header: resp.Header, body: string(body)}
	if loc := resp.Header.Get("Location"); loc != "" {
		p.location, _ = url.Parse(loc)
	} else if m := continueRE.FindStringSubmatch(p.body); m != nil {
		p.location, _ = url.Parse(html.UnescapeString(m[1]))
	}
	return p
}

var continueRE = regexp.MustCompile(`<a class="button" href="([^"]+)">Continue to the application</a>`)

func (b *browser) get(u string) page {
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	return b.do(req)
}

func (b *browser) post(u string, form url.Values) page {
	req, _ := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(req)
}

// authorize starts an authorization request.
func (b *browser) authorize(q url.Values) page {
	return b.get(b.e.issuer + "/oauth2/authorize?" + q.Encode())
}

var (
	actionRE = regexp.MustCompile(`<form method="post" action="([^"]+)"`)
	hiddenRE = regexp.MustCompile(`<input type="hidden" name="([a-z]+)" value="([^"]*)">`)
)

// formOf returns the action and hidden fields of the page's form.
func formOf(t testing.TB, p page) (string, url.Values) {
	t.Helper()
	m := actionRE.FindStringSubmatch(p.body)
	if m == nil {
		t.Fatalf("no form on the page (status %d):\n%s", p.status, p.body)
	}
	v := url.Values{}
	for _, h := range hiddenRE.FindAllStringSubmatch(p.body, -1) {
		v.Set(h[1], html.UnescapeString(h[2]))
	}
	return html.UnescapeString(m[1]), v
}

// submit posts the page's form with extra fields.
func (b *browser) submit(p page, extra url.Values) page {
	b.e.t.Helper()
	action, v := formOf(b.e.t, p)
	for k, vals := range extra {
		v[k] = vals
	}
	return b.post(b.e.issuer+action, v)
}

// login fills in the login form on p.
func (b *browser) login(p page, username, password string) page {
	return b.submit(p, url.Values{"username": {username}, "password": {password}})
}

// codeFrom checks that p sends the browser to the client with a code and
// returns the callback's query.
func codeFrom(t testing.TB, p page) url.Values {
	t.Helper()
	if p.location == nil {
		t.Fatalf("no redirect (status %d):\n%s", p.status, p.body)
	}
	q := p.location.Query()
	if q.Get("code") == "" {
		t.Fatalf("redirect without code: %s", p.location)
	}
	return q
}

// tokenResponse is the token endpoint's answer.
type tokenResponse struct {
	status int
	body   map[string]any
	raw    string
	header http.Header
}

func (tr tokenResponse) str(k string) string { s, _ := tr.body[k].(string); return s }

// token posts a token request with client_secret_basic (secret "" sends
// client_id in the body with no secret: a public client).
func (e *env) token(id, secret string, form url.Values) tokenResponse {
	e.t.Helper()
	if secret == "" {
		form.Set("client_id", id)
	}
	req, _ := http.NewRequest(http.MethodPost, e.issuer+"/oauth2/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if secret != "" {
		req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	}
	resp, err := e.http.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	out := tokenResponse{status: resp.StatusCode, raw: string(b), header: resp.Header}
	_ = json.Unmarshal(b, &out.body)
	return out
}

// redeem exchanges a code.
func (e *env) redeem(id, secret, code, redirectURI, verifier string) tokenResponse {
	f := url.Values{"grant_type": {"authorization_code"}, "code": {code}}
	if redirectURI != "" {
		f.Set("redirect_uri", redirectURI)
	}
	if verifier != "" {
		f.Set("code_verifier", verifier)
	}
	return e.token(id, secret, f)
}

// claims decodes a JWT payload without verifying it (tests verify
// signatures with go-oidc where it matters).
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
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func header(t testing.TB, jwt string) map[string]any {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(strings.Split(jwt, ".")[0])
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]any{}
	_ = json.Unmarshal(b, &m)
	return m
}

// userinfo calls the userinfo endpoint with a bearer header.
func (e *env) userinfo(at string) (int, map[string]any, http.Header) {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, e.issuer+"/oauth2/userinfo", nil)
	req.Header.Set("Authorization", "Bearer "+at)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	m := map[string]any{}
	_ = json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, m, resp.Header
}

// flow runs a whole first login for client id and returns the tokens.
func (e *env) flow(b *browser, id, secret string, extra url.Values) (tokenResponse, url.Values) {
	e.t.Helper()
	verifier, challenge := pkce()
	q := url.Values{"response_type": {"code"}, "client_id": {id}, "redirect_uri": {"https://app.example/cb"},
		"scope": {"openid profile email"}, "state": {"st-1"}, "nonce": {"n-1"}, "code_challenge": {challenge}, "code_challenge_method": {"S256"}}
	for k, v := range extra {
		q[k] = v
	}
	p := b.authorize(q)
	if p.location == nil {
		p = b.login(p, "alice", alicePassword)
	}
	cb := codeFrom(e.t, p)
	tr := e.redeem(id, secret, cb.Get("code"), q.Get("redirect_uri"), verifier)
	if tr.status != http.StatusOK {
		e.t.Fatalf("redeem = %d %s", tr.status, tr.raw)
	}
	return tr, cb
}
