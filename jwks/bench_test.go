package jwks

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jws"
	"github.com/lestrrat-go/jwx/v2/jwt"
)

var benchAlgs = []string{"RS256", "ES256", "EdDSA"}

// benchSetup returns a verifier on the real clock and a valid token.
func benchSetup(b *testing.B, alg string) (*Verifier, *fakeIssuer, *testKey, string) {
	b.Helper()
	k := newTestKey(b, alg)
	f := newFakeIssuer(b, k)
	v, err := NewVerifier(b.Context(), f.URL(), WithAudience("api"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = v.Close() })
	c := f.claims(time.Now())
	c["exp"] = time.Now().Add(time.Hour).Unix()
	return v, f, k, sign(b, k, c, nil)
}

// BenchmarkVerify measures Verifier.Verify on a valid token.
func BenchmarkVerify(b *testing.B) {
	for _, alg := range benchAlgs {
		b.Run(alg, func(b *testing.B) {
			v, _, _, tok := benchSetup(b, alg)
			ctx := b.Context()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := v.Verify(ctx, tok); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkVerifyBare is the baseline: jwx alone, key in hand, verifying
// the signature and validating iss, aud and times of the same token in one
// jwt.Parse (faster than jws.Verify followed by jwt.Parse, which parses
// twice).
func BenchmarkVerifyBare(b *testing.B) {
	for _, alg := range benchAlgs {
		b.Run(alg, func(b *testing.B) {
			_, f, k, tok := benchSetup(b, alg)
			pub := k.priv.Public()
			buf := []byte(tok)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := jwt.Parse(buf, jwt.WithKey(jwa.SignatureAlgorithm(alg), pub),
					jwt.WithIssuer(f.URL()), jwt.WithAudience("api"), jwt.WithAcceptableSkew(30*time.Second)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkVerifyBareTwoStep is the other bare jwx path, kept to show why
// BenchmarkVerifyBare uses the single call.
func BenchmarkVerifyBareTwoStep(b *testing.B) {
	for _, alg := range benchAlgs {
		b.Run(alg, func(b *testing.B) {
			_, f, k, tok := benchSetup(b, alg)
			pub := k.priv.Public()
			buf := []byte(tok)
			b.ReportAllocs()
			for b.Loop() {
				payload, err := jws.Verify(buf, jws.WithKey(jwa.SignatureAlgorithm(alg), pub))
				if err != nil {
					b.Fatal(err)
				}
				if _, err := jwt.Parse(payload, jwt.WithVerify(false), jwt.WithIssuer(f.URL()), jwt.WithAudience("api")); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkHTTPMiddleware runs a request with an RS256 token through
// HTTPMiddleware (the echo one is in package echojwt).
func BenchmarkHTTPMiddleware(b *testing.B) {
	v, _, _, tok := benchSetup(b, "RS256")
	h := HTTPMiddleware(v, RequireScopes("read"))(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	}))
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	b.ReportAllocs()
	for b.Loop() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusNoContent {
			b.Fatalf("status %d", rec.Code)
		}
	}
}

// BenchmarkHTTPMiddlewareProtectedResource is BenchmarkHTTPMiddleware with
// WithProtectedResource: the resource's own aud check on top.
func BenchmarkHTTPMiddlewareProtectedResource(b *testing.B) {
	const resource = "https://mcp.example.com/mcp"
	k := newTestKey(b, "RS256")
	f := newFakeIssuer(b, k)
	v, err := NewVerifier(b.Context(), f.URL(), WithAudience(resource))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = v.Close() })
	pr, err := NewProtectedResource(v, ResourceMetadata{Resource: resource})
	if err != nil {
		b.Fatal(err)
	}
	c := f.claims(time.Now())
	c["exp"], c["aud"] = time.Now().Add(time.Hour).Unix(), resource
	h := HTTPMiddleware(v, WithProtectedResource(pr), RequireScopes("read"))(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	}))
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	req.Header.Set("Authorization", "Bearer "+sign(b, k, c, nil))
	b.ReportAllocs()
	for b.Loop() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusNoContent {
			b.Fatalf("status %d", rec.Code)
		}
	}
}
