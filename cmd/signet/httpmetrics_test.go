package main

import (
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/signet-auth/signet/clients"
	"github.com/signet-auth/signet/config"
)

// scrape returns the /metrics text at base.
func scrape(t *testing.T, base string) (int, string) {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestServe_HTTPMetrics: requests are counted by route template and
// status class, never by an id from the URL; tokens for the admin API are
// counted apart from client traffic.
func TestServe_HTTPMetrics(t *testing.T) {
	t.Setenv("SIGNET_KEYS_ALGORITHMS", "ES256,EdDSA") // for init, as testConfig
	c := testConfig(t, nil)
	out, _, err := initCmd(t, "--data-dir", c.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	admin := decodeSecret(t, out)
	m, _ := startMain(t, c, nil)
	_, secret, err := m.Server.Clients().Create(t.Context(), clients.Client{ID: "billing", Audiences: []string{"https://billing.internal"}})
	if err != nil {
		t.Fatal(err)
	}

	// One admin exchange, one client token, one wrong secret.
	if _, err := issueToken(t.Context(), m.URL(), admin.ClientID, admin.ClientSecret); err != nil {
		t.Fatal(err)
	}
	post := func(id, secret string) int {
		req, _ := http.NewRequest(http.MethodPost, m.URL()+"/oauth2/token", strings.NewReader(url.Values{"grant_type": {"client_credentials"}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(id, secret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if s := post("billing", secret); s != http.StatusOK {
		t.Fatalf("client token: status %d", s)
	}
	if s := post("billing", "wrong"); s != http.StatusUnauthorized {
		t.Fatalf("wrong secret: status %d", s)
	}
	for _, p := range []string{"/admin/clients/secret-client-id-in-path", "/no/such/route-with-an-id-42"} {
		resp, err := http.Get(m.URL() + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}

	_, text := scrape(t, m.URL())
	for _, want := range []string{
		`signet_http_requests_total{code="2xx",route="/oauth2/token"} 2`,
		`signet_http_requests_total{code="4xx",route="/oauth2/token"} 1`,
		`signet_http_requests_total{code="4xx",route="/admin/clients/:id"} 1`,
		`signet_http_requests_total{code="4xx",route="unmatched"} 1`,
		`signet_http_request_duration_seconds_count{route="/oauth2/token"} 3`,
		`signet_tokens_issued_total{alg="ES256",grant="client_credentials"} 1`,
		`signet_admin_tokens_issued_total{alg="ES256"} 1`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	for _, leak := range []string{"secret-client-id-in-path", "route-with-an-id-42", `client_id=`, `"billing"`} {
		if strings.Contains(text, leak) {
			t.Errorf("metrics contain %q: ids must not be labels", leak)
		}
	}
}

// TestServe_MetricsListener: with http.admin_addr set, /metrics is served
// on the admin listener only; http.metrics_addr moves it to a listener of
// its own, or back to the public one.
func TestServe_MetricsListener(t *testing.T) {
	t.Run("admin listener", func(t *testing.T) {
		m, _ := startMain(t, testConfig(t, func(c *config.Config) { c.HTTP.AdminAddr = "127.0.0.1:0" }), nil)
		if s, _ := scrape(t, m.URL()); s != http.StatusNotFound {
			t.Errorf("public /metrics: status %d, want 404", s)
		}
		if s, text := scrape(t, m.AdminURL()); s != http.StatusOK || !strings.Contains(text, "signet_keys{") {
			t.Errorf("admin /metrics: status %d", s)
		}
		if m.MetricsURL() != "" {
			t.Errorf("a metrics listener at %s without http.metrics_addr", m.MetricsURL())
		}
	})
	t.Run("own listener", func(t *testing.T) {
		m, _ := startMain(t, testConfig(t, func(c *config.Config) {
			c.HTTP.AdminAddr = "127.0.0.1:0"
			c.HTTP.MetricsAddr = "127.0.0.1:0"
		}), nil)
		for name, base := range map[string]string{"public": m.URL(), "admin": m.AdminURL()} {
			if s, _ := scrape(t, base); s != http.StatusNotFound {
				t.Errorf("%s /metrics: status %d, want 404", name, s)
			}
		}
		if m.MetricsURL() == "" {
			t.Fatal("no metrics listener")
		}
		if s, text := scrape(t, m.MetricsURL()); s != http.StatusOK || !strings.Contains(text, "signet_keys{") {
			t.Errorf("metrics listener /metrics: status %d", s)
		}
		resp, err := http.Get(m.MetricsURL() + "/.well-known/jwks.json")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("metrics listener serves the JWKS: status %d", resp.StatusCode)
		}
	})
	t.Run("public on purpose", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close() // free for the server: an explicit port, as an operator writes it
		m, _ := startMain(t, testConfig(t, func(c *config.Config) {
			c.HTTP.Addr = addr
			c.HTTP.AdminAddr = "127.0.0.1:0"
			c.HTTP.MetricsAddr = addr
		}), nil)
		// (The admin listener answers every public route too, so it has
		// /metrics as well.)
		if s, _ := scrape(t, m.URL()); s != http.StatusOK {
			t.Errorf("public /metrics with http.metrics_addr = http.addr: status %d", s)
		}
		if m.MetricsURL() != "" {
			t.Errorf("a metrics listener at %s although http.metrics_addr is http.addr", m.MetricsURL())
		}
	})
}

func TestMetricsOn(t *testing.T) {
	for _, tc := range []struct {
		h    config.HTTP
		want string
	}{
		{config.HTTP{Addr: "0.0.0.0:8080"}, metricsPublic},
		{config.HTTP{Addr: "0.0.0.0:8080", AdminAddr: "127.0.0.1:8081"}, metricsAdmin},
		{config.HTTP{Addr: "0.0.0.0:8080", AdminAddr: "127.0.0.1:8081", MetricsAddr: "127.0.0.1:8081"}, metricsAdmin},
		{config.HTTP{Addr: "0.0.0.0:8080", AdminAddr: "127.0.0.1:8081", MetricsAddr: "0.0.0.0:8080"}, metricsPublic},
		{config.HTTP{Addr: "0.0.0.0:8080", MetricsAddr: "127.0.0.1:9090"}, metricsOwn},
		{config.HTTP{Addr: "127.0.0.1:0", MetricsAddr: "127.0.0.1:0"}, metricsOwn},
	} {
		if got := metricsOn(tc.h); got != tc.want {
			t.Errorf("metricsOn(%+v) = %s, want %s", tc.h, got, tc.want)
		}
	}
}
