package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/signet-auth/signet/authority"
	"github.com/signet-auth/signet/keys"
)

// devLine finds the log record that announces the demo client.
func devLine(t *testing.T, logs string) map[string]string {
	t.Helper()
	for _, line := range strings.Split(logs, "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) != nil || !strings.HasPrefix(rec["msg"].(string), "dev mode: demo client created") {
			continue
		}
		out := map[string]string{}
		for k, v := range rec {
			if s, ok := v.(string); ok {
				out[k] = s
			}
		}
		return out
	}
	return nil
}

func metricsBody(t *testing.T, base string) string {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// TestServe_Dev: --dev on an empty store logs a demo client whose curl line
// works as printed; the token endpoint feeds the Prometheus metrics.
func TestServe_Dev(t *testing.T) {
	c := testConfig(t, func(c *Config) { c.Dev = true })
	m, logs := startMain(t, c, nil)
	c.Issuer = m.URL() // the curl line targets the issuer; point it at the listener
	rec := devLine(t, logs.String())
	if rec == nil {
		t.Fatalf("no demo client in the logs:\n%s", logs)
	}
	if rec["client_id"] != authority.DemoClientID || len(rec["client_secret"]) != 43 {
		t.Fatalf("demo client record = %v", rec)
	}
	// The curl line must hold what a user needs: Basic credentials, grant, scope, endpoint.
	for _, part := range []string{"-u demo:" + rec["client_secret"], "grant_type=client_credentials", "scope=" + authority.DemoScope, "/oauth2/token"} {
		if !strings.Contains(rec["try"], part) {
			t.Errorf("curl line %q lacks %q", rec["try"], part)
		}
	}
	// Do what the curl line does.
	form := url.Values{"grant_type": {"client_credentials"}, "scope": {authority.DemoScope}}
	req, _ := http.NewRequest(http.MethodPost, m.URL()+"/oauth2/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(rec["client_id"], rec["client_secret"])
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !bytes.Contains(body, []byte(`"access_token"`)) {
		t.Fatalf("curl line's request: %d %s", resp.StatusCode, body)
	}
	bad := clientcredentials.Config{ClientID: "demo", ClientSecret: "wrong", TokenURL: m.URL() + "/oauth2/token", AuthStyle: oauth2.AuthStyleInHeader}
	if _, err := bad.Token(t.Context()); err == nil {
		t.Fatal("wrong secret accepted")
	}
	metrics := metricsBody(t, m.URL())
	for _, want := range []string{
		`signet_tokens_issued_total{alg="ES256",grant="client_credentials"} 1`,
		`signet_token_errors_total{error="invalid_client"} 1`,
		`signet_token_request_duration_seconds_count 2`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if strings.Contains(metrics, "demo") {
		t.Error("metrics carry a client id label")
	}

	// A restart in dev mode on a store with clients creates nothing.
	m.Close()
	c.HTTP.Addr = "127.0.0.1:0"
	_, logs2 := startMain(t, c, nil)
	if devLine(t, logs2.String()) != nil || !strings.Contains(logs2.String(), "already has clients") {
		t.Errorf("second dev start created a demo client again:\n%s", logs2)
	}
}

// TestServe_NotDev: without --dev no client is ever created.
func TestServe_NotDev(t *testing.T) {
	m, logs := startMain(t, testConfig(t, nil), nil)
	list, err := m.Server.Clients().List(t.Context())
	if err != nil || len(list) != 0 {
		t.Errorf("clients without --dev = %v, %v; want none", list, err)
	}
	if strings.Contains(logs.String(), "client_secret") {
		t.Error("normal mode logged a client secret")
	}
}

// TestRun_Keys_Online drives keys list/rotate/revoke through the admin API.
func TestRun_Keys_Online(t *testing.T) {
	t.Setenv("SIGNET_KEYS_ALGORITHMS", "ES256")
	c := testConfig(t, func(c *Config) { c.Keys.Algorithms = []string{"ES256"} })
	out, _, err := initCmd(t, "--data-dir", c.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	admin := decodeSecret(t, out)
	m, _ := startMain(t, c, nil)
	t.Setenv("SIGNET_CLIENT_ID", admin.ClientID)
	t.Setenv("SIGNET_CLIENT_SECRET", admin.ClientSecret)

	keysCmd := func(args ...string) []keys.Info {
		t.Helper()
		var stdout, stderr bytes.Buffer
		if err := runKeys(t.Context(), append(args, "--server", m.URL(), "--json"), &stdout, &stderr); err != nil {
			t.Fatalf("keys %v: %v", args, err)
		}
		var infos []keys.Info
		if err := json.Unmarshal(stdout.Bytes(), &infos); err != nil {
			t.Fatalf("keys %v output %q: %v", args, stdout.String(), err)
		}
		return infos
	}
	byState := func(infos []keys.Info) map[keys.State][]string {
		out := map[keys.State][]string{}
		for _, k := range infos {
			out[k.State] = append(out[k.State], k.KID)
		}
		return out
	}
	before := byState(keysCmd("list"))
	if len(before[keys.StateActive]) != 1 || len(before[keys.StatePending]) != 1 {
		t.Fatalf("fresh keys = %v", before)
	}
	var stdout, stderr bytes.Buffer
	err = runKeys(t.Context(), []string{"rotate", "--server", m.URL()}, &stdout, &stderr)
	if err == nil || !strings.Contains(err.Error(), "--force activates it anyway") || strings.Contains(err.Error(), "force=true") || strings.Contains(err.Error(), "authority:") {
		t.Errorf("rotate without --force on a young pending key = %v, want a refusal naming --force", err)
	}
	after := byState(keysCmd("rotate", "--force"))
	if len(after[keys.StateActive]) != 1 || after[keys.StateActive][0] != before[keys.StatePending][0] {
		t.Fatalf("after rotate: %v; want the old pending %s active", after, before[keys.StatePending])
	}
	retired := before[keys.StateActive][0]
	revoked := byState(keysCmd("revoke", retired))
	if len(revoked[keys.StateRevoked]) != 1 || revoked[keys.StateRevoked][0] != retired {
		t.Errorf("after revoke: %v; want %s revoked", revoked, retired)
	}
	set, _, _ := fetchJWKS(t, m.URL())
	if _, ok := kids(set)[retired]; ok {
		t.Error("revoked key still published")
	}
	stdout.Reset()
	if err := runKeys(t.Context(), []string{"list", "--server", m.URL()}, &stdout, &stderr); err != nil || !strings.Contains(stdout.String(), "KID") || !strings.Contains(stdout.String(), "revoked") {
		t.Errorf("table output = %v\n%s", err, stdout.String())
	}
}
