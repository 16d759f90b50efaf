package registration_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/signet-auth/signet/clients"
	"github.com/signet-auth/signet/internal/signettest"
	"github.com/signet-auth/signet/outbound"
	"github.com/signet-auth/signet/registration"
)

// TestAttackRegistrationFlood: one address past its limit gets 429 with
// Retry-After and stores nothing; the token endpoint keeps answering (from
// the same address too); the cap on dynamic clients holds for every
// address together.
func TestAttackRegistrationFlood(t *testing.T) {
	p := defaultPolicy()
	p.PerIP, p.Window, p.MaxClients = 5, time.Hour, 1000
	e := newEnv(t, envOptions{policy: p})
	secret := e.confidential("svc")
	var mu sync.Mutex
	codes := map[int]int{}
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 10 {
				a := e.register(publicClient())
				mu.Lock()
				codes[a.status]++
				mu.Unlock()
				if a.status == http.StatusTooManyRequests && a.header.Get("Retry-After") == "" {
					t.Error("429 without Retry-After")
				}
			}
		}()
	}
	// Meanwhile the token endpoint answers as usual.
	for range 20 {
		if a := e.token(url.Values{"grant_type": {"client_credentials"}}, "svc", secret); a.status != http.StatusOK {
			t.Fatalf("token during the flood = %d %s", a.status, a.raw)
		}
	}
	wg.Wait()
	if codes[http.StatusCreated] != 5 || codes[http.StatusTooManyRequests] != 35 {
		t.Fatalf("answers = %v, want 5 created and 35 refused", codes)
	}
	if n := dynamicCount(t, e); n != 5 {
		t.Fatalf("%d dynamic clients stored, want 5", n)
	}

	// The cap, whatever the address.
	p = defaultPolicy()
	p.MaxClients = 3
	e = newEnv(t, envOptions{policy: p})
	for i := range 5 {
		a := e.register(publicClient())
		want := http.StatusCreated
		if i >= 3 {
			want = http.StatusForbidden
		}
		if a.status != want {
			t.Fatalf("registration %d = %d %s", i, a.status, a.raw)
		}
	}
	if n := dynamicCount(t, e); n != 3 {
		t.Fatalf("%d dynamic clients stored, want 3", n)
	}
}

func dynamicCount(t *testing.T, e *env) int {
	t.Helper()
	list, err := e.srv.Clients().List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, cl := range list {
		if cl.Dynamic {
			n++
		}
	}
	return n
}

