package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDynamicClientsConfig: the dynamic_clients: section's errors name the
// field and the fix.
func TestDynamicClientsConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(d *DynamicClients)
		want string
	}{
		{"no audiences", func(d *DynamicClients) { d.Registration.Enabled = true }, "dynamic_clients.audiences: empty"},
		{"admin scope", func(d *DynamicClients) { d.Scopes = []string{"signet:admin"} }, `dynamic_clients.scopes: "signet:admin"`},
		{"client_credentials", func(d *DynamicClients) { d.GrantTypes = []string{"client_credentials"} }, `dynamic_clients.grant_types: "client_credentials"`},
		{"default scope not allowed", func(d *DynamicClients) { d.DefaultScopes = []string{"x"} }, `dynamic_clients.default_scopes: "x" is not in scopes`},
		{"bad host", func(d *DynamicClients) { d.MetadataDocuments.DenyHosts = []string{"https://x"} }, "dynamic_clients.metadata_documents.allow_hosts"},
		{"window", func(d *DynamicClients) { d.Registration.Window = "soon" }, `dynamic_clients.registration.window: "soon"`},
		{"per_ip", func(d *DynamicClients) { d.Registration.PerIP = 0 }, "dynamic_clients.registration.per_ip: 0"},
		{"fetches", func(d *DynamicClients) { d.MetadataDocuments.Fetches = 0 }, "dynamic_clients.metadata_documents.fetches: 0"},
		{"fetches_per_ip", func(d *DynamicClients) { d.MetadataDocuments.FetchesPerIP = -2 }, "dynamic_clients.metadata_documents.fetches_per_ip: -2"},
		{"fetch_window", func(d *DynamicClients) { d.MetadataDocuments.FetchWindow = "1ms" }, "dynamic_clients.metadata_documents.fetch_window: 1ms"},
		{"token file", func(d *DynamicClients) { d.Registration.InitialAccessTokenFile = "/nonexistent/token" }, "dynamic_clients.registration.initial_access_token_file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Default()
			tc.mod(&c.DynamicClients)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
	c := Default()
	c.DynamicClients.Registration.Enabled, c.DynamicClients.Audiences = true, []string{"https://mcp.example/mcp"}
	f := filepath.Join(t.TempDir(), "iat")
	_ = os.WriteFile(f, []byte("short\n"), 0o600)
	c.DynamicClients.Registration.InitialAccessTokenFile = f
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.RegistrationPolicy(); err == nil || !strings.Contains(err.Error(), "at least 32 characters") {
		t.Fatalf("short token: %v", err)
	}
	_ = os.WriteFile(f, []byte(strings.Repeat("k", 40)+"\n"), 0o600)
	p, err := c.RegistrationPolicy()
	if err != nil || !p.Registration || p.InitialAccessTokenHash == nil || p.Window.String() != "1h0m0s" ||
		p.Fetches != 100 || p.FetchesPerIP != 10 || p.FetchWindow != time.Minute {
		t.Fatalf("policy = %+v, %v", p, err)
	}
}
