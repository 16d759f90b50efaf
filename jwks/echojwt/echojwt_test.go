package echojwt

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

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