// TestAttackRegistrationMetadata: redirect URIs that are not https or
// loopback, and a dynamic client asking for what it may never have.
func TestAttackRegistrationMetadata(t *testing.T) {
	p := defaultPolicy()
	p.PrivateUseSchemes = false
	e := newEnv(t, envOptions{policy: p})
	for _, tc := range []struct {
		name, code string
		mod        func(md map[string]any)
	}{
		{"http to a public host", "invalid_redirect_uri", func(md map[string]any) { md["redirect_uris"] = []string{"http://evil.example/cb"} }},
		{"http to a private address", "invalid_redirect_uri", func(md map[string]any) { md["redirect_uris"] = []string{"http://10.0.0.1/cb"} }},
		{"javascript", "invalid_redirect_uri", func(md map[string]any) { md["redirect_uris"] = []string{"javascript:alert(1)"} }},
		{"data", "invalid_redirect_uri", func(md map[string]any) { md["redirect_uris"] = []string{"data:text/html,hi"} }},
		{"fragment", "invalid_redirect_uri", func(md map[string]any) { md["redirect_uris"] = []string{"https://app.example/cb#x"} }},
		{"user info", "invalid_redirect_uri", func(md map[string]any) { md["redirect_uris"] = []string{"https://user@app.example/cb"} }},
		{"loopback look-alike", "invalid_redirect_uri", func(md map[string]any) { md["redirect_uris"] = []string{"http://127.0.0.1.evil.example/cb"} }},
		{"private-use scheme when not allowed", "invalid_redirect_uri", func(md map[string]any) { md["redirect_uris"] = []string{"com.example.app:/cb"} }},
		{"no redirect URI", "invalid_redirect_uri", func(md map[string]any) { delete(md, "redirect_uris") }},
		{"client_credentials", "invalid_client_metadata", func(md map[string]any) { md["grant_types"] = []string{"client_credentials"} }},
		{"password", "invalid_client_metadata", func(md map[string]any) { md["grant_types"] = []string{"authorization_code", "password"} }},
		{"token exchange", "invalid_client_metadata", func(md map[string]any) { md["grant_types"] = []string{clients.GrantTokenExchange} }},
		{"implicit", "invalid_client_metadata", func(md map[string]any) { md["response_types"] = []string{"token"} }},
		{"client secret when not allowed", "invalid_client_metadata", func(md map[string]any) { md["token_endpoint_auth_method"] = "client_secret_basic" }},
		{"private_key_jwt without keys", "invalid_client_metadata", func(md map[string]any) { md["token_endpoint_auth_method"] = "private_key_jwt" }},
		{"name on two lines", "invalid_client_metadata", func(md map[string]any) { md["client_name"] = "Google\nDrive" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			md := publicClient()
			tc.mod(md)
			a := e.register(md)
			if a.status != http.StatusBadRequest || a.str("error") != tc.code {
				t.Fatalf("= %d %s, want 400 %s", a.status, a.raw, tc.code)
			}
		})
	}
	if n := dynamicCount(t, e); n != 0 {
		t.Fatalf("%d clients stored", n)
	}

	// The admin scope: the registration is accepted, the scope not granted,
	// and the authorization endpoint refuses it.
	md := publicClient()
	md["scope"] = "signet:admin mcp:tools"
	a := e.register(md)
	if a.status != http.StatusCreated || strings.Contains(a.str("scope"), "signet:") {
		t.Fatalf("register with signet:admin = %d %s", a.status, a.raw)
	}
	id := a.str("client_id")
	_, challenge := signettest.PKCE()
	pg := e.browser().Authorize(url.Values{"response_type": {"code"}, "client_id": {id}, "redirect_uri": {"http://127.0.0.1:5000/callback"},
		"scope": {"signet:admin"}, "code_challenge": {challenge}, "code_challenge_method": {"S256"}})
	if pg.Location == nil || pg.Location.Query().Get("error") != "invalid_scope" {
		t.Fatalf("authorize signet:admin: %d %v", pg.Status, pg.Location)
	}
	// A public dynamic client must use PKCE.
	pg = e.browser().Authorize(url.Values{"response_type": {"code"}, "client_id": {id}, "redirect_uri": {"http://127.0.0.1:5000/callback"}, "scope": {"mcp:tools"}})
	if pg.Location == nil || pg.Location.Query().Get("error") != "invalid_request" {
		t.Fatalf("authorize without PKCE: %d %v", pg.Status, pg.Location)
	}
	// Whoever edits it later (the admin API's patch), a dynamic client is
	// never first-party, never client_credentials, never signet:*.
	ctx := context.Background()
	yes := true
	for name, patch := range map[string]clients.Patch{
		"first_party":        {FirstParty: &yes},
		"client_credentials": {GrantTypes: &[]string{clients.GrantClientCredentials}},
		"signet:admin":       {Scopes: &[]string{"signet:admin"}},
	} {
		if _, err := e.srv.Clients().Update(ctx, id, patch); err == nil {
			t.Errorf("patch %s accepted", name)
		}
	}
	// The token endpoint: client_credentials for a dynamic client.
	if a := e.token(url.Values{"grant_type": {"client_credentials"}, "client_id": {id}}, "", ""); a.status == http.StatusOK {
		t.Fatalf("client_credentials for a dynamic client = %s", a.raw)
	}
}

