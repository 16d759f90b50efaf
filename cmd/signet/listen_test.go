package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/signet-auth/signet/config"
)

// TestServe_AdminListener: with http.admin_addr, /admin is only on that
// listener (404 on the public one), and the CLI works against it.
func TestServe_AdminListener(t *testing.T) {
	t.Setenv("SIGNET_KEYS_ALGORITHMS", "ES256,EdDSA") // for init, as testConfig
	c := testConfig(t, func(c *config.Config) { c.HTTP.AdminAddr = "127.0.0.1:0" })
	out, _, err := initCmd(t, "--data-dir", c.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	admin := decodeSecret(t, out)
	m, logs := startMain(t, c, nil)
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(logs)
		}
	})
	if m.AdminURL() == "" || m.AdminURL() == m.URL() {
		t.Fatalf("admin URL %q, public %q", m.AdminURL(), m.URL())
	}
	t.Setenv("SIGNET_CLIENT_ID", admin.ClientID)
	t.Setenv("SIGNET_CLIENT_SECRET", admin.ClientSecret)

	ac, err := newAdminClient(t.Context(), m.URL(), "")
	if err != nil {
		t.Fatalf("admin token from the public listener: %v", err)
	}
	if err := ac.Do(t.Context(), http.MethodGet, "/admin/keys", nil, nil); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("GET /admin/keys on the public listener = %v, want 404", err)
	}
	var stdout, stderr bytes.Buffer
	if err := runKeys(t.Context(), []string{"list", "--server", m.AdminURL()}, &stdout, &stderr); err != nil || !strings.Contains(stdout.String(), "active") {
		t.Errorf("keys list against the admin listener = %v\n%s", err, stdout.String())
	}
	// The public endpoints are unchanged on the public listener.
	set, _, _ := fetchJWKS(t, m.URL())
	if set.Len() < 2 {
		t.Errorf("public JWKS has %d keys", set.Len())
	}

	// Issue 16, item 13: the admin listener serves /admin, the token
	// endpoint, /metrics, /healthz and /readyz, and nothing else of the
	// public surface (a JSON 404, as the admin API answers).
	get := func(base, path string) (int, string) {
		t.Helper()
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("Content-Type")
	}
	for _, path := range []string{"/.well-known/jwks.json", "/.well-known/openid-configuration", "/.well-known/oauth-authorization-server",
		"/oauth2/authorize?client_id=x", "/oauth2/revocations", "/oauth2/userinfo", "/oauth2/logout", "/login/password", "/", "/static/signet.css"} {
		status, ctype := get(m.AdminURL(), path)
		if status != http.StatusNotFound || !strings.HasPrefix(ctype, "application/json") {
			t.Errorf("admin listener GET %s = %d %s, want a JSON 404", path, status, ctype)
		}
		if status, _ := get(m.URL(), path); path == "/.well-known/jwks.json" && status != http.StatusOK {
			t.Errorf("public listener GET %s = %d", path, status)
		}
	}
	for _, path := range []string{"/oauth2/introspect", "/oauth2/revoke"} {
		resp, err := http.Post(m.AdminURL()+path, "application/x-www-form-urlencoded", strings.NewReader("token=x"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("admin listener POST %s = %d, want 404", path, resp.StatusCode)
		}
	}
	for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
		if status, _ := get(m.AdminURL(), path); status != http.StatusOK {
			t.Errorf("admin listener GET %s = %d, want 200", path, status)
		}
	}
	if _, err := newAdminClient(t.Context(), m.AdminURL(), ""); err != nil {
		t.Errorf("admin token from the admin listener: %v", err)
	}
}

// TestServe_TrustedProxies: behind a trusted proxy the per-IP limit counts
// the X-Forwarded-For client, so one abusive client does not block the
// others behind the same proxy; untrusted peers cannot spoof the header.
func TestServe_TrustedProxies(t *testing.T) {
	failFrom := func(base, xff string, i int) int {
		form := url.Values{"grant_type": {"client_credentials"}, "client_id": {fmt.Sprintf("nobody-%d", i)}, "client_secret": {"x"}}
		req, _ := http.NewRequest(http.MethodPost, base+"/oauth2/token", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("X-Forwarded-For", xff)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	const perIP = 100 // authority's default per-IP failure limit
	for _, tc := range []struct {
		name    string
		trusted []string
		// status for another forwarded client once the first is limited
		other int
	}{
		{"trusted proxy", []string{"127.0.0.1/32"}, http.StatusUnauthorized},
		{"no trusted proxy", []string{}, http.StatusTooManyRequests},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, _ := startMain(t, testConfig(t, func(c *config.Config) { c.HTTP.TrustedProxies = tc.trusted }), nil)
			for i := range perIP {
				if got := failFrom(m.URL(), "203.0.113.1", i); got != http.StatusUnauthorized {
					t.Fatalf("failure %d = %d, want 401", i, got)
				}
			}
			if got := failFrom(m.URL(), "203.0.113.1", perIP); got != http.StatusTooManyRequests {
				t.Errorf("client A past the limit = %d, want 429", got)
			}
			if got := failFrom(m.URL(), "203.0.113.2", perIP+1); got != tc.other {
				t.Errorf("client B = %d, want %d", got, tc.other)
			}
		})
	}
}

// TestServe_ClientAlgNotLive: a client whose signing algorithm is not live
// (keys.algorithms changed after it was made) gets a clear 400, not a 500.
func TestServe_ClientAlgNotLive(t *testing.T) {
	c := testConfig(t, nil) // ES256 and EdDSA live
	out, _, err := initCmd(t, "--data-dir", c.DataDir, "--config", writeConfig(t, "keys:\n  algorithms: [RS256]\n"))
	if err != nil {
		t.Fatal(err)
	}
	admin := decodeSecret(t, out)
	m, logs := startMain(t, c, nil)
	form := url.Values{"grant_type": {"client_credentials"}}
	req, _ := http.NewRequest(http.MethodPost, m.URL()+"/oauth2/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(admin.ClientID, admin.ClientSecret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var body map[string]string
	_ = json.NewDecoder(resp.Body).Decode(&body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || body["error"] != "unauthorized_client" || !strings.Contains(body["error_description"], "RS256") {
		t.Errorf("token for a client on a dead algorithm = %d %v, want 400 unauthorized_client naming RS256", resp.StatusCode, body)
	}
	if !strings.Contains(logs.String(), "not live") {
		t.Error("the operator is not told in the log")
	}
}

func writeConfig(t *testing.T, yaml string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "signet.yaml")
	if err := os.WriteFile(p, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
