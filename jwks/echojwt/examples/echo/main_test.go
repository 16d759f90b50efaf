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

// TestRoutes runs the service of main.go against an in-process authority.
func TestRoutes(t *testing.T) {
	authority := testauthority.Start()
	t.Cleanup(authority.Close)
	v, err := jwks.NewVerifier(t.Context(), authority.Issuer(), jwks.WithAudience(audience))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = v.Close() })
	srv := httptest.NewServer(routes(v))
	t.Cleanup(srv.Close)

	for _, tc := range []struct {
		path, token string
		status      int
		body        string
	}{
		{"/invoices", authority.Token("alice", audience, "invoices:read"), 200, "invoices of alice (client example-client)\n"},
		{"/invoices", authority.Token("alice", audience, "profile"), 403, `"insufficient_scope"`},
		{"/invoices", authority.Token("alice", "https://other.internal", "invoices:read"), 401, `"invalid_token"`},
		{"/invoices", "", 401, `"unauthorized"`},
		{"/healthz", "", 200, "ok\n"},
	} {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+tc.path, nil)
		if tc.token != "" {
			req.Header.Set("Authorization", "Bearer "+tc.token)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.status || !strings.Contains(string(body), tc.body) {
			t.Errorf("GET %s: %d %q, want %d with %q", tc.path, resp.StatusCode, body, tc.status, tc.body)
		}
	}
}
