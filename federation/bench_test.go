//go:build unix

package federation_test

import (
	"context"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/signet-auth/signet/clients"
	"github.com/signet-auth/signet/federation"
)

type discardWriter struct {
	h      http.Header
	status int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *discardWriter) WriteHeader(s int)           { w.status = s }

func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkFederatedClientCredentials: one client_credentials request
// through the server's handler (Signet signs ES256), authenticated by
// client secret (HTTP Basic), by a Kubernetes pod token as client
// assertion (RS256 by the issuer's key found by discovery and cached,
// the jti spent in bolt, or not with allow_reuse), and by a SPIFFE
// JWT-SVID (ES256, static keys, no jti), and that JWT-SVID as the RFC
// 7523 jwt-bearer grant. Tokens are minted before the timer; requests run in parallel
// (64 per core) so bolt's Batch shares commits as under load. cpu-ns/op
// is the process CPU per token, the figure to compare on a shared machine.
func BenchmarkFederatedClientCredentials(b *testing.B) {
	kube := newKubeIssuer(b, nil)
	spire := newECKey(b)
	spireKeys, err := clients.ParsePublicKeys(ecJWKS(spire, "spire-1"))
	if err != nil {
		b.Fatal(err)
	}
	for _, mode := range []string{"secret", "kubernetes-rs256", "kubernetes-rs256-reuse", "spiffe-es256", "spiffe-es256-grant"} {
		b.Run(mode, func(b *testing.B) {
			s := newSignet(b, fetcher(b, kube.srv), federation.Issuer{Issuer: kube.srv.URL, AllowReuse: mode == "kubernetes-rs256-reuse"},
				federation.Issuer{Issuer: "spiffe://td", Keys: spireKeys})
			_, secret, err := s.srv.Clients().Create(context.Background(), clients.Client{ID: "bench", Scopes: []string{"read"}, Audiences: []string{"https://api.example"}})
			if err != nil {
				b.Fatal(err)
			}
			s.workload("pod", clients.FederatedIdentity{Issuer: kube.srv.URL, Subject: "system:serviceaccount:payments:*"},
				clients.FederatedIdentity{Issuer: "spiffe://td", Subject: "spiffe://td/ns/payments/sa/*"})
			auth := "Basic " + base64.StdEncoding.EncodeToString([]byte("bench:"+secret))
			now := s.clock.Now()
			bodies := make([]string, b.N)
			for i := range bodies {
				switch mode {
				case "secret":
					bodies[i] = "grant_type=client_credentials&scope=read"
				case "kubernetes-rs256", "kubernetes-rs256-reuse":
					bodies[i] = assertionForm(kube.podToken(now, "payments", "api", s.issuer, nil)).Encode() + "&client_id=pod"
				default:
					svid := signES256(spire, map[string]any{"alg": "ES256", "kid": "spire-1"}, map[string]any{
						"iss": "spiffe://td", "sub": "spiffe://td/ns/payments/sa/api", "aud": s.issuer, "exp": now.Add(5 * time.Minute).Unix()})
					form := assertionForm(svid)
					if mode == "spiffe-es256-grant" { // the RFC 7523 grant on the same token (signet-load flows' row)
						form = bearerForm(svid)
					}
					bodies[i] = form.Encode() + "&client_id=pod"
				}
			}
			var next atomic.Int64
			b.SetParallelism(64)
			b.ReportAllocs()
			b.ResetTimer()
			start := processCPU()
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
					s.srv.ServeHTTP(w, req)
					if w.status != http.StatusOK {
						b.Errorf("status %d", w.status)
						return
					}
				}
			})
			b.StopTimer()
			b.ReportMetric(float64(processCPU()-start)/float64(b.N), "cpu-ns/op")
		})
	}
}
