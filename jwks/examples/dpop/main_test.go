package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/signet-auth/signet/jwks"
	"github.com/signet-auth/signet/jwks/internal/testauthority"
)

// TestRoutes runs the service of main.go against an in-process authority
// and a DPoP client: a bound token with its proof passes once, its replay
// and the same token as Bearer are refused.
func TestRoutes(t *testing.T) {
	authority := testauthority.Start()
	t.Cleanup(authority.Close)
	srv := httptest.NewUnstartedServer(nil)
	srv.Start()
	t.Cleanup(srv.Close)
	checker, err := jwks.NewDPoPChecker(jwks.WithDPoPOrigin(srv.URL))
	if err != nil {
		t.Fatal(err)
	}
	v, err := jwks.NewVerifier(t.Context(), authority.Issuer(), jwks.WithAudience(audience), jwks.WithDPoP(checker))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = v.Close() })
	srv.Config.Handler = routes(v)

	client := testauthority.NewDPoPClient()
	bound := authority.BoundToken("alice", audience, "invoices:read", client.JKT())
	proof := client.Proof("GET", srv.URL+"/invoices", bound)
	const dpopRefused = `DPoP error="invalid_dpop_proof"`
	for _, tc := range []struct {
		name          string
		auth, proof   string
		status        int
		body, wwwAuth string
	}{
		{"DPoP", "DPoP " + bound, proof, 200, "invoices of alice (DPoP key " + client.JKT() + ")\n", ""},
		{"replayed proof", "DPoP " + bound, proof, 401, `"invalid_dpop_proof"`, dpopRefused},
		{"bound token as Bearer", "Bearer " + bound, "", 401, `"invalid_token"`, `Bearer error="invalid_token"`},
		{"bearer token", "Bearer " + authority.Token("bob", audience, "invoices:read"), "", 200, "invoices of bob (bearer)\n", ""},
		{"no token", "", "", 401, `"unauthorized"`, `Bearer, DPoP algs="RS256 PS256 ES256 ES384 ES512 EdDSA Ed25519"`},
	} {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/invoices", nil)
		if tc.auth != "" {
			req.Header.Set("Authorization", tc.auth)
		}
		if tc.proof != "" {
			req.Header.Set("DPoP", tc.proof)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.status || !strings.Contains(string(body), tc.body) ||
			!strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), tc.wwwAuth) {
			t.Errorf("%s: %d %q %q, want %d with %q", tc.name, resp.StatusCode, body, resp.Header.Get("WWW-Authenticate"), tc.status, tc.body)
		}
	}
}
