//go:build unix

package main

import (
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/signet-auth/signet/clients"
	"github.com/signet-auth/signet/config"
)

// BenchmarkToken is an ES256 client_credentials request through the handler
// `signet serve` gives its http.Server ("serve": the access log at its
// default setting writing JSON to io.Discard, the HTTP metrics, the store
// deadline) beside the authority's echo instance alone ("authority", what
// authority's BenchmarkClientCredentials measures). The difference is what
// serve's own middleware costs per token (BENCHMARKS.md, the fast path
// back): net/http's connection handling is in neither.
func BenchmarkToken(b *testing.B) {
	c := testConfig(b, func(c *config.Config) { c.Log.Level = "info" })
	m := &Main{Config: c, LogOutput: io.Discard, Getenv: func(string) string { return "" }}
	if err := m.Open(b.Context()); err != nil {
		m.Close()
		b.Fatal(err)
	}
	b.Cleanup(func() { m.Close() })
	_, secret, err := m.Server.Clients().Create(b.Context(), clients.Client{ID: "bench", Scopes: []string{"read"},
		Audiences: []string{"https://api.example.com"}, SigningAlg: "ES256"})
	if err != nil {
		b.Fatal(err)
	}
	const body = "grant_type=client_credentials&scope=read"
	auth := "Basic " + base64.StdEncoding.EncodeToString([]byte("bench:"+secret))
	for _, tc := range []struct {
		name string
		h    http.Handler
	}{{"serve", m.public.srv.Handler}, {"authority", m.Server}} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			start := processCPU()
			b.RunParallel(func(pb *testing.PB) {
				rd := strings.NewReader(body)
				r := httptest.NewRequest(http.MethodPost, "/oauth2/token", rd)
				r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				r.Header.Set("Authorization", auth)
				r.RemoteAddr = "127.0.0.1:40000"
				w := &discardWriter{h: make(http.Header, 8)}
				for pb.Next() {
					rd.Reset(body)
					r.Body = io.NopCloser(rd)
					clear(w.h)
					w.code = 0
					tc.h.ServeHTTP(w, r)
					if w.code != http.StatusOK {
						b.Fatalf("status %d", w.code)
					}
				}
			})
			b.ReportMetric(float64(processCPU()-start)/float64(b.N), "cpu-ns/op")
		})
	}
}
