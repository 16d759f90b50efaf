package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/signet-auth/signet/clients"
)

// TestClientsUpdate_EveryPatchField: `signet clients update` changes every
// field that PATCH /admin/clients/{id} can change (issue 21: there was no
// command to change a client's redirect URIs, nor its scopes, audiences,
// lifetimes or name). Each field of clients.Patch must have a row here, so
// a field added to the admin API without its flag fails this test. Each
// row runs the real command on a bbolt data directory and reads the client
// back with `clients get --json`; lists are replaced, and ” empties them.
func TestClientsUpdate_EveryPatchField(t *testing.T) {
	t.Setenv("SIGNET_KEYS_ALGORITHMS", "ES256,EdDSA")
	t.Run("offline", func(t *testing.T) { everyPatchField(t, "--data-dir", t.TempDir()) })
	t.Run("admin API", func(t *testing.T) {
		c := testConfig(t, nil)
		out, _, err := initCmd(t, "--data-dir", c.DataDir)
		if err != nil {
			t.Fatal(err)
		}
		admin := decodeSecret(t, out)
		m, _ := startMain(t, c, nil)
		t.Setenv("SIGNET_CLIENT_ID", admin.ClientID)
		t.Setenv("SIGNET_CLIENT_SECRET", admin.ClientSecret)
		everyPatchField(t, "--server", m.URL())
	})
}

