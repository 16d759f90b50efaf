//go:build unix

package jwks

import (
	"context"
	"testing"
	"time"

	"github.com/MicahParks/keyfunc/v3"
	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/golang-jwt/jwt/v5"
)

// BenchmarkVerifyParallel verifies one Signet-shaped access token (header
// alg, kid, typ at+jwt; claims iss, sub, aud, exp, nbf, iat, jti,
// client_id, scope) from b.RunParallel goroutines, each verifier with the
// key set fetched from the same running issuer and cached:
//   - signet: Verifier.Verify, every check (alg from the key, typ, iss,
//     aud, exp, nbf, iat, required claims, no duplicate members);
//   - keyfunc-jwt: keyfunc v3's Keyfunc with golang-jwt v5's jwt.Parse,
//     the pair most Go services use (alg list, iss, aud, exp required,
//     iat; no typ check);
//   - go-oidc: coreos/go-oidc v3's IDTokenVerifier (iss, aud, exp, alg
//     list; no typ check).
//
// cpu-ns/op is the process's CPU time per verification (user + system),
// steadier than ns/op on a shared machine. The baselines are test-only dependencies of this module: a service that
// imports jwks does not get them.
func BenchmarkVerifyParallel(b *testing.B) {
	for _, alg := range benchAlgs {
		b.Run(alg, func(b *testing.B) {
			k := newTestKey(b, alg)
			f := newFakeIssuer(b, k)
			now := time.Now()
			c := f.claims(now)
			c["exp"] = now.Add(time.Hour).Unix()
			c["nbf"] = now.Unix()
			tok := sign(b, k, c, nil)
			ctx, cancel := context.WithCancel(b.Context())
			b.Cleanup(cancel)

			v, err := NewVerifier(ctx, f.URL(), WithAudience("api"))
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = v.Close() })
			kf, err := keyfunc.NewDefaultCtx(ctx, []string{f.URL() + "/.well-known/jwks.json"})
			if err != nil {
				b.Fatal(err)
			}
			p, err := oidc.NewProvider(ctx, f.URL())
			if err != nil {
				b.Fatal(err)
			}
			ov := p.Verifier(&oidc.Config{ClientID: "api", SupportedSigningAlgs: []string{alg}})

			impls := []struct {
				name   string
				verify func(context.Context) error
			}{
				{"signet", func(ctx context.Context) error { _, err := v.Verify(ctx, tok); return err }},
				{"keyfunc-jwt", func(context.Context) error {
					_, err := jwt.Parse(tok, kf.Keyfunc, jwt.WithValidMethods([]string{alg}), jwt.WithIssuer(f.URL()),
						jwt.WithAudience("api"), jwt.WithExpirationRequired(), jwt.WithIssuedAt(), jwt.WithLeeway(time.Minute))
					return err
				}},
				{"go-oidc", func(ctx context.Context) error { _, err := ov.Verify(ctx, tok); return err }},
			}
			for _, im := range impls {
				if err := im.verify(ctx); err != nil { // also fills each one's cache
					b.Fatalf("%s rejects the token: %v", im.name, err)
				}
				b.Run(im.name, func(b *testing.B) {
					b.ReportAllocs()
					start := processCPU()
					b.RunParallel(func(pb *testing.PB) {
						for pb.Next() {
							if err := im.verify(ctx); err != nil {
								b.Fatal(err)
							}
						}
					})
					b.ReportMetric(float64(processCPU()-start)/float64(b.N), "cpu-ns/op")
				})
			}
		})
	}
}
