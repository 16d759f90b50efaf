package main

import (
	"bytes"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestRun_Health: `signet health` exits 0 against a ready server, found by
// --server or by the configured listen address (a wildcard address is
// dialled over loopback), and 1 against a server that is not ready or not
// there, saying why.
func TestRun_Health(t *testing.T) {
	m, _ := startMain(t, testConfig(t, nil), nil)
	_, port, _ := net.SplitHostPort(m.Addr())
	notReady := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/readyz" {
			http.NotFound(w, r)
			return
		}
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(`{"status":"unavailable","reason":"keys: no active signing key for RS256"}`))
	}))
	defer notReady.Close()
	gone := httptest.NewServer(http.NotFoundHandler())
	gone.Close()

	tests := []struct {
		name  string
		args  []string
		code  int
		wants []string
	}{
		{"--server", []string{"--server", m.URL()}, 0, []string{"/readyz: ready"}},
		{"--server with slash", []string{"--server", m.URL() + "/"}, 0, []string{"ready"}},
		{"--addr from config", []string{"--addr", m.Addr()}, 0, []string{"ready"}},
		{"wildcard addr", []string{"--addr", "0.0.0.0:" + port}, 0, []string{"127.0.0.1:" + port}},
		{"not ready", []string{"--server", notReady.URL}, 1, []string{"not ready", "503", "no active signing key"}},
		{"nothing listening", []string{"--server", gone.URL}, 1, []string{"signet health", "refused"}},
		{"bad url", []string{"--server", "localhost:8080"}, 2, []string{"--server", "http://127.0.0.1:8080"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := run(t.Context(), append([]string{"health"}, tc.args...), &out, &errOut)
			if code != tc.code {
				t.Fatalf("exit %d, want %d; stdout %q stderr %q", code, tc.code, out.String(), errOut.String())
			}
			for _, want := range tc.wants {
				if !strings.Contains(out.String()+errOut.String(), want) {
					t.Errorf("output %q %q does not contain %q", out.String(), errOut.String(), want)
				}
			}
		})
	}
}
