package config

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/signet-auth/signet/clients"
	"github.com/signet-auth/signet/registration"
)

// DynamicClients is the dynamic_clients: section: clients that arrive on
// their own (package registration).
type DynamicClients struct {
	Registration      DynamicRegistration `yaml:"registration"`
	MetadataDocuments MetadataDocuments   `yaml:"metadata_documents"`
	GrantTypes        []string            `yaml:"grant_types"`
	AuthMethods       []string            `yaml:"auth_methods"`
	Scopes            []string            `yaml:"scopes"`
	DefaultScopes     []string            `yaml:"default_scopes"`
	Audiences         []string            `yaml:"audiences"`
	PrivateUseSchemes bool                `yaml:"private_use_schemes"`

	policy registration.Policy // filled in by Validate
}

// DynamicRegistration is dynamic_clients.registration (RFC 7591).
type DynamicRegistration struct {
	Enabled                bool   `yaml:"enabled"`
	InitialAccessTokenFile string `yaml:"initial_access_token_file"`
	PerIP                  int    `yaml:"per_ip"`
	Window                 string `yaml:"window"`
	MaxClients             int    `yaml:"max_clients"`
	UnusedTTL              string `yaml:"unused_ttl"`
}

// MetadataDocuments is dynamic_clients.metadata_documents.
type MetadataDocuments struct {
	Enabled    bool     `yaml:"enabled"`
	AllowHosts []string `yaml:"allow_hosts"`
	DenyHosts  []string `yaml:"deny_hosts"`
	// Fetches and FetchesPerIP bound the documents not in the cache that
	// are fetched per FetchWindow, over all addresses and per address.
	Fetches      int    `yaml:"fetches"`
	FetchesPerIP int    `yaml:"fetches_per_ip"`
	FetchWindow  string `yaml:"fetch_window"`
}

func defaultDynamicClients() DynamicClients {
	return DynamicClients{
		Registration:      DynamicRegistration{PerIP: 10, Window: "1h", MaxClients: 1000, UnusedTTL: "720h"},
		MetadataDocuments: MetadataDocuments{AllowHosts: []string{}, DenyHosts: []string{}, Fetches: 100, FetchesPerIP: 10, FetchWindow: "1m"},
		GrantTypes:        []string{clients.GrantAuthorizationCode, clients.GrantRefreshToken},
		AuthMethods:       []string{clients.AuthNone, clients.AuthPrivateKeyJWT},
		Scopes:            []string{}, DefaultScopes: []string{}, Audiences: []string{},
		PrivateUseSchemes: true,
	}
}

// validateDynamicClients checks the dynamic_clients: section.
func (c *Config) validateDynamicClients(bad func(field, format string, args ...any)) {
	d := &c.DynamicClients
	r := &d.Registration
	p := registration.Policy{Registration: r.Enabled, MetadataDocuments: d.MetadataDocuments.Enabled,
		GrantTypes: d.GrantTypes, AuthMethods: d.AuthMethods, Scopes: d.Scopes, DefaultScopes: d.DefaultScopes,
		Audiences: d.Audiences, PrivateUseSchemes: d.PrivateUseSchemes, PerIP: r.PerIP, MaxClients: r.MaxClients,
		AllowHosts: d.MetadataDocuments.AllowHosts, DenyHosts: d.MetadataDocuments.DenyHosts,
		Fetches: d.MetadataDocuments.Fetches, FetchesPerIP: d.MetadataDocuments.FetchesPerIP}
	for _, f := range []struct {
		name, v, example string
		dst              *time.Duration
		min              time.Duration
	}{{"dynamic_clients.registration.window", r.Window, "1h", &p.Window, time.Second}, {"dynamic_clients.registration.unused_ttl", r.UnusedTTL, "720h", &p.UnusedTTL, time.Hour},
		{"dynamic_clients.metadata_documents.fetch_window", d.MetadataDocuments.FetchWindow, "1m", &p.FetchWindow, time.Second}} {
		v, err := time.ParseDuration(f.v)
		switch {
		case err != nil:
			bad(f.name, "%q: expected a duration such as %s", f.v, f.example)
		case v < f.min:
			bad(f.name, "%s: expected at least %s, such as %s", f.v, f.min, f.example)
		default:
			*f.dst = v
		}
	}
	if r.PerIP < 1 && r.PerIP != -1 {
		bad("dynamic_clients.registration.per_ip", "%d: expected registrations per address per window (such as 10), or -1 for no limit", r.PerIP)
	}
	for _, f := range []struct {
		name string
		v    int
	}{{"dynamic_clients.metadata_documents.fetches", d.MetadataDocuments.Fetches}, {"dynamic_clients.metadata_documents.fetches_per_ip", d.MetadataDocuments.FetchesPerIP}} {
		if f.v < 1 && f.v != -1 {
			bad(f.name, "%d: expected documents not yet cached fetched per fetch_window (such as 100 in all, 10 per address), or -1 for no limit", f.v)
		}
	}
	if r.MaxClients < 1 && r.MaxClients != -1 {
		bad("dynamic_clients.registration.max_clients", "%d: expected the most dynamic clients to keep (such as 1000), or -1 for no cap", r.MaxClients)
	}
	if r.InitialAccessTokenFile != "" {
		if _, err := os.Stat(r.InitialAccessTokenFile); err != nil {
			bad("dynamic_clients.registration.initial_access_token_file", "%q: %v", r.InitialAccessTokenFile, err)
		}
	}
	if err := p.Check(); err != nil {
		for _, line := range strings.Split(err.Error(), "\n") {
			field, problem, _ := strings.Cut(line, ": ")
			bad("dynamic_clients."+field, "%s", problem)
		}
	}
	d.policy = p
}

// RegistrationPolicy is the policy the dynamic_clients: section
// describes, with the initial access token read from its file.
func (c *Config) RegistrationPolicy() (registration.Policy, error) {
	p := c.DynamicClients.policy
	if f := c.DynamicClients.Registration.InitialAccessTokenFile; f != "" {
		b, err := os.ReadFile(f)
		if err != nil {
			return p, fmt.Errorf("dynamic_clients.registration.initial_access_token_file: %w", err)
		}
		tok := strings.TrimSpace(string(b))
		if len(tok) < 32 {
			return p, fmt.Errorf("dynamic_clients.registration.initial_access_token_file %s: the token must be at least 32 characters (such as the output of openssl rand -base64 32)", f)
		}
		p.InitialAccessTokenHash = clients.HashToken(tok)
	}
	return p, nil
}
