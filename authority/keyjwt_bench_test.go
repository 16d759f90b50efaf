package authority_test

import (
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/signet-auth/signet/clients"
)

// BenchmarkClientAuth compares one client_credentials request authenticated
// by client secret (HTTP Basic) with one authenticated by an ES256
// private_key_jwt assertion (signature check and the jti written to the
// bolt store), for tokens signed with RS256 (the default) and ES256. The
// assertions are made before the timer starts; requests run in parallel
// (64 per core) so bolt's Batch shares commits as under load. cpu-ns/op is
// the process CPU per token, the figure to compare on a shared machine.
func BenchmarkClientAuth(b *testing.B) {
	for _, alg := range []string{"RS256", "ES256"} {
		for _, mode := range []string{"secret", "es256-assertion"} {
			b.Run(alg+"/"+mode, func(b *testing.B) {
				e := newEnv(b, envOptions{algs: []string{alg}})
				k := newClientKey(b, "ES256", "k1")
				spec := clients.Client{ID: "bench", Scopes: []string{"read"}, Audiences: []string{"https://api.example.com"}, SigningAlg: alg}
				if mode != "secret" {
					spec.AuthMethods, spec.JWKS = []string{clients.AuthPrivateKeyJWT}, jwksOf(b, k)
				}
				secret := e.createClient(spec)
				auth := "Basic " + base64.StdEncoding.EncodeToString([]byte("bench:"+secret))
				bodies := make([]string, b.N)
				for i := range bodies {
					if mode == "secret" {
						bodies[i] = "grant_type=client_credentials&scope=read"
						continue
					}
					c := e.claimsFor("bench")
					c["jti"] = "bench-" + strconv.Itoa(i)
					bodies[i] = "grant_type=client_credentials&scope=read&" + url.Values{
						"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
						"client_assertion":      {signJWT(b, k, nil, c)}}.Encode()
				}
				var next atomic.Int64
				b.SetParallelism(64)
				b.ReportAllocs()
				b.ResetTimer()
				done := reportCPU(b)
				b.RunParallel(func(pb *testing.PB) {
					w := &discardWriter{h: http.Header{}}
					for pb.Next() {
						i := next.Add(1) - 1
						req := httptest.NewRequest(http.MethodPost, "/oauth2/token", strings.NewReader(bodies[i]))
						req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
						if mode == "secret" {
							req.Header.Set("Authorization", auth)
						}
						clear(w.h)
						w.status = 0
						e.srv.ServeHTTP(w, req)
						if w.status != http.StatusOK {
							b.Errorf("status %d", w.status)
							return
						}
					}
				})
				done()
			})
		}
	}
}
