package authority_test

import (
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/signet-auth/signet/authority"
	"github.com/signet-auth/signet/clients"
)

// tokenClients registers the clients the token endpoint tests use and
// returns their secrets.
func tokenClients(t *testing.T, e *env) map[string]string {
	t.Helper()
	sec := map[string]string{}
	base := clients.Client{Scopes: []string{"read", "write"}, DefaultScopes: []string{"read"}, Audiences: []string{"api1", "api2", "https://api3.example.com"}}
	for _, id := range []string{"svc", "other", "disabled", "nogrant"} {
		c := base
		c.ID = id
		sec[id] = e.createClient(c)
	}
	c := base
	c.ID, c.AuthMethods = "basic-only", []string{clients.AuthSecretBasic}
	sec[c.ID] = e.createClient(c)
	c.ID, c.AuthMethods = "post-only", []string{clients.AuthSecretPost}
	sec[c.ID] = e.createClient(c)
	disabled, none := true, []string{}
	if _, err := e.srv.Clients().Update(t.Context(), "disabled", clients.Patch{Disabled: &disabled}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.srv.Clients().Update(t.Context(), "nogrant", clients.Patch{GrantTypes: &none}); err != nil {
		t.Fatal(err)
	}
	return sec
}

func basic(id, secret string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(id)+":"+url.QueryEscape(secret)))
}

