package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/signet-auth/signet/config"
)

// TestServe_AccessLog: log.access chooses which requests get a "request"
// line, through the handler `signet serve` listens with. By default (all)
// successful health, readiness and JWKS requests are left out and errors
// never are; errors logs status 400 and above only; off logs nothing. Each
// line carries latency_ms, a number of milliseconds.
func TestServe_AccessLog(t *testing.T) {
	paths := []string{"/healthz", "/readyz", "/.well-known/jwks.json", "/.well-known/openid-configuration", "/nope"}
	tests := []struct {
		mode string
		want []string // paths logged
	}{
		{"all", []string{"/.well-known/openid-configuration", "/nope"}},
		{"errors", []string{"/nope"}},
		{"off", nil},
	}
	for _, tc := range tests {
		t.Run(tc.mode, func(t *testing.T) {
			c := testConfig(t, func(c *config.Config) { c.Log.Access = tc.mode })
			m, logs := startMain(t, c, nil)
			h := m.public.srv.Handler
			for _, p := range paths {
				// Straight through the listener's handler: the line is written
				// before ServeHTTP returns.
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, p, nil))
				if p != "/nope" && rec.Code != http.StatusOK {
					t.Fatalf("GET %s: status %d", p, rec.Code)
				}
			}
			var logged []string
			for _, line := range strings.Split(logs.String(), "\n") {
				var rec struct {
					Msg       string   `json:"msg"`
					Path      string   `json:"path"`
					LatencyMS *float64 `json:"latency_ms"`
					Latency   any      `json:"latency"`
				}
				if json.Unmarshal([]byte(line), &rec) != nil || rec.Msg != "request" {
					continue
				}
				if rec.LatencyMS == nil || *rec.LatencyMS < 0 || rec.Latency != nil {
					t.Errorf("request line without a latency_ms number: %s", line)
				}
				logged = append(logged, rec.Path)
			}
			if !slices.Equal(logged, tc.want) {
				t.Errorf("log.access %s logged %v, want %v", tc.mode, logged, tc.want)
			}
		})
	}
}
