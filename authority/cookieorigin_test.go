package authority_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/signet-auth/signet/clients"
)

// TestCookieMode_Origin (issue 16, item 11): a refresh or a revocation
// that uses the refresh token cookie is refused unless it comes from one of
// the client's own origins (those of its redirect URIs): a page of a
// sibling subdomain, which SameSite=Strict does not stop, can neither
// rotate nor revoke an SPA's cookie. A request with the token in the body
// is not concerned, and a request from no browser (no Origin, no
// Sec-Fetch-Site) is served.
func TestCookieMode_Origin(t *testing.T) {
	e := newEnv(t, envOptions{})
	sec := e.userClient("spa", func(c *clients.Client) {
		c.RefreshTokenCookie = true
		c.GrantTypes = append(c.GrantTypes, clients.GrantAuthorizationCode)
		c.RedirectURIs = []string{"https://app.example/cb", "http://127.0.0.1:8081/cb"}
	})
	e.createUser("alice")
	rt := e.cookieLogin("spa", sec, "alice")

	send := func(path string, form url.Values, headers map[string]string) (int, map[string]any, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, e.issuer+path, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth("spa", sec)
		req.AddCookie(&http.Cookie{Name: "signet_refresh_token", Value: rt})
		for k, v := range headers {
			req.Header.Set(k, v)
		}
		status, h, body := e.do(req)
		next := ""
		for _, c := range (&http.Response{Header: h}).Cookies() {
			if c.Name == "signet_refresh_token" {
				next = c.Value
			}
		}
		return status, body, next
	}
	refresh := url.Values{"grant_type": {"refresh_token"}}
	for _, path := range []string{"/oauth2/token", "/oauth2/revoke"} {
		form := refresh
		if path == "/oauth2/revoke" {
			form = url.Values{}
		}
		for name, h := range map[string]map[string]string{
			"sibling subdomain":       {"Origin": "https://evil.app.example"},
			"same host, other scheme": {"Origin": "http://app.example"},
			"other port":              {"Origin": "https://app.example:8443"},
			"opaque origin":           {"Origin": "null"},
			"browser without Origin":  {"Sec-Fetch-Site": "same-site"},
			"cross-site no Origin":    {"Sec-Fetch-Site": "cross-site"},
		} {
			if s, b, _ := send(path, form, h); s != http.StatusBadRequest || b["error"] != "invalid_request" {
				t.Errorf("%s %s = %d %v, want 400 invalid_request", path, name, s, b)
			}
		}
	}
	// The cookie still works from the client's own origins, and from no browser.
	for _, h := range []map[string]string{
		{"Origin": "https://app.example", "Sec-Fetch-Site": "cross-site"},
		{"Origin": "http://127.0.0.1:8081"},
		{},
	} {
		s, b, next := send("/oauth2/token", refresh, h)
		if s != http.StatusOK || next == "" {
			t.Fatalf("refresh with %v = %d %v, want 200 and a new cookie", h, s, b)
		}
		rt = next
	}
	// The token in the body is not the cookie: no Origin rule applies.
	if s, b, _ := send("/oauth2/revoke", url.Values{"token": {"not-a-token"}}, map[string]string{"Origin": "https://evil.app.example"}); s != http.StatusOK {
		t.Errorf("revoke of a body token from another origin = %d %v, want 200 (RFC 7009)", s, b)
	}
	if s, b, _ := send("/oauth2/revoke", url.Values{}, map[string]string{"Origin": "https://app.example"}); s != http.StatusOK {
		t.Fatalf("revoke from the client's origin = %d %v", s, b)
	}
	if s, _, _ := send("/oauth2/token", refresh, nil); s != http.StatusBadRequest {
		t.Errorf("refresh after the revocation = %d, want 400", s)
	}
}
