package main

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/signet-auth/signet/authority"
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
	_, secret, err := m.Server.Clients().Create(t.Context(), authority.Client{ID: "billing", Audiences: []string{"https://billing.internal"}})
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
