package authority_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/signet-auth/signet/authority"
	adminapi "github.com/signet-auth/signet/authority/admin"
	"github.com/signet-auth/signet/keys/jwksdoc"
	"github.com/signet-auth/signet/users"
)

// headerServer is a second Server on the env's store and keys with what
// the env leaves out: /metrics, readiness, and the admin API on its own
// handler (SeparateAdmin). main and admin are their base URLs.
func headerServer(t *testing.T, e *env) (srv *authority.Server, main, admin string) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	t.Cleanup(cancel)
	var h http.Handler
	mainHTTP := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(w, r) }))
	t.Cleanup(mainHTTP.Close)
	srv, err := authority.New(ctx, authority.Config{
		Admin:         adminapi.Routes,
		Issuer:        mainHTTP.URL,
		Store:         e.store,
		JWKS:          jwksdoc.NewHandler(e.keys, 5*time.Minute, nil),
		Signer:        e.keys,
		KeySet:        e.keys,
		Keys:          keyAdmin{e.keys},
		Algorithms:    []string{"RS256", "ES256", "EdDSA"},
		Password:      users.PasswordParams{Memory: 64, Time: 1, Threads: 1},
		Metrics:       http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("# metrics\n")) }),
		Ready:         func(context.Context) error { return nil },
		SeparateAdmin: true,
		Now:           e.clock.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	h = srv
	adminHTTP := httptest.NewServer(srv.AdminHandler())
	t.Cleanup(adminHTTP.Close)
	return srv, mainHTTP.URL, adminHTTP.URL
}

// routeRequest builds a request for an echo route: path parameters get a
// value, state-changing methods a body of the kind the endpoint reads.
func routeRequest(t *testing.T, base, method, path, bearer string) *http.Request {
	t.Helper()
	segs := strings.Split(path, "/")
	for i, s := range segs {
		if strings.HasPrefix(s, ":") || s == "*" {
			segs[i] = "x"
		}
	}
	var body string
	ctype := "application/json"
	switch {
	case strings.HasPrefix(path, "/oauth2/"):
		body, ctype = "grant_type=client_credentials", "application/x-www-form-urlencoded"
	case method == http.MethodPost || method == http.MethodPatch || method == http.MethodPut:
		body = "{}"
	}
	req, err := http.NewRequest(method, base+strings.Join(segs, "/"), strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	return req
}

func send(t *testing.T, req *http.Request) *http.Response {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	resp.Body.Close()
	return resp
}

// TestHeaders_NoSniffEverywhere walks every route echo has registered
// (main and separate admin handler, /metrics and /readyz included), with
// and without an admin token, plus a 404 and a 405 on each handler: every
// answer carries X-Content-Type-Options: nosniff, and every admin API
// answer Cache-Control: no-store and Pragma: no-cache.
func TestHeaders_NoSniffEverywhere(t *testing.T) {
	e := newEnv(t, envOptions{})
	srv, main, admin := headerServer(t, e)
	tok := e.adminToken()
	routes := srv.RoutesForTest()
	sort.Slice(routes, func(i, j int) bool { return routes[i].Path+routes[i].Method < routes[j].Path+routes[j].Method })
	seen := map[string]bool{}
	for _, r := range routes {
		if r.Method == http.MethodConnect {
			continue // net/http's client sends CONNECT to a host, not a path
		}
		seen[r.Path] = true
		base := main
		if strings.HasPrefix(r.Path, "/admin") {
			base = admin
		}
		for _, bearer := range []string{"", tok} {
			resp := send(t, routeRequest(t, base, r.Method, r.Path, bearer))
			if got := resp.Header.Values("X-Content-Type-Options"); len(got) != 1 || got[0] != "nosniff" {
				t.Errorf("%s %s (token %t) = %d, X-Content-Type-Options %q, want one nosniff", r.Method, r.Path, bearer != "", resp.StatusCode, got)
			}
			if strings.HasPrefix(r.Path, "/admin") && (resp.Header.Get("Cache-Control") != "no-store" || resp.Header.Get("Pragma") != "no-cache") {
				t.Errorf("%s %s (token %t) = %d, Cache-Control %q Pragma %q, want no-store and no-cache", r.Method, r.Path, bearer != "", resp.StatusCode,
					resp.Header.Get("Cache-Control"), resp.Header.Get("Pragma"))
			}
		}
	}
	for _, p := range []string{"/oauth2/token", "/oauth2/revoke", "/oauth2/introspect", "/oauth2/revocations", "/healthz", "/readyz", "/metrics",
		"/.well-known/jwks.json", "/.well-known/openid-configuration", "/admin/clients", "/admin/clients/:id/secret"} {
		if !seen[p] {
			t.Errorf("route %s not walked: is it still registered?", p)
		}
	}
	for _, tc := range []struct {
		base, method, path string
		status             int
	}{
		{main, http.MethodGet, "/nope", http.StatusNotFound},
		{main, http.MethodGet, "/admin/clients", http.StatusNotFound}, // admin is on its own handler
		{admin, http.MethodGet, "/nope", http.StatusNotFound},
		{main, http.MethodDelete, "/healthz", http.StatusMethodNotAllowed},
		{main, http.MethodPost, "/.well-known/openid-configuration", http.StatusMethodNotAllowed},
		{admin, http.MethodPut, "/admin/clients", http.StatusMethodNotAllowed},
		{e.issuer, http.MethodGet, "/nope", http.StatusNotFound},
		{e.issuer, http.MethodDelete, "/admin/keys", http.StatusMethodNotAllowed},
	} {
		resp := send(t, routeRequest(t, tc.base, tc.method, tc.path, tok))
		if resp.StatusCode != tc.status || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s %s = %d, X-Content-Type-Options %q; want %d with nosniff", tc.method, tc.path, resp.StatusCode, resp.Header.Get("X-Content-Type-Options"), tc.status)
		}
	}
}

