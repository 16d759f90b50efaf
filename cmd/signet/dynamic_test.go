package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/signet-auth/signet/audit"
	"github.com/signet-auth/signet/config"
)

// TestServe_DynamicClients: signet serve with dynamic_clients.registration
// on advertises the endpoint, registers a client carrying the initial
// access token, lists it as dynamic (CLI, table and JSON), and its purge
// job deletes it once unused for unused_ttl.
func TestServe_DynamicClients(t *testing.T) {
	t.Setenv("SIGNET_KEYS_ALGORITHMS", "ES256,EdDSA") // as the test config, for the admin client init makes
	token := strings.Repeat("t", 40)
	tokFile := filepath.Join(t.TempDir(), "iat")
	if err := os.WriteFile(tokFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := testConfig(t, func(c *config.Config) {
		d := &c.DynamicClients
		d.Registration.Enabled, d.Registration.InitialAccessTokenFile, d.Registration.UnusedTTL = true, tokFile, "1h"
		d.Scopes, d.Audiences = []string{"mcp:tools"}, []string{"https://mcp.example/mcp"}
	})
	out, _, err := initCmd(t, "--data-dir", c.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	admin := decodeSecret(t, out)
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	m, _ := startMain(t, c, clock)

	resp, err := http.Get(m.URL() + "/.well-known/oauth-authorization-server")
	if err != nil {
		t.Fatal(err)
	}
	var md map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&md)
	resp.Body.Close()
	if md["registration_endpoint"] != m.Config.Issuer+"/oauth2/register" {
		t.Fatalf("registration_endpoint = %v", md["registration_endpoint"])
	}
	body := `{"client_name":"Tool","redirect_uris":["http://127.0.0.1/cb"],"token_endpoint_auth_method":"none","grant_types":["authorization_code","refresh_token"],"scope":"mcp:tools"}`
	register := func(tok string) (int, map[string]any) {
		req, _ := http.NewRequest(http.MethodPost, m.URL()+"/oauth2/register", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}
	if code, _ := register(""); code != http.StatusUnauthorized {
		t.Fatalf("without the initial access token = %d", code)
	}
	code, reg := register(token)
	if code != http.StatusCreated {
		t.Fatalf("register = %d %v", code, reg)
	}
	id, _ := reg["client_id"].(string)

	t.Setenv("SIGNET_CLIENT_ID", admin.ClientID)
	t.Setenv("SIGNET_CLIENT_SECRET", admin.ClientSecret)
	out, _, err = clientsCmd(t, "list", "--server", m.URL())
	if err != nil || !strings.Contains(out, id) || !strings.Contains(out, "enabled,dynamic") {
		t.Fatalf("list = %v\n%s", err, out)
	}
	out, _, err = clientsCmd(t, "get", "--server", m.URL(), id, "--json")
	if err != nil || !bytes.Contains([]byte(out), []byte(`"dynamic": true`)) {
		t.Fatalf("get --json = %v\n%s", err, out)
	}

	// The admin API's audit events say the client was dynamic too.
	_, other := register(token)
	otherID, _ := other["client_id"].(string)
	if _, _, err := clientsCmd(t, "delete", "--server", m.URL(), otherID); err != nil {
		t.Fatal(err)
	}
	page, err := audit.New(m.Store, nil).Query(t.Context(), audit.Query{})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]string{}
	for _, ev := range page.Events {
		if ev.Target == otherID {
			seen[ev.Action] = ev.Detail
		}
	}
	if !strings.Contains(seen["clients.register"], "dynamic client") || !strings.Contains(seen["clients.delete"], "dynamic client") {
		t.Fatalf("audit of %s = %v", otherID, seen)
	}

	mu.Lock()
	now = now.Add(2 * time.Hour)
	mu.Unlock()
	m.purgeJob(t.Context())
	if _, _, err := clientsCmd(t, "get", "--server", m.URL(), id); err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("get after the purge = %v, want 404", err)
	}
	if _, _, err := clientsCmd(t, "get", "--server", m.URL(), admin.ClientID); err != nil {
		t.Fatalf("the admin client: %v", err)
	}
}