// TestTokenEndpoint_BadRequests: every way a token request can be wrong,
// over HTTP, with the exact status and RFC 6749 §5.2 error code.
func TestTokenEndpoint_BadRequests(t *testing.T) {
	e := newEnv(t, envOptions{algs: []string{"ES256"}})
	sec := tokenClients(t, e)
	const form = "application/x-www-form-urlencoded"
	cc := "grant_type=client_credentials"
	post := func(id string) string { return cc + "&client_id=" + id + "&client_secret=" + sec[id] }

	tests := []struct {
		name        string
		method      string
		query       string
		ctype       string
		body        string
		auth        string
		status      int
		code        string // "" for success
		wwwAuthBasi bool
	}{
		{name: "GET", method: http.MethodGet, auth: basic("svc", sec["svc"]), status: 405, code: "invalid_request"},
		{name: "PUT", method: http.MethodPut, ctype: form, body: cc, auth: basic("svc", sec["svc"]), status: 405, code: "invalid_request"},
		{name: "no content type", body: cc, auth: basic("svc", sec["svc"]), status: 400, code: "invalid_request"},
		{name: "json body", ctype: "application/json", body: `{"grant_type":"client_credentials"}`, auth: basic("svc", sec["svc"]), status: 400, code: "invalid_request"},
		{name: "multipart body", ctype: "multipart/form-data; boundary=x", body: "--x\r\nContent-Disposition: form-data; name=\"grant_type\"\r\n\r\nclient_credentials\r\n--x--\r\n", auth: basic("svc", sec["svc"]), status: 400, code: "invalid_request"},
		{name: "text/plain body", ctype: "text/plain", body: cc, auth: basic("svc", sec["svc"]), status: 400, code: "invalid_request"},
		{name: "bad content type syntax", ctype: "application/x-www-form-urlencoded; =", body: cc, auth: basic("svc", sec["svc"]), status: 400, code: "invalid_request"},
		{name: "oversized body", ctype: form, body: cc + "&pad=" + strings.Repeat("a", 70<<10), auth: basic("svc", sec["svc"]), status: 400, code: "invalid_request"},
		{name: "credentials in query", query: "client_id=svc&client_secret=" + sec["svc"], ctype: form, body: cc, status: 400, code: "invalid_request"},
		{name: "malformed form", ctype: form, body: cc + "&scope=%zz", auth: basic("svc", sec["svc"]), status: 400, code: "invalid_request"},
		{name: "semicolon separator", ctype: form, body: cc + ";scope=read", auth: basic("svc", sec["svc"]), status: 400, code: "invalid_request"},
		{name: "missing grant_type", ctype: form, body: "scope=read", auth: basic("svc", sec["svc"]), status: 400, code: "invalid_request"},
		{name: "empty grant_type", ctype: form, body: "grant_type=", auth: basic("svc", sec["svc"]), status: 400, code: "invalid_request"},
		{name: "repeated grant_type", ctype: form, body: cc + "&grant_type=client_credentials", auth: basic("svc", sec["svc"]), status: 400, code: "invalid_request"},
		{name: "repeated scope", ctype: form, body: cc + "&scope=read&scope=write", auth: basic("svc", sec["svc"]), status: 400, code: "invalid_request"},
		{name: "repeated client_id", ctype: form, body: post("svc") + "&client_id=svc", status: 400, code: "invalid_request"},
		{name: "repeated unknown parameter", ctype: form, body: cc + "&x=1&x=2", auth: basic("svc", sec["svc"]), status: 400, code: "invalid_request"},
		{name: "repeated audience", ctype: form, body: cc + "&audience=api1&audience=api2", auth: basic("svc", sec["svc"]), status: 400, code: "invalid_request"},
		{name: "password grant not allowed", ctype: form, body: "grant_type=password&username=a&password=b", auth: basic("svc", sec["svc"]), status: 400, code: "unauthorized_client"},
		{name: "unknown grant", ctype: form, body: "grant_type=implicit", auth: basic("svc", sec["svc"]), status: 400, code: "unsupported_grant_type"},
		{name: "authorization_code grant for a client without it", ctype: form, body: "grant_type=authorization_code&code=x", auth: basic("svc", sec["svc"]), status: 400, code: "unauthorized_client"},
		{name: "no client authentication", ctype: form, body: cc, status: 401, code: "invalid_client", wwwAuthBasi: true},
		{name: "client_id without secret", ctype: form, body: cc + "&client_id=svc", status: 401, code: "invalid_client"},
		{name: "unknown client basic", ctype: form, body: cc, auth: basic("nobody", sec["svc"]), status: 401, code: "invalid_client", wwwAuthBasi: true},
		{name: "unknown client post", ctype: form, body: cc + "&client_id=nobody&client_secret=x", status: 401, code: "invalid_client"},
		{name: "wrong secret basic", ctype: form, body: cc, auth: basic("svc", sec["svc"]+"x"), status: 401, code: "invalid_client", wwwAuthBasi: true},
		{name: "wrong secret post", ctype: form, body: cc + "&client_id=svc&client_secret=wrong", status: 401, code: "invalid_client"},
		{name: "empty secret basic", ctype: form, body: cc, auth: basic("svc", ""), status: 401, code: "invalid_client", wwwAuthBasi: true},
		{name: "secret of another client", ctype: form, body: cc, auth: basic("svc", sec["other"]), status: 401, code: "invalid_client", wwwAuthBasi: true},
		{name: "basic and post together", ctype: form, body: post("svc"), auth: basic("svc", sec["svc"]), status: 400, code: "invalid_request"},
		{name: "basic id differs from body", ctype: form, body: cc + "&client_id=other", auth: basic("svc", sec["svc"]), status: 400, code: "invalid_request"},
		{name: "bearer scheme", ctype: form, body: cc, auth: "Bearer " + sec["svc"], status: 401, code: "invalid_client", wwwAuthBasi: true},
		{name: "basic not base64", ctype: form, body: cc, auth: "Basic !!!", status: 401, code: "invalid_client", wwwAuthBasi: true},
		{name: "basic without colon", ctype: form, body: cc, auth: "Basic " + base64.StdEncoding.EncodeToString([]byte("svc")), status: 401, code: "invalid_client", wwwAuthBasi: true},
		{name: "basic id badly form-encoded", ctype: form, body: cc, auth: "Basic " + base64.StdEncoding.EncodeToString([]byte("sv%zz:"+sec["svc"])), status: 401, code: "invalid_client", wwwAuthBasi: true},
		{name: "disabled client", ctype: form, body: cc, auth: basic("disabled", sec["disabled"]), status: 401, code: "invalid_client", wwwAuthBasi: true},
		{name: "basic-only client posts", ctype: form, body: post("basic-only"), status: 401, code: "invalid_client"},
		{name: "post-only client uses basic", ctype: form, body: cc, auth: basic("post-only", sec["post-only"]), status: 401, code: "invalid_client", wwwAuthBasi: true},
		{name: "client without the grant", ctype: form, body: cc, auth: basic("nogrant", sec["nogrant"]), status: 400, code: "unauthorized_client"},
		{name: "scope escalation to admin", ctype: form, body: cc + "&scope=read+signet:admin", auth: basic("svc", sec["svc"]), status: 400, code: "invalid_scope"},
		{name: "scope not registered", ctype: form, body: cc + "&scope=delete", auth: basic("svc", sec["svc"]), status: 400, code: "invalid_scope"},
		{name: "malformed scope", ctype: form, body: cc + "&scope=%22read%22", auth: basic("svc", sec["svc"]), status: 400, code: "invalid_scope"},
		{name: "audience escalation", ctype: form, body: cc + "&audience=signet-admin", auth: basic("svc", sec["svc"]), status: 400, code: "invalid_target"},
		{name: "resource escalation", ctype: form, body: cc + "&resource=api1&resource=https://evil.example", auth: basic("svc", sec["svc"]), status: 400, code: "invalid_target"},
		{name: "audience and resource", ctype: form, body: cc + "&audience=api1&resource=https://api3.example.com", auth: basic("svc", sec["svc"]), status: 400, code: "invalid_request"},
		// RFC 6749 §3.2: unknown parameters are ignored, empty ones are absent.
		{name: "unknown parameter ignored", ctype: form, body: cc + "&foo=bar", auth: basic("svc", sec["svc"]), status: 200},
		{name: "empty scope is omitted", ctype: form, body: cc + "&scope=", auth: basic("svc", sec["svc"]), status: 200},
		{name: "charset parameter accepted", ctype: form + "; charset=utf-8", body: cc, auth: basic("svc", sec["svc"]), status: 200},
		{name: "percent-encoded basic id", ctype: form, body: cc, auth: "Basic " + base64.StdEncoding.EncodeToString([]byte("%73vc:"+sec["svc"])), status: 200},
		{name: "post client", ctype: form, body: post("post-only") + "&resource=https://api3.example.com", status: 200},
		// RFC 8707 §2: a resource is an absolute URI without a fragment,
		// even when a client's audience has the same (logical) name.
		{name: "resource not a URI", ctype: form, body: cc + "&resource=api2", auth: basic("svc", sec["svc"]), status: 400, code: "invalid_target"},
		{name: "resource relative URI", ctype: form, body: cc + "&resource=/api3", auth: basic("svc", sec["svc"]), status: 400, code: "invalid_target"},
		{name: "resource with fragment", ctype: form, body: cc + "&resource=https://api3.example.com%23x", auth: basic("svc", sec["svc"]), status: 400, code: "invalid_target"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			method := tc.method
			if method == "" {
				method = http.MethodPost
			}
			u := e.issuer + "/oauth2/token"
			if tc.query != "" {
				u += "?" + tc.query
			}
			req, err := http.NewRequest(method, u, strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			if tc.ctype != "" {
				req.Header.Set("Content-Type", tc.ctype)
			}
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			status, hdr, body := e.do(req)
			got, _ := body["error"].(string)
			if status != tc.status || got != tc.code {
				t.Fatalf("status, error = %d %q (%v), want %d %q", status, got, body["error_description"], tc.status, tc.code)
			}
			if hdr.Get("Content-Type") != "application/json" || hdr.Get("Cache-Control") != "no-store" || hdr.Get("Pragma") != "no-cache" {
				t.Errorf("headers = %v, want JSON, no-store, no-cache", hdr)
			}
			if tc.code == "" {
				if body["access_token"] == nil || body["token_type"] != "Bearer" || body["refresh_token"] != nil {
					t.Errorf("body = %v, want an access token and no refresh token", body)
				}
				return
			}
			if d, _ := body["error_description"].(string); d == "" {
				t.Errorf("no error_description")
			}
			if wa := hdr.Get("WWW-Authenticate"); (wa == `Basic realm="signet"`) != tc.wwwAuthBasi {
				t.Errorf("WWW-Authenticate = %q, want Basic: %v", wa, tc.wwwAuthBasi)
			}
			if status == http.StatusMethodNotAllowed && hdr.Get("Allow") != "POST" {
				t.Errorf("Allow = %q, want POST", hdr.Get("Allow"))
			}
		})
	}
}

