package authority_test

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/signet-auth/signet/clients"
)

// TestDPoP_RequiredByClient: a client registered with
// dpop_bound_access_tokens (RFC 9449 §5.2) is refused every token request
// without a proof, whatever the grant, and gets bound tokens with one; the
// admin API turns the switch off again.
func TestDPoP_RequiredByClient(t *testing.T) {
	e := newEnv(t, envOptions{algs: []string{"ES256"}})
	e.createUser("alice")
	secret := e.createClient(clients.Client{ID: "svc", Scopes: []string{"read"}, Audiences: []string{"api"}, DPoPBoundAccessTokens: true,
		GrantTypes: []string{clients.GrantClientCredentials, clients.GrantPassword}})
	client := newDPoPClient(t, e.clock.Now)
	proof := func() string { return client.proof(t, "POST", e.issuer+"/oauth2/token", "", nil) }
	cc := url.Values{"grant_type": {"client_credentials"}}
	pw := url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {testPassword}, "scope": {"read"}}
	for _, tc := range []struct {
		name   string
		form   url.Values
		proofs []string
		status int
		want   string // error, or token_type
	}{
		{"client_credentials without a proof", cc, nil, 400, "invalid_dpop_proof"},
		{"password grant without a proof", pw, nil, 400, "invalid_dpop_proof"},
		{"client_credentials with a proof", cc, []string{proof()}, 200, "DPoP"},
		{"password grant with a proof", pw, []string{proof()}, 200, "DPoP"},
	} {
		status, body := e.dpopPost("svc", secret, tc.form, tc.proofs...)
		got, _ := body["error"].(string)
		if status == http.StatusOK {
			got, _ = body["token_type"].(string)
		}
		if status != tc.status || got != tc.want {
			t.Errorf("%s: %d %v, want %d %s", tc.name, status, body, tc.status, tc.want)
		}
	}

	status, _, body := e.admin(http.MethodPatch, "/admin/clients/svc", e.adminToken(), map[string]any{"dpop_bound_access_tokens": false})
	if status != http.StatusOK || body["dpop_bound_access_tokens"] != nil {
		t.Fatalf("PATCH = %d %v", status, body)
	}
	if status, body := e.dpopPost("svc", secret, cc); status != http.StatusOK || body["token_type"] != "Bearer" {
		t.Fatalf("after the switch is off: %d %v", status, body)
	}
}
