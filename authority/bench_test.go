package authority_test

import (
	"crypto/rsa"
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jws"

	"github.com/signet-auth/signet/clients"
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
			secret := e.createClient(clients.Client{ID: "bench", Scopes: []string{"read"}, Audiences: []string{"https://api.example.com"}, SigningAlg: alg})
			const body = "grant_type=client_credentials&scope=read"
			auth := "Basic " + base64.StdEncoding.EncodeToString([]byte("bench:"+secret))
			rd := strings.NewReader(body)
			req := httptest.NewRequest(http.MethodPost, "/oauth2/token", rd)
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Authorization", auth)
			w := &discardWriter{h: http.Header{}}
			b.ReportAllocs()
			b.ResetTimer()
			done := reportCPU(b)
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
			done()
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
			secret := e.createClient(clients.Client{ID: "bench", Scopes: []string{"read"}, Audiences: []string{"https://api.example.com"}, SigningAlg: alg})
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

// reportCPU starts counting process CPU time; the returned func reports it
// per iteration as cpu-ns/op. On a shared machine wall time per op swings
// with everyone else's load; the CPU a signature costs much less.
func reportCPU(b *testing.B) func() {
	start := processCPU()
	return func() {
		b.ReportMetric(float64(processCPU()-start)/float64(b.N), "cpu-ns/op")
	}
}

// BenchmarkSignInput is bare signing of one token's signing input (header
// and claims already encoded) with jwx's Signer for the algorithm: "jwx-raw"
// signs with the private key as jwk.Key.Raw returns it, "ready" with the
// same key after rsa.PrivateKey.Precompute (what the token endpoint prepares
// once per key). For RSA, jwx's raw key carries no precomputed FIPS form, so
// crypto/rsa rebuilds and re-checks it on every signature; for EC and
// Ed25519 the two are the same key.
func BenchmarkSignInput(b *testing.B) {
	for _, alg := range benchAlgs {
		for _, mode := range []string{"jwx-raw", "ready"} {
			b.Run(alg+"/"+mode, func(b *testing.B) {
				e := newEnv(b, envOptions{algs: []string{alg}})
				secret := e.createClient(clients.Client{ID: "bench", Scopes: []string{"read"}, Audiences: []string{"https://api.example.com"}, SigningAlg: alg})
				tok := e.token("bench", secret, nil)
				input := []byte(tok[:strings.LastIndexByte(tok, '.')])
				jk, err := e.keys.SigningKey(alg)
				if err != nil {
					b.Fatal(err)
				}
				var raw any
				if err := jk.Raw(&raw); err != nil {
					b.Fatal(err)
				}
				if rk, ok := raw.(*rsa.PrivateKey); ok && mode == "ready" {
					rk.Precompute()
				}
				signer, err := jws.NewSigner(jwa.SignatureAlgorithm(alg))
				if err != nil {
					b.Fatal(err)
				}
				b.ReportAllocs()
				b.ResetTimer()
				done := reportCPU(b)
				for b.Loop() {
					if _, err := signer.Sign(input, raw); err != nil {
						b.Fatal(err)
					}
				}
				done()
			})
		}
	}
}

// BenchmarkRSAPrecompute is what signing with jwx's raw RS256 key redoes on
// every signature and the prepared key does once: rsa.PrivateKey.Precompute
// on the key jwk.Key.Raw returns ("raw" is the Raw call alone, to subtract).
func BenchmarkRSAPrecompute(b *testing.B) {
	e := newEnv(b, envOptions{algs: []string{"RS256"}})
	jk, err := e.keys.SigningKey("RS256")
	if err != nil {
		b.Fatal(err)
	}
	for _, precompute := range []bool{false, true} {
		name := "raw"
		if precompute {
			name = "raw+precompute"
		}
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			done := reportCPU(b)
			for b.Loop() {
				var rk *rsa.PrivateKey
				if err := jk.Raw(&rk); err != nil {
					b.Fatal(err)
				}
				if precompute {
					rk.Precompute()
				}
			}
			done()
		})
	}
}
