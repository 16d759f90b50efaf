package echojwt

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/signet-auth/signet/jwks"
	"github.com/signet-auth/signet/jwks/internal/testauthority"
)

const audience = "https://billing.internal"

func newVerifier(t testing.TB, a *testauthority.Authority) *jwks.Verifier {
	t.Helper()
	v, err := jwks.NewVerifier(t.Context(), a.Issuer(), jwks.WithAudience(audience))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = v.Close() })
	return v
}

// TestMiddleware: the answers are those of jwks.HTTPMiddleware, and the
// application's error handler gets the verification error as Internal.
func TestMiddleware(t *testing.T) {
	a := testauthority.Start()
	t.Cleanup(a.Close)
	v := newVerifier(t, a)
	e := echo.New()
	var handled error
	e.HTTPErrorHandler = func(err error, c echo.Context) {
		handled = err
		e.DefaultHTTPErrorHandler(err, c)
	}
	e.GET("/", func(c echo.Context) error {
		cl, ok := jwks.ClaimsFromContext(c.Request().Context())
		if !ok {
			t.Error("no claims in request context")
			return nil
		}
		return c.String(http.StatusOK, "sub="+cl.Subject)
	}, Middleware(v, jwks.RequireScopes("read", "write")))

	good := a.Token("user-1", audience, "read write")
	const invalid = `Bearer error="invalid_token", error_description="the access token is invalid"`
	for _, tc := range []struct {
		name     string
		header   []string
		status   int
		auth     string
		body     string
		internal error // what errors.Is must find in the HTTPError's Internal
	}{
		{"no header", nil, 401, `Bearer`, `{"error":"unauthorized","error_description":"bearer token required"}` + "\n", nil},
		{"basic scheme", []string{"Basic dXNlcjpwYXNz"}, 401, `Bearer`, `{"error":"unauthorized","error_description":"bearer token required"}` + "\n", nil},
		{"forged", []string{"Bearer " + good + "x"}, 401, invalid, `{"error":"invalid_token","error_description":"the access token is invalid"}` + "\n", jwks.ErrMalformed},
		{"expired", []string{"Bearer " + a.ExpiredToken("user-1", audience, "read write")}, 401, invalid, `{"error":"invalid_token","error_description":"the access token is invalid"}` + "\n", jwks.ErrExpired},
		{"other audience", []string{"Bearer " + a.Token("user-1", "https://mail.internal", "read write")}, 401, invalid, `{"error":"invalid_token","error_description":"the access token is invalid"}` + "\n", jwks.ErrAudience},
		{"two headers", []string{"Bearer " + good, "Bearer " + good}, 400,
			`Bearer error="invalid_request", error_description="more than one Authorization header"`,
			`{"error":"invalid_request","error_description":"more than one Authorization header"}` + "\n", nil},
		{"missing scope", []string{"Bearer " + a.Token("user-1", audience, "read")}, 403,
			`Bearer error="insufficient_scope", error_description="the access token lacks a required scope", scope="read write"`,
			`{"error":"insufficient_scope","error_description":"the access token lacks a required scope"}` + "\n", nil},
		{"valid", []string{"Bearer " + good}, 200, "", "sub=user-1", nil},
		{"valid, lower-case scheme", []string{"bearer " + good}, 200, "", "sub=user-1", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			handled = nil
			req := httptest.NewRequest(http.MethodGet, "/", nil)
			for _, hv := range tc.header {
				req.Header.Add("Authorization", hv)
			}
			rec := httptest.NewRecorder()
			e.ServeHTTP(rec, req)
			if rec.Code != tc.status {
				t.Errorf("status = %d, want %d", rec.Code, tc.status)
			}
			if got := rec.Header().Get("WWW-Authenticate"); got != tc.auth {
				t.Errorf("WWW-Authenticate = %q, want %q", got, tc.auth)
			}
			if got := rec.Body.String(); got != tc.body {
				t.Errorf("body = %q, want %q", got, tc.body)
			}
			if tc.status == 200 {
				return
			}
			var he *echo.HTTPError
			if !errors.As(handled, &he) || he.Code != tc.status || he.Internal == nil {
				t.Fatalf("error handler got %v, want an *echo.HTTPError %d with Internal", handled, tc.status)
			}
			if tc.internal != nil && !errors.Is(he.Internal, tc.internal) {
				t.Errorf("Internal = %v, want %v", he.Internal, tc.internal)
			}
		})
	}
}