// TestAttackRegistrationTokenOtherClient: a registration access token
// opens its own client's configuration only.
func TestAttackRegistrationTokenOtherClient(t *testing.T) {
	e := newEnv(t, envOptions{})
	a, b := e.register(publicClient()), e.register(publicClient())
	uriB := b.str("registration_client_uri")
	tokA := a.str("registration_access_token")
	if r := e.call(http.MethodGet, uriB, tokA, nil); r.status != http.StatusUnauthorized || r.str("error") != "invalid_token" {
		t.Fatalf("read B with A's token = %d %s", r.status, r.raw)
	}
	md := publicClient()
	md["client_id"] = b.str("client_id")
	md["redirect_uris"] = []string{"https://evil.example/cb"}
	if r := e.call(http.MethodPut, uriB, tokA, md); r.status != http.StatusUnauthorized {
		t.Fatalf("update B with A's token = %d %s", r.status, r.raw)
	}
	if r := e.call(http.MethodDelete, uriB, tokA, nil); r.status != http.StatusUnauthorized {
		t.Fatalf("delete B with A's token = %d %s", r.status, r.raw)
	}
	if r := e.call(http.MethodGet, uriB, "", nil); r.status != http.StatusUnauthorized {
		t.Fatalf("no token = %d %s", r.status, r.raw)
	}
	// An operator's client has no registration access token at all.
	e.confidential("svc")
	if r := e.call(http.MethodGet, "/oauth2/register/svc", tokA, nil); r.status != http.StatusUnauthorized {
		t.Fatalf("operator client = %d %s", r.status, r.raw)
	}
	// The body may not move the update to another client either.
	md["client_id"] = b.str("client_id")
	if r := e.call(http.MethodPut, a.str("registration_client_uri"), tokA, md); r.status != http.StatusBadRequest {
		t.Fatalf("update naming B through A = %d %s", r.status, r.raw)
	}
	if cl, _ := e.srv.Clients().Get(context.Background(), b.str("client_id")); cl.RedirectURIs[0] != "http://127.0.0.1/callback" {
		t.Fatalf("B changed: %v", cl.RedirectURIs)
	}
	if r := e.call(http.MethodGet, uriB, b.str("registration_access_token"), nil); r.status != http.StatusOK {
		t.Fatalf("B's own token = %d %s", r.status, r.raw)
	}
	// Guessing tokens: past the address's limit, 429 whatever is sent.
	p := defaultPolicy()
	p.PerIP = 3
	g := newEnv(t, envOptions{policy: p})
	c := g.register(publicClient())
	for i := range 3 {
		if r := g.call(http.MethodGet, c.str("registration_client_uri"), "guess", nil); r.status != http.StatusUnauthorized {
			t.Fatalf("guess %d = %d %s", i, r.status, r.raw)
		}
	}
	if r := g.call(http.MethodGet, c.str("registration_client_uri"), "guess", nil); r.status != http.StatusTooManyRequests || r.header.Get("Retry-After") == "" {
		t.Fatalf("guess past the limit = %d %s", r.status, r.raw)
	}
}