// TestTokenEndpoint_SameAnswerForUnknownAndWrong: a stranger learns
// nothing from the difference between an unknown client and a bad secret.
func TestTokenEndpoint_SameAnswerForUnknownAndWrong(t *testing.T) {
	e := newEnv(t, envOptions{algs: []string{"ES256"}})
	sec := tokenClients(t, e)
	form := url.Values{"grant_type": {"client_credentials"}}
	_, _, unknown := e.tokenRequest(form, "nobody", sec["svc"])
	_, _, wrong := e.tokenRequest(form, "svc", "x")
	if unknown["error_description"] != wrong["error_description"] {
		t.Errorf("unknown client %v, wrong secret %v: want the same body", unknown, wrong)
	}
}

// TestTokenEndpoint_ScopeAudienceDefaults: no scope means the default
// scopes, no audience the default audience; several resources give an
// audience array.
func TestTokenEndpoint_ScopeAudienceDefaults(t *testing.T) {
	e := newEnv(t, envOptions{algs: []string{"ES256"}})
	sec := tokenClients(t, e)
	tests := []struct {
		form      url.Values
		wantScope string
		wantAud   string
	}{
		{url.Values{}, "read", `"api1"`},
		{url.Values{"scope": {"write read write"}}, "write read", `"api1"`},
		{url.Values{"audience": {"api2"}}, "read", `"api2"`},
		{url.Values{"resource": {"https://api3.example.com"}}, "read", `"https://api3.example.com"`},
		{url.Values{"resource": {"https://api3.example.com", "https://api3.example.com"}}, "read", `"https://api3.example.com"`},
	}
	for _, tc := range tests {
		tok := e.token("svc", sec["svc"], tc.form)
		claims := decodePayload(t, tok)
		if claims["scope"] != tc.wantScope || string(claims["aud_raw"].(string)) != tc.wantAud {
			t.Errorf("form %v: scope %v aud %v, want %q %s", tc.form, claims["scope"], claims["aud_raw"], tc.wantScope, tc.wantAud)
		}
	}
}