// noStore checks the caching headers of an answer that carries a secret
// or a token.
func noStore(t *testing.T, what string, h http.Header) {
	t.Helper()
	if h.Get("Cache-Control") != "no-store" || h.Get("Pragma") != "no-cache" {
		t.Errorf("%s: Cache-Control %q, Pragma %q; want no-store and no-cache", what, h.Get("Cache-Control"), h.Get("Pragma"))
	}
}

// TestHeaders_SecretsNotCached: every answer that carries a client secret
// or a token (client create and secret rotation, each grant of the token
// endpoint, introspection, revocation) and their error answers say
// no-store and no-cache.
func TestHeaders_SecretsNotCached(t *testing.T) {
	e := newEnv(t, envOptions{})
	adm := e.adminToken()
	s, h, b := e.admin(http.MethodPost, "/admin/clients", adm, map[string]any{"client_id": "svc", "audiences": []string{"api"}})
	if s != http.StatusCreated || b["client_secret"] == nil {
		t.Fatalf("create = %d %v", s, b)
	}
	noStore(t, "POST /admin/clients", h)
	s, h, b = e.admin(http.MethodPost, "/admin/clients/svc/secret", adm, map[string]any{})
	if s != http.StatusOK || b["client_secret"] == nil {
		t.Fatalf("rotate = %d %v", s, b)
	}
	noStore(t, "POST /admin/clients/svc/secret", h)
	s, h, _ = e.admin(http.MethodPost, "/admin/clients", adm, map[string]any{"client_id": "svc", "audiences": []string{"api"}})
	if s != http.StatusConflict {
		t.Fatalf("duplicate create = %d", s)
	}
	noStore(t, "POST /admin/clients (409)", h)

	sec := e.userClient("app", nil)
	e.createUser("alice")
	form := url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {testPassword}}
	s, h, b = e.post("/oauth2/token", form, "app", sec)
	if s != http.StatusOK || b["refresh_token"] == nil {
		t.Fatalf("password grant = %d %v", s, b)
	}
	noStore(t, "password grant", h)
	at, rt := b["access_token"].(string), b["refresh_token"].(string)
	s, h, b = e.post("/oauth2/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}, "app", sec)
	if s != http.StatusOK {
		t.Fatalf("refresh grant = %d %v", s, b)
	}
	noStore(t, "refresh grant", h)
	s, h, _ = e.post("/oauth2/token", url.Values{"grant_type": {"client_credentials"}}, e.adminID, e.adminSecret)
	if s != http.StatusOK {
		t.Fatalf("client_credentials = %d", s)
	}
	noStore(t, "client_credentials grant", h)
	s, h, _ = e.post("/oauth2/token", url.Values{"grant_type": {"client_credentials"}}, e.adminID, "wrong")
	if s != http.StatusUnauthorized {
		t.Fatalf("wrong secret = %d", s)
	}
	noStore(t, "token error", h)
	s, h, _ = e.post("/oauth2/introspect", url.Values{"token": {at}}, "rs", e.rsSecret())
	if s != http.StatusOK {
		t.Fatalf("introspect = %d", s)
	}
	noStore(t, "introspect", h)
	s, h, _ = e.post("/oauth2/revoke", url.Values{"token": {at}}, "app", sec)
	if s != http.StatusOK {
		t.Fatalf("revoke = %d", s)
	}
	noStore(t, "revoke", h)
}