// TestAttackMetadataDocuments: every metadata document that must not make
// a client is an unknown client at the authorization and token endpoints.
func TestAttackMetadataDocuments(t *testing.T) {
	good := func() map[string]any {
		return map[string]any{"client_name": "Doc Tool", "redirect_uris": []string{"http://127.0.0.1:40001/cb"}, "token_endpoint_auth_method": "none"}
	}
	e := newEnv(t, envOptions{fetcher: func(o *outbound.Options) { o.Timeout, o.MaxBody = 300*time.Millisecond, 4096 }})
	release := make(chan struct{})
	defer close(release)
	rows := map[string]string{
		"redirects": e.serveDoc("/redirect.json", func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, e.docs.URL+"/good.json", http.StatusFound)
		}),
		"too large": e.serveDoc("/large.json", func(w http.ResponseWriter, r *http.Request) {
			_, _ = w.Write([]byte(`{"client_name":"` + strings.Repeat("a", 10000) + `"}`))
		}),
		"too slow": e.serveDoc("/slow.json", func(w http.ResponseWriter, r *http.Request) {
			select { // answers only after the fetcher has given up
			case <-r.Context().Done():
			case <-release:
			}
		}),
		"names another client_id": e.serveJSON("/other.json", map[string]any{"client_id": e.docs.URL + "/good.json",
			"redirect_uris": []string{"http://127.0.0.1:40001/cb"}, "token_endpoint_auth_method": "none"}),
		"client secret":          e.serveJSON("/secret.json", map[string]any{"redirect_uris": []string{"http://127.0.0.1:40001/cb"}, "token_endpoint_auth_method": "client_secret_basic"}),
		"inline keys":            e.serveJSON("/jwks.json", map[string]any{"redirect_uris": []string{"http://127.0.0.1:40001/cb"}, "token_endpoint_auth_method": "private_key_jwt", "jwks": map[string]any{"keys": []any{}}}),
		"client_credentials":     e.serveJSON("/cc.json", map[string]any{"grant_types": []string{"client_credentials"}, "token_endpoint_auth_method": "none"}),
		"not https redirect":     e.serveJSON("/evil.json", map[string]any{"redirect_uris": []string{"http://evil.example/cb"}, "token_endpoint_auth_method": "none"}),
		"not json":               e.serveDoc("/html.json", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("<html>")) }),
		"not found":              e.docs.URL + "/missing.json",
		"http, not https":        "http://127.0.0.1:1/client.json",
		"no path":                e.docs.URL + "/",
		"dot segments":           e.docs.URL + "/a/../good.json",
		"query":                  e.docs.URL + "/good.json?x=1",
		"credentials in the URL": "https://user:pw@" + strings.TrimPrefix(e.docs.URL, "https://") + "/good.json",
	}
	e.serveJSON("/good.json", good())
	for name, id := range rows {
		t.Run(name, func(t *testing.T) {
			assertUnknown(t, e, id)
		})
	}
	// The good document works, so the rows above failed for their reason.
	if _, err := e.srv.Clients().Lookup(context.Background(), e.docs.URL+"/good.json"); err != nil {
		t.Fatalf("good document: %v", err)
	}

	// Private addresses: a fetcher that does not allow loopback refuses a
	// literal loopback address and a name that resolves to one.
	priv := newEnv(t, envOptions{fetcher: func(o *outbound.Options) { o.AllowLoopback = false }})
	url1 := priv.serveJSON("/good.json", good())
	port := url1[strings.LastIndex(url1, ":")+1 : strings.LastIndex(url1, "/")]
	for _, id := range []string{url1, "https://localhost:" + port + "/good.json"} {
		assertUnknown(t, priv, id)
	}
	if n := priv.fetchCount("/good.json"); n != 0 {
		t.Fatalf("the private address was fetched %d times", n)
	}

	// Allow and deny lists of hosts.
	p := defaultPolicy()
	p.DenyHosts = []string{"127.0.0.1"}
	deny := newEnv(t, envOptions{policy: p})
	assertUnknown(t, deny, deny.serveJSON("/good.json", good()))
	p = defaultPolicy()
	p.AllowHosts = []string{"*.example.com"}
	allow := newEnv(t, envOptions{policy: p})
	assertUnknown(t, allow, allow.serveJSON("/good.json", good()))
	if n := deny.fetchCount("/good.json") + allow.fetchCount("/good.json"); n != 0 {
		t.Fatalf("a host the policy refuses was fetched %d times", n)
	}

	// Metadata documents off: the URL is no client.
	p = defaultPolicy()
	p.MetadataDocuments = false
	off := newEnv(t, envOptions{policy: p})
	assertUnknown(t, off, off.serveJSON("/good.json", good()))
}

// assertUnknown checks that id is no client: the registry, the
// authorization endpoint (a page, no redirect) and the token endpoint.
func assertUnknown(t *testing.T, e *env, id string) {
	t.Helper()
	if _, err := e.srv.Clients().Lookup(context.Background(), id); err == nil {
		t.Fatalf("%s resolved to a client", id)
	}
	_, challenge := signettest.PKCE()
	p := e.browser().Authorize(url.Values{"response_type": {"code"}, "client_id": {id}, "redirect_uri": {"http://127.0.0.1:40001/cb"},
		"code_challenge": {challenge}, "code_challenge_method": {"S256"}})
	if p.Location != nil || p.Status != http.StatusBadRequest {
		t.Fatalf("authorize %s: %d %v", id, p.Status, p.Location)
	}
	a := e.token(url.Values{"grant_type": {"authorization_code"}, "code": {"x"}, "code_verifier": {strings.Repeat("v", 43)}, "client_id": {id}}, "", "")
	if a.status != http.StatusUnauthorized || a.str("error") != "invalid_client" {
		t.Fatalf("token %s = %d %s", id, a.status, a.raw)
	}
}

var _ = registration.Path
