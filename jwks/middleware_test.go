package jwks

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

type middlewareCase struct {
	name       string
	header     []string // Authorization values
	wantStatus int
	wantAuth   string // WWW-Authenticate
	wantBody   string
}

func middlewareCases(t *testing.T, f *fakeIssuer, k *testKey, clk *fakeClock) []middlewareCase {
	good := sign(t, k, f.claims(clk.Now()), nil)
	readOnly := f.claims(clk.Now())
	readOnly["scope"] = "read"
	return []middlewareCase{
		{"no header", nil, 401, `Bearer`,
			`{"error":"unauthorized","error_description":"bearer token required"}` + "\n"},
		{"basic scheme", []string{"Basic dXNlcjpwYXNz"}, 401, `Bearer`,
			`{"error":"unauthorized","error_description":"bearer token required"}` + "\n"},
		{"invalid token", []string{"Bearer " + good + "x"}, 401,
			`Bearer error="invalid_token", error_description="the access token is invalid"`,
			`{"error":"invalid_token","error_description":"the access token is invalid"}` + "\n"},
		{"empty token", []string{"Bearer "}, 401,
			`Bearer error="invalid_token", error_description="the access token is invalid"`,
			`{"error":"invalid_token","error_description":"the access token is invalid"}` + "\n"},
		{"two headers", []string{"Bearer " + good, "Bearer " + good}, 400,
			`Bearer error="invalid_request", error_description="more than one Authorization header"`,
			`{"error":"invalid_request","error_description":"more than one Authorization header"}` + "\n"},
		{"missing scope", []string{"Bearer " + sign(t, k, readOnly, nil)}, 403,
			`Bearer error="insufficient_scope", error_description="the access token lacks a required scope", scope="read write"`,
			`{"error":"insufficient_scope","error_description":"the access token lacks a required scope"}` + "\n"},
		{"valid", []string{"Bearer " + good}, 200, "", "sub=user-1"},
		{"valid, lower-case scheme", []string{"bearer " + good}, 200, "", "sub=user-1"},
		{"valid, upper-case scheme", []string{"BEARER " + good}, 200, "", "sub=user-1"},
	}
}

func checkResponse(t *testing.T, rec *httptest.ResponseRecorder, tc middlewareCase) {
	t.Helper()
	if rec.Code != tc.wantStatus {
		t.Errorf("status = %d, want %d", rec.Code, tc.wantStatus)
	}
	if got := rec.Header().Get("WWW-Authenticate"); got != tc.wantAuth {
		t.Errorf("WWW-Authenticate = %q, want %q", got, tc.wantAuth)
	}
	if got := rec.Body.String(); got != tc.wantBody {
		t.Errorf("body = %q, want %q", got, tc.wantBody)
	}
	if tc.wantStatus != 200 {
		if got := rec.Header().Get("Content-Type"); got != "application/json" {
			t.Errorf("Content-Type = %q, want application/json", got)
		}
	}
}

func TestHTTPMiddleware(t *testing.T) {
	k := newTestKey(t, "ES256")
	clk := newFakeClock()
	f := newFakeIssuer(t, k)
	v := newTestVerifier(t, f, clk)
	h := HTTPMiddleware(v, RequireScopes("read", "write"))(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, ok := ClaimsFromContext(r.Context())
		if !ok {
			t.Error("no claims in context")
			return
		}
		_, _ = w.Write([]byte("sub=" + c.Subject))
	}))
	for _, tc := range middlewareCases(t, f, k, clk) {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodGet, "/", nil)
			for _, hv := range tc.header {
				req.Header.Add("Authorization", hv)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			checkResponse(t, rec, tc)
		})
	}
}

func TestClaimsFromContext_Empty(t *testing.T) {
	if c, ok := ClaimsFromContext(t.Context()); ok || c != nil {
		t.Errorf("ClaimsFromContext(empty) = %v, %v", c, ok)
	}
}
