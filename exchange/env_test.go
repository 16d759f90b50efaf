package exchange_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/signet-auth/signet/authority"
	"github.com/signet-auth/signet/clients"
	"github.com/signet-auth/signet/exchange"
	"github.com/signet-auth/signet/internal/signettest"
	"github.com/signet-auth/signet/users"
)

const password = "correct horse battery staple"

// env is a whole Signet over real HTTP, as signet serve wires it: a bolt
// file, the key manager, the authority with the exchange grant, the hosted
// login (for ID tokens) and the DPoP checker.
type env struct {
	t      testing.TB
	clock  *signettest.Clock
	srv    *authority.Server
	http   *httptest.Server
	issuer string
	alice  string // user id
}

func newEnv(t testing.TB) *env {
	t.Helper()
	s := signettest.Start(t, signettest.Options{})
	e := &env{t: t, clock: s.Clock, http: s.HTTP, issuer: s.Issuer}
	grant := &exchange.Grant{}
	cfg := s.Config()
	cfg.Admin = nil
	cfg.Scopes = []string{"read", "write", "delete", "signet:ops"}
	cfg.RateLimit = authority.RateLimit{PerClient: -1, PerIP: -1}
	cfg.DPoP = signettest.DPoPChecker(t, s.Store, e.clock.Now)
	cfg.Grants = map[string]authority.Grant{clients.GrantTokenExchange: grant}
	e.srv, _ = s.Hosted(cfg)
	grant.Tokens = e.srv
	u, err := e.srv.Users().Create(context.Background(), users.NewUser{Username: "alice", Password: password, Email: "alice@example.com"})
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

// idToken runs the code flow at first-party client id as alice (the
// hosted login page, a real cookie jar) and returns the ID token.
func (e *env) idToken(id, secret string) string {
	e.t.Helper()
	b := signettest.NewBrowser(e.t, e.issuer, e.http.Client().Transport)
	verifier, challenge := signettest.PKCE()
	q := url.Values{"response_type": {"code"}, "client_id": {id}, "redirect_uri": {"https://app.example/cb"}, "scope": {"openid"},
		"state": {"s"}, "nonce": {"n"}, "code_challenge": {challenge}, "code_challenge_method": {"S256"}}
	p := b.Submit(b.Authorize(q), url.Values{"username": {"alice"}, "password": {password}})
	if p.Location == nil || p.Location.Query().Get("code") == "" {
		e.t.Fatalf("login answered %d, next %v: %s", p.Status, p.Location, p.Body)
	}
	code, body := e.post("/oauth2/token", url.Values{"grant_type": {"authorization_code"}, "code": {p.Location.Query().Get("code")},
		"redirect_uri": {"https://app.example/cb"}, "code_verifier": {verifier}}, id, secret, nil)
	if code != http.StatusOK || body["id_token"] == nil {
		e.t.Fatalf("redeem = %d %v", code, body)
	}
	return body["id_token"].(string)
}
