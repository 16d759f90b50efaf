package authority_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/signet-auth/signet/clients"
)

// TestCORS_EveryBrowserEndpoint: every endpoint a page calls itself
// answers the preflight a browser sends before a request with a header
// beyond the safelisted ones (DPoP, Authorization, an MCP client's
// MCP-Protocol-Version), and its answers are readable by the origins that
// may read them. Before, OPTIONS at the token and userinfo endpoints was
// answered 405, so a browser client with DPoP or a bearer header could not
// call them at all, and a use_dpop_nonce answer was unreadable because the
// origin was allowed only after the DPoP check. The endpoints for servers
// and devices (introspection, device authorization) allow no origin.
func TestCORS_EveryBrowserEndpoint(t *testing.T) {
	e := newEnv(t, envOptions{})
	const spaOrigin = "http://127.0.0.1:8081"
	e.userClient("spa", func(c *clients.Client) {
		c.Public = true
		c.GrantTypes = []string{clients.GrantAuthorizationCode, "refresh_token"}
		c.RedirectURIs = []string{spaOrigin + "/cb"}
	})

	for _, tc := range []struct {
		path, method, headers string
		wantOrigin            string // "" = no CORS answer at all
		wantHeaders           []string
	}{
		{"/.well-known/openid-configuration", "GET", "mcp-protocol-version", "*", []string{"*"}},
		{"/.well-known/oauth-authorization-server", "GET", "mcp-protocol-version", "*", []string{"*"}},
		{"/oauth2/token", "POST", "dpop", spaOrigin, []string{"DPoP", "Authorization"}},
		{"/oauth2/revoke", "POST", "authorization", spaOrigin, []string{"Authorization"}},
		{"/oauth2/userinfo", "GET", "authorization,dpop", "*", []string{"Authorization", "DPoP"}},
		{"/oauth2/revocations", "GET", "", "*", nil},
		{"/oauth2/introspect", "POST", "authorization", "", nil},
		{"/oauth2/device_authorization", "POST", "content-type", "", nil},
	} {
		t.Run("preflight "+tc.path, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodOptions, e.issuer+tc.path, nil)
			req.Header.Set("Origin", spaOrigin)
			req.Header.Set("Access-Control-Request-Method", tc.method)
			if tc.headers != "" {
				req.Header.Set("Access-Control-Request-Headers", tc.headers)
			}
			_, h, _ := e.do(req)
			if got := h.Get("Access-Control-Allow-Origin"); got != tc.wantOrigin {
				t.Fatalf("Access-Control-Allow-Origin = %q, want %q", got, tc.wantOrigin)
			}
			if tc.wantOrigin == "" {
				return
			}
			if !strings.Contains(h.Get("Access-Control-Allow-Methods"), tc.method) {
				t.Errorf("Access-Control-Allow-Methods %q lacks %s", h.Get("Access-Control-Allow-Methods"), tc.method)
			}
			for _, want := range tc.wantHeaders {
				if !strings.Contains(h.Get("Access-Control-Allow-Headers"), want) {
					t.Errorf("Access-Control-Allow-Headers %q lacks %s", h.Get("Access-Control-Allow-Headers"), want)
				}
			}
			if tc.wantOrigin != "*" && h.Get("Access-Control-Allow-Credentials") != "true" {
				t.Errorf("a credentialed endpoint's preflight lacks Access-Control-Allow-Credentials: %v", h)
			}
			if h.Get("Access-Control-Max-Age") == "" {
				t.Errorf("no Access-Control-Max-Age: every call would cost a preflight")
			}
		})
	}

	// The answers that follow. A token request from the SPA's origin with a
	// DPoP header that is no proof: the error is readable, with the nonce
	// header exposed; from another origin it is not readable.
	tokenFrom := func(origin string) http.Header {
		form := url.Values{"grant_type": {"authorization_code"}, "client_id": {"spa"}, "code": {"x"},
			"redirect_uri": {spaOrigin + "/cb"}, "code_verifier": {strings.Repeat("v", 43)}}
		req, _ := http.NewRequest(http.MethodPost, e.issuer+"/oauth2/token", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", origin)
		req.Header.Set("DPoP", "not-a-proof")
		status, h, body := e.do(req)
		if status != http.StatusBadRequest || body["error"] != "invalid_dpop_proof" {
			t.Fatalf("token with a bad proof: %d %v", status, body)
		}
		return h
	}
	if h := tokenFrom(spaOrigin); h.Get("Access-Control-Allow-Origin") != spaOrigin ||
		!strings.Contains(h.Get("Access-Control-Expose-Headers"), "DPoP-Nonce") {
		t.Errorf("the SPA cannot read its token error: %v", h)
	}
	if h := tokenFrom("https://evil.example"); h.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("another origin may read the SPA's token answer: %v", h)
	}

	req, _ := http.NewRequest(http.MethodGet, e.issuer+"/oauth2/userinfo", nil)
	req.Header.Set("Origin", spaOrigin)
	req.Header.Set("Authorization", "Bearer not-a-token")
	status, h, _ := e.do(req)
	if status != http.StatusUnauthorized || h.Get("Access-Control-Allow-Origin") != "*" ||
		!strings.Contains(h.Get("Access-Control-Expose-Headers"), "WWW-Authenticate") {
		t.Errorf("userinfo 401 unreadable by a page: %d %v", status, h)
	}

	form := url.Values{"client_id": {"spa"}, "token": {"unknown"}}
	req, _ = http.NewRequest(http.MethodPost, e.issuer+"/oauth2/revoke", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", spaOrigin)
	status, h, _ = e.do(req)
	if status != http.StatusOK || h.Get("Access-Control-Allow-Origin") != spaOrigin {
		t.Errorf("the SPA cannot read its revocation answer: %d %v", status, h)
	}
}
