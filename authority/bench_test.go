package authority_test

import (
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jws"

	"github.com/signet-auth/signet/authority"
)

var benchAlgs = []string{"RS256", "ES256", "EdDSA"}

// discardWriter is a ResponseWriter that keeps only the status.
type discardWriter struct {
	h      http.Header
	status int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *discardWriter) WriteHeader(s int)           { w.status = s }

// BenchmarkClientCredentials is a whole token request through the
// server's ServeHTTP: routing, form parsing, client authentication,
// scope and audience checks, claims, signing and the JSON response.
func BenchmarkClientCredentials(b *testing.B) {
	for _, alg := range benchAlgs {
		b.Run(alg, func(b *testing.B) {
			e := newEnv(b, envOptions{algs: []string{alg}})
			secret := e.createClient(authority.Client{ID: "bench", Scopes: []string{"read"}, Audiences: []string{"https://api.example.com"}, SigningAlg: alg})
			const body = "grant_type=client_credentials&scope=read"
			auth := "Basic " + base64.StdEncoding.EncodeToString([]byte("bench:"+secret))
			rd := strings.NewReader(body)
			req := httptest.NewRequest(http.MethodPost, "/oauth2/token", rd)
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Authorization", auth)
			w := &discardWriter{h: http.Header{}}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				rd.Reset(body)
				req.Body = io.NopCloser(rd)
				clear(w.h)
				w.status = 0
				e.srv.ServeHTTP(w, req)
				if w.status != http.StatusOK {
					b.Fatalf("status %d", w.status)
				}
			}
		})
	}
}

// BenchmarkSign is the bare jwx cost of signing the same claims with the
// same key and header: the ceiling BenchmarkClientCredentials is measured
// against. The raw key is used, jwx's fastest path.
func BenchmarkSign(b *testing.B) {
	for _, alg := range benchAlgs {
		b.Run(alg, func(b *testing.B) {
			e := newEnv(b, envOptions{algs: []string{alg}})
			secret := e.createClient(authority.Client{ID: "bench", Scopes: []string{"read"}, Audiences: []string{"https://api.example.com"}, SigningAlg: alg})
			tok := e.token("bench", secret, nil)
			payload, err := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[1])
			if err != nil {
				b.Fatal(err)
			}
			jk, err := e.keys.SigningKey(alg)
			if err != nil {
				b.Fatal(err)
			}
			var raw any
			if err := jk.Raw(&raw); err != nil {
				b.Fatal(err)
			}
			hdr := jws.NewHeaders()
			_ = hdr.Set(jws.KeyIDKey, jk.KeyID())
			_ = hdr.Set(jws.TypeKey, "at+jwt")
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if _, err := jws.Sign(payload, jws.WithKey(jwa.SignatureAlgorithm(alg), raw, jws.WithProtectedHeaders(hdr))); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
