package exchange_test

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
	"testing"
	"time"

	"github.com/signet-auth/signet/authority"
	"github.com/signet-auth/signet/clients"
	"github.com/signet-auth/signet/exchange"
	"github.com/signet-auth/signet/jwks"
	"github.com/signet-auth/signet/keys"
	"github.com/signet-auth/signet/keys/jwksdoc"
	"github.com/signet-auth/signet/login"
	"github.com/signet-auth/signet/replay"
	"github.com/signet-auth/signet/sessions"
	"github.com/signet-auth/signet/storage/bolt"
	"github.com/signet-auth/signet/users"
)

const password = "correct horse battery staple"

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

// env is a whole Signet over real HTTP, as signet serve wires it: a bolt
// file, the key manager, the authority with the exchange grant, the hosted
// login (for ID tokens) and the DPoP checker.
type env struct {
	t      testing.TB
	clock  *testClock
	srv    *authority.Server
	http   *httptest.Server
	issuer string
	alice  string // user id
}

func newEnv(t testing.TB) *env {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	e := &env{t: t, clock: &testClock{t: time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)}}
	logger := slog.New(slog.DiscardHandler)
	st, err := bolt.Open(filepath.Join(t.TempDir(), "signet.db"), bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	algs := []string{"RS256", "ES256"}
	km, err := keys.Open(ctx, keys.Options{Store: st, KEK: bytes.Repeat([]byte{7}, 32), Algorithms: algs,
		MaxTokenTTL: time.Hour, Now: e.clock.Now, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	var h http.Handler
	e.http = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(w, r) }))
	e.issuer = e.http.URL
	dpop, err := jwks.NewDPoPChecker(jwks.WithDPoPClock(e.clock.Now), jwks.WithDPoPReplayCache(replay.New(st, replay.DPoPBucket, e.clock.Now)))
	if err != nil {
		t.Fatal(err)
	}
	grant := &exchange.Grant{}
	e.srv, err = authority.New(ctx, authority.Config{
		Issuer: e.issuer, Store: st, JWKS: jwksdoc.NewHandler(km, 5*time.Minute, logger),
		Signer: km, KeySet: km, Algorithms: algs, Scopes: []string{"read", "write", "delete", "signet:ops"},
		Password:       users.PasswordParams{Memory: 64, Time: 1, Threads: 1},
		RateLimit:      authority.RateLimit{PerClient: -1, PerIP: -1},
		LoginRateLimit: authority.LoginRateLimit{PerUserIP: -1, PerIP: -1, PerUser: -1},
		Logger:         logger, Now: e.clock.Now, DPoP: dpop,
		Grants: map[string]authority.Grant{clients.GrantTokenExchange: grant},
	})
	if err != nil {
		t.Fatal(err)
	}
	grant.Tokens = e.srv
	ui, err := login.New(login.Config{Authority: e.srv, Now: e.clock.Now, Logger: logger,
		Sessions: sessions.New(st, sessions.Options{Now: e.clock.Now, IdleTTL: time.Hour, AbsoluteTTL: 8 * time.Hour})})
	if err != nil {
		t.Fatal(err)
	}
	e.srv.Register(ui.Register)
	h = e.srv
	t.Cleanup(func() {
		e.http.Close()
		cancel()
		_ = km.Close()
		_ = st.Close()
	})
	u, err := e.srv.Users().Create(ctx, users.NewUser{Username: "alice", Password: password, Email: "alice@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	e.alice = u.ID
	return e
}

func (e *env) client(cl clients.Client) string {
	e.t.Helper()
	_, secret, err := e.srv.Clients().Create(context.Background(), cl)
	if err != nil {
		e.t.Fatalf("create client %s: %v", cl.ID, err)
	}
	return secret
}

// post sends form to path with client_secret_basic and header (may be nil).
func (e *env) post(path string, form url.Values, id, secret string, header http.Header) (int, map[string]any) {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodPost, e.issuer+path, strings.NewReader(form.Encode()))
	if err != nil {
		e.t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	resp, err := e.http.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil && len(b) > 0 {
		e.t.Fatalf("POST %s: body is not JSON: %q", path, b)
	}
	return resp.StatusCode, m
}

// token is a token request that must succeed; it returns the access token.
func (e *env) token(form url.Values, id, secret string) string {
	e.t.Helper()
	code, body := e.post("/oauth2/token", form, id, secret, nil)
	if code != http.StatusOK {
		e.t.Fatalf("token %v by %s = %d %v", form.Get("grant_type"), id, code, body)
	}
	return body["access_token"].(string)
}

// exchangeForm is a token exchange request for subject (an access token)
// with extra parameters as name, value pairs.
func exchangeForm(subject string, kv ...string) url.Values {
	f := url.Values{"grant_type": {clients.GrantTokenExchange}, "subject_token": {subject}, "subject_token_type": {exchange.TypeAccessToken}}
	for i := 0; i+1 < len(kv); i += 2 {
		f.Set(kv[i], kv[i+1])
	}
	return f
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
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

var (
	actionRE   = regexp.MustCompile(`<form method="post" action="([^"]+)"`)
	continueRE = regexp.MustCompile(`<a class="button" href="([^"]+)">Continue to the application</a>`)
	hiddenRE   = regexp.MustCompile(`<input type="hidden" name="([a-z]+)" value="([^"]*)">`)
)

// idToken runs the code flow at first-party client id as alice (the
// hosted login page, a real cookie jar) and returns the ID token.
func (e *env) idToken(id, secret string) string {
	e.t.Helper()
	jar, _ := cookiejar.New(nil)
	b := &http.Client{Jar: jar, Transport: e.http.Client().Transport,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	var v [32]byte
	_, _ = rand.Read(v[:])
	verifier := base64.RawURLEncoding.EncodeToString(v[:])
	q := url.Values{"response_type": {"code"}, "client_id": {id}, "redirect_uri": {"https://app.example/cb"}, "scope": {"openid"},
		"state": {"s"}, "nonce": {"n"}, "code_challenge": {authority.S256(verifier)}, "code_challenge_method": {"S256"}}
	resp, err := b.Get(e.issuer + "/oauth2/authorize?" + q.Encode())
	if err != nil {
		e.t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := actionRE.FindSubmatch(page)
	if m == nil {
		e.t.Fatalf("no login form (status %d): %s", resp.StatusCode, page)
	}
	form := url.Values{"username": {"alice"}, "password": {password}}
	for _, h := range hiddenRE.FindAllSubmatch(page, -1) {
		form.Set(string(h[1]), html.UnescapeString(string(h[2])))
	}
	resp, err = b.PostForm(e.issuer+html.UnescapeString(string(m[1])), form)
	if err != nil {
		e.t.Fatal(err)
	}
	page, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	next := resp.Header.Get("Location")
	if m := continueRE.FindSubmatch(page); next == "" && m != nil { // the page that leaves Signet for the client
		next = html.UnescapeString(string(m[1]))
	}
	loc, err := url.Parse(next)
	if err != nil || loc.Query().Get("code") == "" {
		e.t.Fatalf("login answered %d, next %q: %s", resp.StatusCode, next, page)
	}
	code, body := e.post("/oauth2/token", url.Values{"grant_type": {"authorization_code"}, "code": {loc.Query().Get("code")},
		"redirect_uri": {"https://app.example/cb"}, "code_verifier": {verifier}}, id, secret, nil)
	if code != http.StatusOK || body["id_token"] == nil {
		e.t.Fatalf("redeem = %d %v", code, body)
	}
	return body["id_token"].(string)
}
