package main

import (
	"net/http"
	"strings"
	"testing"

	"github.com/signet-auth/signet/config"
)

// TestServe_AdminListenerHeaders: every answer of the admin listener, also
// for paths net/http's ServeMux would redirect or clean, comes from the
// authority server: JSON with X-Content-Type-Options: nosniff, no HTML
// redirect page; and the /admin answers say no-store.
func TestServe_AdminListenerHeaders(t *testing.T) {
	c := testConfig(t, func(c *config.Config) { c.HTTP.AdminAddr = "127.0.0.1:0" })
	m, _ := startMain(t, c, nil)
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, base := range []string{m.AdminURL(), m.URL()} {
		for _, p := range []string{"/admin", "/admin/", "/admin/keys", "//admin/keys", "/admin/../healthz", "/admin/./keys", "/oauth2/token", "/nope", "/healthz"} {
			req, err := http.NewRequest(http.MethodGet, base+p, nil)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode >= 300 && resp.StatusCode < 400 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") ||
				resp.Header.Get("X-Content-Type-Options") != "nosniff" {
				t.Errorf("GET %s%s = %d, Content-Type %q, X-Content-Type-Options %q; want a JSON answer with nosniff", base, p, resp.StatusCode,
					resp.Header.Get("Content-Type"), resp.Header.Get("X-Content-Type-Options"))
			}
			if strings.HasPrefix(p, "/admin/") && resp.Header.Get("Cache-Control") != "no-store" {
				t.Errorf("GET %s%s = %d, Cache-Control %q, want no-store", base, p, resp.StatusCode, resp.Header.Get("Cache-Control"))
			}
		}
	}
}