// TestTokenEndpoint_SecretRotation: after a rotation with overlap both
// secrets work until the overlap ends; without overlap the old one stops.
func TestTokenEndpoint_SecretRotation(t *testing.T) {
	e := newEnv(t, envOptions{algs: []string{"ES256"}})
	sec := tokenClients(t, e)
	form := url.Values{"grant_type": {"client_credentials"}}
	_, next, err := e.srv.Clients().RotateSecret(t.Context(), "svc", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{sec["svc"], next} {
		if status, _, body := e.tokenRequest(form, "svc", s); status != http.StatusOK {
			t.Fatalf("during overlap = %d %v, want 200", status, body)
		}
	}
	e.clock.Add(time.Hour + time.Second)
	if status, _, _ := e.tokenRequest(form, "svc", sec["svc"]); status != http.StatusUnauthorized {
		t.Errorf("old secret after overlap = %d, want 401", status)
	}
	_, last, err := e.srv.Clients().RotateSecret(t.Context(), "svc", 0)
	if err != nil {
		t.Fatal(err)
	}
	if status, _, _ := e.tokenRequest(form, "svc", next); status != http.StatusUnauthorized {
		t.Errorf("replaced secret without overlap = %d, want 401", status)
	}
	if status, _, _ := e.tokenRequest(form, "svc", last); status != http.StatusOK {
		t.Errorf("new secret = %d, want 200", status)
	}
}

// TestTokenEndpoint_RateLimit: failed authentications are limited per
// client (wrong secrets only, so that nobody can lock a client out) and per
// IP, answered 429 with Retry-After, and the limit lifts when the window ends.
func TestTokenEndpoint_RateLimit(t *testing.T) {
	e := newEnv(t, envOptions{algs: []string{"ES256"}, rateLimit: authority.RateLimit{Window: time.Minute, PerClient: 3, PerIP: 6}})
	sec := tokenClients(t, e)
	form := url.Values{"grant_type": {"client_credentials"}}
	for i := range 3 {
		if status, _, _ := e.tokenRequest(form, "svc", "wrong"); status != http.StatusUnauthorized {
			t.Fatalf("failure %d = %d, want 401", i, status)
		}
	}
	status, hdr, body := e.tokenRequest(form, "svc", "wrong again")
	if status != http.StatusTooManyRequests || body["error"] != "temporarily_unavailable" || hdr.Get("Retry-After") != "60" {
		t.Fatalf("a wrong secret after 3 failures = %d %v Retry-After %q, want 429 temporarily_unavailable 60", status, body, hdr.Get("Retry-After"))
	}
	// The client itself, holding its secret, is not locked out by them.
	if status, _, body := e.tokenRequest(form, "svc", sec["svc"]); status != http.StatusOK {
		t.Fatalf("the right secret after 3 failures = %d %v, want 200: failures must not lock a client out", status, body)
	}
	// Other clients still work until the IP limit: 3 more failures.
	if status, _, _ := e.tokenRequest(form, "other", sec["other"]); status != http.StatusOK {
		t.Fatalf("other client = %d, want 200", status)
	}
	for i := range 3 {
		e.tokenRequest(form, "nobody"+string(rune('a'+i)), "x")
	}
	if status, _, _ := e.tokenRequest(form, "other", sec["other"]); status != http.StatusTooManyRequests {
		t.Fatalf("after 6 failures from one IP = %d, want 429", status)
	}
	e.clock.Add(time.Minute)
	if status, _, body := e.tokenRequest(form, "svc", sec["svc"]); status != http.StatusOK {
		t.Fatalf("after the window = %d %v, want 200", status, body)
	}
}

// countingMetrics records token endpoint events.
type countingMetrics struct {
	mu       sync.Mutex
	issued   []string
	failed   []string
	observed int
}

func (m *countingMetrics) Issued(grant, alg, clientID string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.issued = append(m.issued, grant+" "+alg+" "+clientID)
}

func (m *countingMetrics) Failed(code string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.failed = append(m.failed, code)
}

func (m *countingMetrics) Observe(time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.observed++
}

// TestTokenEndpoint_Metrics: issued tokens by grant, alg and client;
// failures by error code; a latency for every request.
func TestTokenEndpoint_Metrics(t *testing.T) {
	m := &countingMetrics{}
	e := newEnv(t, envOptions{algs: []string{"EdDSA"}, metrics: m})
	sec := tokenClients(t, e)
	form := url.Values{"grant_type": {"client_credentials"}}
	e.tokenRequest(form, "svc", sec["svc"])
	e.tokenRequest(form, "svc", "wrong")
	e.tokenRequest(url.Values{"grant_type": {"implicit"}}, "svc", sec["svc"])
	m.mu.Lock()
	defer m.mu.Unlock()
	if got := strings.Join(m.issued, ","); got != "client_credentials EdDSA svc" {
		t.Errorf("issued = %s", got)
	}
	if got := strings.Join(m.failed, ","); got != "invalid_client,unsupported_grant_type" || m.observed != 3 {
		t.Errorf("failed = %s, observed %d; want invalid_client,unsupported_grant_type and 3", got, m.observed)
	}
}
