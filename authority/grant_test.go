package authority_test

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/signet-auth/signet/authority"
	"github.com/signet-auth/signet/clients"
)

// echoGrant is an extension grant for testing the seam: it issues for the
// subject its form names, with what the test puts in it.
type echoGrant struct{ issue authority.Issue }

func (g echoGrant) Grant(_ context.Context, req authority.GrantRequest) (authority.Issue, error) {
	if req.Form.Get("subject") == "" {
		return authority.Issue{}, authority.InvalidRequest("subject is required")
	}
	is := g.issue
	is.Subject = req.Form.Get("subject")
	return is, nil
}

// TestExtensionGrant: the token endpoint serves a grant type from another
// package (authority.Config.Grants) only when it is configured and the
// client is allowed it; the grant decides sub, scope, aud and extra claims
// but can never set a claim Signet sets, and can only shorten the lifetime.
func TestExtensionGrant(t *testing.T) {
	g := &echoGrant{}
	e := newEnv(t, envOptions{grants: map[string]authority.Grant{clients.GrantTokenExchange: g}})
	secret := e.createClient(clients.Client{ID: "svc", Scopes: []string{"read"}, Audiences: []string{"api"},
		GrantTypes: []string{clients.GrantClientCredentials, clients.GrantTokenExchange}, ExchangeAudiences: []string{"api"}})
	other := e.createClient(clients.Client{ID: "plain", Scopes: []string{"read"}, Audiences: []string{"api"}})
	form := url.Values{"grant_type": {clients.GrantTokenExchange}, "subject": {"alice"}}

	g.issue = authority.Issue{Scope: "read", Audience: []string{"api"}, Claims: map[string]any{"act": map[string]any{"sub": "svc"}},
		Expires: e.clock.Now().Add(90 * time.Second), IssuedTokenType: "urn:ietf:params:oauth:token-type:access_token"}
	code, _, body := e.tokenRequest(form, "svc", secret)
	if code != http.StatusOK || body["issued_token_type"] != "urn:ietf:params:oauth:token-type:access_token" || body["expires_in"] != float64(90) {
		t.Fatalf("exchange = %d %v", code, body)
	}
	claims := decodePayload(t, body["access_token"].(string))
	if claims["sub"] != "alice" || claims["client_id"] != "svc" || claims["scope"] != "read" || claims["act"].(map[string]any)["sub"] != "svc" {
		t.Fatalf("claims = %v", claims)
	}
	if exp, iat := claims["exp"].(float64), claims["iat"].(float64); exp-iat != 90 {
		t.Fatalf("exp-iat = %v, want the grant's 90s cap", exp-iat)
	}

	for _, tc := range []struct {
		name   string
		issue  authority.Issue
		id     string
		secret string
		form   url.Values
		status int
		code   string
	}{
		{"client not allowed the grant", g.issue, "plain", other, form, 400, "unauthorized_client"},
		{"grant's own error", g.issue, "svc", secret, url.Values{"grant_type": {clients.GrantTokenExchange}}, 400, "invalid_request"},
		{"grant sets iss", authority.Issue{Claims: map[string]any{"iss": "evil"}}, "svc", secret, form, 500, "server_error"},
		{"grant sets cnf in another case", authority.Issue{Claims: map[string]any{"CNF": "x"}}, "svc", secret, form, 500, "server_error"},
		{"no lifetime left", authority.Issue{Expires: e.clock.Now().Add(-time.Second)}, "svc", secret, form, 400, "invalid_grant"},
		// RFC 8707 §2, checked for every grant before the grant runs.
		{"relative resource", g.issue, "svc", secret, url.Values{"grant_type": {clients.GrantTokenExchange}, "subject": {"alice"}, "resource": {"/api"}}, 400, "invalid_target"},
		{"resource with fragment", g.issue, "svc", secret, url.Values{"grant_type": {clients.GrantTokenExchange}, "subject": {"alice"}, "resource": {"https://api.example.com", "https://api.example.com/#x"}}, 400, "invalid_target"},
		{"not configured", g.issue, "svc", secret, url.Values{"grant_type": {clients.GrantJWTBearer}, "assertion": {"x"}}, 400, "unsupported_grant_type"},
	} {
		g.issue = tc.issue
		if code, _, body := e.tokenRequest(tc.form, tc.id, tc.secret); code != tc.status || body["error"] != tc.code {
			t.Errorf("%s: %d %v, want %d %s", tc.name, code, body, tc.status, tc.code)
		}
	}

	req, err := http.NewRequest(http.MethodGet, e.issuer+"/.well-known/openid-configuration", nil)
	if err != nil {
		t.Fatal(err)
	}
	code, _, md := e.do(req)
	if code != 200 {
		t.Fatal(code)
	}
	var types []string
	for _, v := range md["grant_types_supported"].([]any) {
		types = append(types, v.(string))
	}
	if !slices.Contains(types, clients.GrantTokenExchange) || slices.Contains(types, clients.GrantJWTBearer) {
		t.Errorf("grant_types_supported = %v: want the configured extension grant only", types)
	}
}
