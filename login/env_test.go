package login_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/signet-auth/signet/authority"
	"github.com/signet-auth/signet/clients"
	"github.com/signet-auth/signet/internal/signettest"
	"github.com/signet-auth/signet/keys"
	"github.com/signet-auth/signet/login"
	"github.com/signet-auth/signet/mfa"
	"github.com/signet-auth/signet/outbound"
	"github.com/signet-auth/signet/sessions"
	"github.com/signet-auth/signet/storage"
	"github.com/signet-auth/signet/storage/bolt"
	"github.com/signet-auth/signet/upstream"
	"github.com/signet-auth/signet/users"
)

// env is a whole Signet with its login surface over real HTTP on
// 127.0.0.1: bolt in a temp dir, the real key manager, authority, sessions.
type env struct {
	t      testing.TB
	clock  *signettest.Clock
	store  *bolt.Store
	keys   *keys.Manager
	srv    *authority.Server
	sess   *sessions.Manager
	http   *httptest.Server
	issuer string
	alice  users.User
	mfa    *mfa.Factors // nil unless envOptions.factors
	// replica is the second replica (envOptions.replicas), nil otherwise.
	replica *authority.Server
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
	var logger *slog.Logger
	if o.log != nil {
		logger = slog.New(slog.NewJSONHandler(o.log, nil))
	}
	s := signettest.Start(t, signettest.Options{Logger: logger, TLS: o.tls, Localhost: o.localhost})
	e := &env{t: t, clock: s.Clock, store: s.Bolt, keys: s.Keys, http: s.HTTP, issuer: s.Issuer}
	var shared storage.Store = s.Store
	if o.wrap != nil {
		shared = o.wrap(s.Store)
	}
	if o.login.PerUserIP == 0 {
		o.login.PerUserIP, o.login.PerIP, o.login.PerUser = -1, -1, -1
	}
	// stack is one replica: its own authority, sessions, factors and login
	// surface over the shared store.
	stack := func() (*authority.Server, *sessions.Manager, *mfa.Factors) {
		cfg := s.Config()
		cfg.Store = shared
		if o.realHash {
			cfg.Password = users.PasswordParams{}
		}
		cfg.LoginRateLimit, cfg.DPoP, cfg.FactorPolicy = o.login, signettest.DPoPChecker(t, s.Store, e.clock.Now), o.policy
		srv := s.Authority(cfg)
		sess := s.Sessions(shared)
		var factors *mfa.Factors
		if o.factors {
			factors = mfa.New(shared, signettest.KEK(), e.clock.Now)
		}
		var external login.External
		if o.noPassword {
			var err error
			external, err = upstream.New(upstream.Config{Issuer: e.issuer, Fetcher: outbound.New(outbound.Options{}), Sessions: sess,
				Users: srv.Users(), Store: shared, KEK: signettest.KEK(), Now: e.clock.Now, Logger: s.Logger})
			if err != nil {
				t.Fatal(err)
			}
		}
		s.Login(srv, login.Config{Sessions: sess, Factors: factors, External: external, PasskeysSecondFactorOnly: o.secondFactorOnly})
		return srv, sess, factors
	}
	e.srv, e.sess, e.mfa = stack()
	var h http.Handler = e.srv
	if o.replicas {
		// Requests alternate between two replicas: every step of a flow
		// is answered by the other one from the step before.
		other, _, _ := stack()
		e.replica = other
		var n atomic.Uint64
		h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if n.Add(1)%2 == 0 {
				other.ServeHTTP(w, r)
				return
			}
			e.srv.ServeHTTP(w, r)
		})
	}
	s.Serve(h)
	var err error
	e.alice, err = e.srv.Users().Create(context.Background(), users.NewUser{Username: "alice", Password: alicePassword,
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
	e.awaitClient(id)
	return secret
}

// browser is a cookie-keeping HTTP client that does not follow redirects,
// so a test sees every hop.
type browser struct {
	*signettest.Browser
	e *env
}

func (e *env) browser() *browser {
	return &browser{Browser: signettest.NewBrowser(e.t, e.issuer, e.http.Client().Transport), e: e}
}

// page is one answer the browser got.
type page = signettest.Page

// login fills in the login form on p.
func (b *browser) login(p page, username, password string) page {
	return b.Submit(p, url.Values{"username": {username}, "password": {password}})
}

// codeFrom checks that p sends the browser to the client with a code and
// returns the callback's query.
func codeFrom(t testing.TB, p page) url.Values {
	t.Helper()
	if p.Location == nil {
		t.Fatalf("no redirect (status %d):\n%s", p.Status, p.Body)
	}
	q := p.Location.Query()
	if q.Get("code") == "" {
		t.Fatalf("redirect without code: %s", p.Location)
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
	verifier, challenge := signettest.PKCE()
	q := url.Values{"response_type": {"code"}, "client_id": {id}, "redirect_uri": {"https://app.example/cb"},
		"scope": {"openid profile email"}, "state": {"st-1"}, "nonce": {"n-1"}, "code_challenge": {challenge}, "code_challenge_method": {"S256"}}
	for k, v := range extra {
		q[k] = v
	}
	p := b.Authorize(q)
	if p.Location == nil {
		p = b.login(p, "alice", alicePassword)
	}
	cb := codeFrom(e.t, p)
	tr := e.redeem(id, secret, cb.Get("code"), q.Get("redirect_uri"), verifier)
	if tr.status != http.StatusOK {
		e.t.Fatalf("redeem = %d %s", tr.status, tr.raw)
	}
	return tr, cb
}

// awaitClient waits until the second replica, if any, knows client id: it
// learns of clients made through the first from the store's watch, a
// moment later (TestPasskeySignIn_Replicas failed with "Unknown
// application" when its first request reached the second replica first).
func (e *env) awaitClient(id string) {
	e.t.Helper()
	if e.replica == nil {
		return
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := e.replica.Clients().Lookup(context.Background(), id); err == nil {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("the second replica did not learn of client %s within 10s", id)
		}
		time.Sleep(5 * time.Millisecond) // polling a condition with a deadline
	}
}