// TestMiddleware_DPoP: with jwks.WithDPoP the echo middleware takes a
// DPoP-bound token with its proof, refuses its replay and the same token
// presented as Bearer, and sets the DPoP headers of the answer.
func TestMiddleware_DPoP(t *testing.T) {
	a := testauthority.Start()
	t.Cleanup(a.Close)
	nonces := jwks.NewRotatingNonces(time.Minute, nil)
	checker, err := jwks.NewDPoPChecker(jwks.WithDPoPAlgorithms("EdDSA", "ES256"), jwks.WithDPoPNonces(nonces))
	if err != nil {
		t.Fatal(err)
	}
	v, err := jwks.NewVerifier(t.Context(), a.Issuer(), jwks.WithAudience(audience), jwks.WithDPoP(checker))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = v.Close() })
	e := echo.New()
	e.GET("/invoices", func(c echo.Context) error {
		cl, _ := jwks.ClaimsFromContext(c.Request().Context())
		return c.String(http.StatusOK, "jkt="+cl.JKT())
	}, Middleware(v, jwks.RequireScopes("read")))

	client := testauthority.NewDPoPClient()
	tok := a.BoundToken("user-1", audience, "read", client.JKT())
	const url = "http://example.com/invoices" // httptest.NewRequest's host, no TLS
	do := func(auth, proof string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodGet, url, nil)
		req.Header.Set("Authorization", auth)
		if proof != "" {
			req.Header.Set("DPoP", proof)
		}
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, req)
		return rec
	}
	const algs = `algs="EdDSA ES256"`

	// No nonce yet: use_dpop_nonce with one in DPoP-Nonce.
	rec := do("DPoP "+tok, client.Proof("GET", url, tok))
	if rec.Code != 401 || rec.Header().Get("DPoP-Nonce") != nonces.Current() ||
		rec.Header().Get("WWW-Authenticate") != `DPoP error="use_dpop_nonce", error_description="the resource server requires a nonce in the DPoP proof", `+algs {
		t.Fatalf("without nonce: %d %q %q", rec.Code, rec.Header(), rec.Body)
	}
	proof := client.ProofWithNonce("GET", url, tok, rec.Header().Get("DPoP-Nonce"))
	if rec := do("DPoP "+tok, proof); rec.Code != 200 || rec.Body.String() != "jkt="+client.JKT() {
		t.Fatalf("with nonce: %d %s", rec.Code, rec.Body)
	}
	if rec := do("DPoP "+tok, proof); rec.Code != 401 ||
		rec.Header().Get("WWW-Authenticate") != `DPoP error="invalid_dpop_proof", error_description="the DPoP proof is invalid", `+algs {
		t.Fatalf("replay: %d %q", rec.Code, rec.Header())
	}
	if rec := do("Bearer "+tok, ""); rec.Code != 401 ||
		rec.Header().Get("WWW-Authenticate") != `Bearer error="invalid_token", error_description="the access token is invalid", DPoP `+algs {
		t.Fatalf("DPoP token as Bearer: %d %q", rec.Code, rec.Header())
	}
}

// BenchmarkMiddleware runs a request with a valid token through echo.
func BenchmarkMiddleware(b *testing.B) {
	a := testauthority.Start()
	b.Cleanup(a.Close)
	v := newVerifier(b, a)
	e := echo.New()
	e.GET("/", func(c echo.Context) error { return c.NoContent(http.StatusNoContent) },
		Middleware(v, jwks.RequireScopes("read")))
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	req.Header.Set("Authorization", "Bearer "+a.Token("user-1", audience, "read"))
	b.ReportAllocs()
	for b.Loop() {
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, req)
		if rec.Code != http.StatusNoContent {
			b.Fatalf("status %d", rec.Code)
		}
	}
}

// TestMiddleware_ProtectedResource: with jwks.WithProtectedResource the
// echo middleware's refusals point at the RFC 9728 metadata, as the
// net/http one's do, and a token for another resource is refused.
func TestMiddleware_ProtectedResource(t *testing.T) {
	a := testauthority.Start()
	t.Cleanup(a.Close)
	const resource, other = "https://mcp.example.com/mcp", "https://other.example.com/mcp"
	v, err := jwks.NewVerifier(t.Context(), a.Issuer(), jwks.WithAudience(resource, other))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = v.Close() })
	pr, err := jwks.NewProtectedResource(v, jwks.ResourceMetadata{Resource: resource, ScopesSupported: []string{"tools"}})
	if err != nil {
		t.Fatal(err)
	}
	e := echo.New()
	e.GET(pr.MetadataPath(), echo.WrapHandler(pr))
	e.POST("/mcp", func(c echo.Context) error { return c.String(http.StatusOK, "ok") },
		Middleware(v, jwks.WithProtectedResource(pr), jwks.RequireScopes("tools")))
	const rm = `resource_metadata="https://mcp.example.com/.well-known/oauth-protected-resource/mcp"`
	for _, tc := range []struct {
		name, token string
		status      int
		auth        string
	}{
		{"no token", "", 401, `Bearer scope="tools", ` + rm},
		{"other resource", a.Token("user-1", other, "tools"), 401,
			`Bearer error="invalid_token", error_description="the access token is invalid", scope="tools", ` + rm},
		{"missing scope", a.Token("user-1", resource, "read"), 403,
			`Bearer error="insufficient_scope", error_description="the access token lacks a required scope", scope="tools", ` + rm},
		{"valid", a.Token("user-1", resource, "tools"), 200, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodPost, "/mcp", nil)
			if tc.token != "" {
				req.Header.Set("Authorization", "Bearer "+tc.token)
			}
			rec := httptest.NewRecorder()
			e.ServeHTTP(rec, req)
			if rec.Code != tc.status || rec.Header().Get("WWW-Authenticate") != tc.auth {
				t.Errorf("%d %q, want %d %q", rec.Code, rec.Header().Get("WWW-Authenticate"), tc.status, tc.auth)
			}
		})
	}
	req := httptest.NewRequest(http.MethodGet, pr.MetadataPath(), nil)
	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, req)
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), `"resource":"https://mcp.example.com/mcp"`) {
		t.Errorf("metadata: %d %s", rec.Code, rec.Body)
	}
}
