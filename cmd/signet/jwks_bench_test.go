//go:build unix

package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"syscall"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/signet-auth/signet/config"
)

// discardWriter is a ResponseWriter that keeps only the headers and status.
type discardWriter struct {
	h    http.Header
	code int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *discardWriter) WriteHeader(code int)        { w.code = code }

// BenchmarkJWKS serves GET /.well-known/jwks.json through the handler
// `signet serve` gives its http.Server (the same code path, the request
// counter, the access log at its default setting writing JSON to
// io.Discard); "authority-echo" is the authority's echo instance with its
// middleware, which serve used to send JWKS requests through; beside a bare
// echo handler
// that serves the same bytes from a constant slice, without and with the
// same headers: the ceiling. Six keys
// (RS256, ES256, EdDSA). cpu-ns/op is process CPU per request, steadier
// than ns/op on a shared machine.
func BenchmarkJWKS(b *testing.B) {
	c := testConfig(b, func(c *config.Config) {
		c.Keys.Algorithms = []string{"RS256", "ES256", "EdDSA"}
		c.Log.Level = "info"
	})
	m := &Main{Config: c, LogOutput: io.Discard, Getenv: func(string) string { return "" }}
	if err := m.Open(b.Context()); err != nil {
		m.Close()
		b.Fatal(err)
	}
	b.Cleanup(func() { m.Close() })
	rec := httptest.NewRecorder()
	m.public.srv.Handler.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/.well-known/jwks.json", nil))
	body := rec.Body.Bytes()
	if rec.Code != http.StatusOK || len(body) < 1000 {
		b.Fatalf("JWKS: status %d, %d bytes", rec.Code, len(body))
	}
	bare := echo.New()
	bare.GET("/.well-known/jwks.json", func(c echo.Context) error { return c.Blob(http.StatusOK, "application/json", body) })
	// bare-echo-headers sends the same headers as the JWKS answer too
	// (ETag, Cache-Control, CORS, nosniff, Content-Length), from values
	// made once, as a hand-tuned echo handler would: the ceiling of 1.1x.
	same := rec.Header().Clone()
	bareHeaders := echo.New()
	bareHeaders.GET("/.well-known/jwks.json", func(c echo.Context) error {
		h := c.Response().Header()
		for k, v := range same {
			h[k] = v
		}
		return c.Blob(http.StatusOK, "application/json", body)
	})

	for _, tc := range []struct {
		name string
		h    http.Handler
	}{{"serve", m.public.srv.Handler}, {"authority-echo", m.Server}, {"bare-echo", bare}, {"bare-echo-headers", bareHeaders}} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			start := processCPU()
			b.RunParallel(func(pb *testing.PB) {
				r := httptest.NewRequest(http.MethodGet, "/.well-known/jwks.json", nil)
				r.RemoteAddr = "127.0.0.1:40000"
				w := &discardWriter{h: make(http.Header, 8)}
				for pb.Next() {
					clear(w.h)
					w.code = 0
					tc.h.ServeHTTP(w, r)
					if w.code != http.StatusOK && w.code != 0 {
						b.Fatalf("status %d", w.code)
					}
				}
			})
			b.ReportMetric(float64(processCPU()-start)/float64(b.N), "cpu-ns/op")
		})
	}
}

// processCPU is the CPU time (user + system) this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestJWKS_NoAllocations: a JWKS request through the handler `signet
// serve` listens with allocates nothing: the body, the ETag and every
// header value are made once per key change (BenchmarkJWKS measures the
// CPU against a bare echo handler).
func TestJWKS_NoAllocations(t *testing.T) {
	c := testConfig(t, func(c *config.Config) { c.Keys.Algorithms = []string{"ES256", "EdDSA"} })
	m := &Main{Config: c, LogOutput: io.Discard, Getenv: func(string) string { return "" }}
	if err := m.Open(t.Context()); err != nil {
		m.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	h := m.public.srv.Handler
	r := httptest.NewRequest(http.MethodGet, "/.well-known/jwks.json", nil)
	w := &discardWriter{h: make(http.Header, 8)}
	serve := func() {
		clear(w.h)
		w.code = 0
		h.ServeHTTP(w, r)
	}
	serve()
	if w.code != http.StatusOK || w.h.Get("Etag") == "" {
		t.Fatalf("JWKS: status %d, headers %v", w.code, w.h)
	}
	if a := testing.AllocsPerRun(100, serve); a != 0 {
		t.Errorf("%.1f allocations per JWKS request, want 0", a)
	}
}