// everyPatchField runs the rows with where (--data-dir DIR or --server URL).
func everyPatchField(t *testing.T, where ...string) {
	cmd := func(args ...string) error {
		t.Helper()
		_, _, err := clientsCmd(t, append(args, where...)...)
		return err
	}
	jwksFile := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(jwksFile, []byte(`{"keys":[{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","kid":"k1"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := cmd("create", "--id", "app", "--audience", "api", "--audience", "api2",
		"--grant", "authorization_code", "--grant", "refresh_token", "--grant", "client_credentials",
		"--scope", "openid read write", "--redirect-uri", "https://app.example/cb", "--post-logout-redirect-uri", "https://app.example/bye"); err != nil {
		t.Fatal(err)
	}
	get := func() clients.Client {
		t.Helper()
		out, _, err := clientsCmd(t, append([]string{"get", "app", "--json"}, where...)...)
		if err != nil {
			t.Fatal(err)
		}
		var list []clients.Client
		if err := json.Unmarshal([]byte(out), &list); err != nil || len(list) != 1 {
			t.Fatalf("%v %q", err, out)
		}
		return list[0]
	}
	rows := []struct {
		field string // clients.Patch's JSON name
		args  []string
		check func(c clients.Client) bool
	}{
		{"grant_types", []string{"--grant", "authorization_code refresh_token"}, func(c clients.Client) bool {
			return slices.Equal(c.GrantTypes, []string{"authorization_code", "refresh_token"})
		}},
		{"default_scopes", []string{"--default-scope", "read"}, func(c clients.Client) bool { return slices.Equal(c.DefaultScopes, []string{"read"}) }},
		{"scopes", []string{"--scope", "openid read"}, func(c clients.Client) bool { return slices.Equal(c.Scopes, []string{"openid", "read"}) }},
		{"audiences", []string{"--audience", "api2", "--audience", "api"}, func(c clients.Client) bool { return slices.Equal(c.Audiences, []string{"api2", "api"}) }},
		{"default_audience", []string{"--default-audience", "api2"}, func(c clients.Client) bool { return c.DefaultAudience == "api2" }},
		{"signing_alg", []string{"--alg", "EdDSA"}, func(c clients.Client) bool { return c.SigningAlg == "EdDSA" }},
		{"access_token_ttl", []string{"--ttl", "7m"}, func(c clients.Client) bool { return time.Duration(c.AccessTokenTTL) == 7*time.Minute }},
		{"extra_claims", []string{"--claim", "tenant=acme", "--claim", "tier=3"}, func(c clients.Client) bool {
			return string(c.ExtraClaims["tenant"]) == `"acme"` && string(c.ExtraClaims["tier"]) == "3"
		}},
		{"disabled", []string{"--disabled"}, func(c clients.Client) bool { return c.Disabled }},
		{"refresh_idle_ttl", []string{"--refresh-idle", "1h"}, func(c clients.Client) bool { return time.Duration(c.RefreshIdleTTL) == time.Hour }},
		{"refresh_absolute_ttl", []string{"--refresh-absolute", "24h"}, func(c clients.Client) bool { return time.Duration(c.RefreshAbsoluteTTL) == 24*time.Hour }},
		{"refresh_reuse_grace", []string{"--refresh-reuse-grace", "5s"}, func(c clients.Client) bool { return time.Duration(c.RefreshReuseGrace) == 5*time.Second }},
		{"refresh_token_cookie", []string{"--refresh-cookie"}, func(c clients.Client) bool { return c.RefreshTokenCookie }},
		{"introspect", []string{"--introspect"}, func(c clients.Client) bool { return c.Introspect }},
		{"redirect_uris", []string{"--redirect-uri", "https://app.example/new", "--redirect-uri", "https://app.example/other"}, func(c clients.Client) bool {
			return slices.Equal(c.RedirectURIs, []string{"https://app.example/new", "https://app.example/other"})
		}},
		{"post_logout_redirect_uris", []string{"--post-logout-redirect-uri", ""}, func(c clients.Client) bool { return len(c.PostLogoutRedirectURIs) == 0 }},
		{"first_party", []string{"--first-party"}, func(c clients.Client) bool { return c.FirstParty }},
		{"application_type", []string{"--application-type", "native"}, func(c clients.Client) bool { return c.ApplicationType == "native" }},
		{"id_token_signed_response_alg", []string{"--id-token-alg", "ES256"}, func(c clients.Client) bool { return c.IDTokenSignedResponseAlg == "ES256" }},
		{"require_pkce", []string{"--require-pkce=false"}, func(c clients.Client) bool { return c.RequirePKCE != nil && !*c.RequirePKCE }},
		{"client_name", []string{"--name", "The App"}, func(c clients.Client) bool { return c.ClientName == "The App" }},
		{"require_second_factor", []string{"--require-second-factor"}, func(c clients.Client) bool { return c.RequireSecondFactor }},
		{"token_endpoint_auth_methods", []string{"--auth-method", "private_key_jwt", "--jwks-uri", "https://app.example/jwks.json"}, func(c clients.Client) bool {
			return slices.Equal(c.AuthMethods, []string{"private_key_jwt"})
		}},
		{"jwks", []string{"--jwks-uri", "", "--jwks-file", jwksFile}, func(c clients.Client) bool {
			return strings.Contains(string(c.JWKS), `"k1"`) && c.JWKSURI == ""
		}},
		{"token_endpoint_auth_signing_algs", []string{"--auth-signing-alg", "EdDSA"}, func(c clients.Client) bool { return slices.Equal(c.AssertionAlgs, []string{"EdDSA"}) }},
		{"jwks_uri", []string{"--jwks-file", "", "--jwks-uri", "https://app.example/other.json"}, func(c clients.Client) bool {
			return c.JWKSURI == "https://app.example/other.json" && len(c.JWKS) == 0
		}},
		{"token_exchange_audiences", []string{"--grant", "authorization_code refresh_token " + clients.GrantTokenExchange, "--exchange-audience", "api"}, func(c clients.Client) bool { return slices.Equal(c.ExchangeAudiences, []string{"api"}) }},
		{"dpop_bound_access_tokens", []string{"--dpop-bound"}, func(c clients.Client) bool { return c.DPoPBoundAccessTokens }},
		{"federated_identities", []string{"--federated", "https://ci.example=repo:acme/app:*"}, func(c clients.Client) bool {
			return len(c.Federated) == 1 && c.Federated[0].Subject == "repo:acme/app:*"
		}},
		{"backchannel_logout_uri", []string{"--backchannel-logout-uri", "https://app.example/bc"}, func(c clients.Client) bool { return c.BackchannelLogoutURI == "https://app.example/bc" }},
		{"backchannel_logout_session_required", []string{"--backchannel-logout-session-required"}, func(c clients.Client) bool { return c.BackchannelLogoutSessionRequired }},
	}

	covered := map[string]bool{}
	for _, r := range rows {
		covered[r.field] = true
	}
	pt := reflect.TypeFor[clients.Patch]()
	for i := range pt.NumField() {
		name, _, _ := strings.Cut(pt.Field(i).Tag.Get("json"), ",")
		if !covered[name] {
			t.Errorf("clients.Patch field %s (%s) has no row: give `signet clients update` a flag for it", pt.Field(i).Name, name)
		}
	}

	for _, r := range rows {
		before := get()
		if r.check(before) {
			t.Fatalf("%s: the check already holds before the update; the row proves nothing", r.field)
		}
		args := append([]string{"update", "app"}, r.args...)
		if err := cmd(args...); err != nil {
			t.Fatalf("%s: clients %s: %v", r.field, strings.Join(args, " "), err)
		}
		if after := get(); !r.check(after) {
			t.Errorf("%s: after clients %s the client is %+v", r.field, strings.Join(args, " "), after)
		}
	}

	// Only the flags given change anything: an update of the name leaves
	// the lists as they are.
	before := get()
	if err := cmd("update", "app", "--name", "Renamed"); err != nil {
		t.Fatal(err)
	}
	after := get()
	if after.ClientName != "Renamed" || !slices.Equal(after.RedirectURIs, before.RedirectURIs) || !slices.Equal(after.Scopes, before.Scopes) ||
		!reflect.DeepEqual(after.ExtraClaims, before.ExtraClaims) || after.Disabled != before.Disabled {
		t.Errorf("an update of the name changed more: before %+v\nafter %+v", before, after)
	}
	// '' removes the extra claims; a flag update cannot give is refused
	// with a usage error, not silently ignored.
	if err := cmd("update", "app", "--claim", ""); err != nil {
		t.Fatal(err)
	}
	if c := get(); len(c.ExtraClaims) != 0 {
		t.Errorf("--claim '' left %v", c.ExtraClaims)
	}
	if err := cmd("update", "app", "--public"); err == nil {
		t.Errorf("update --public (a client's kind cannot change) was accepted")
	}
}
