package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/signet-auth/signet/clients"
	"github.com/signet-auth/signet/config"
	"golang.org/x/oauth2/clientcredentials"
)

type secretOut struct {
	ClientID     string `json:"client_id"`
	ClientSecret string `json:"client_secret"`
}

// clientsCmd runs `signet clients ARGS` and returns stdout, stderr and its error.
func clientsCmd(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := runClients(t.Context(), args, &out, &errOut)
	return out.String(), errOut.String(), err
}

// initCmd runs `signet init ARGS`.
func initCmd(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := runInit(t.Context(), args, &out, &errOut)
	return out.String(), errOut.String(), err
}

func decodeSecret(t *testing.T, out string) secretOut {
	t.Helper()
	var s secretOut
	if err := json.Unmarshal([]byte(out), &s); err != nil || s.ClientID == "" || len(s.ClientSecret) != 43 {
		t.Fatalf("output %q: want {client_id, client_secret} with a 256-bit secret (%v)", out, err)
	}
	return s
}

// TestRun_Init: the first admin client once, never on a store with clients.
func TestRun_Init(t *testing.T) {
	t.Setenv("SIGNET_KEYS_ALGORITHMS", "ES256,EdDSA")
	dir := t.TempDir()
	out, errOut, err := initCmd(t, "--data-dir", dir)
	if err != nil {
		t.Fatalf("init: %v", err)
	}
	if s := decodeSecret(t, out); s.ClientID != "admin" {
		t.Errorf("init client_id = %q, want admin", s.ClientID)
	}
	if !strings.Contains(errOut, "not shown again") {
		t.Errorf("stderr %q: want a warning that the secret is shown once", errOut)
	}
	if _, _, err := initCmd(t, "--data-dir", dir); err == nil || !strings.Contains(err.Error(), "already has clients") {
		t.Fatalf("second init = %v, want 'already has clients'", err)
	}
	out, _, err = clientsCmd(t, "list", "--json", "--data-dir", dir)
	if err != nil {
		t.Fatal(err)
	}
	var list []clients.Client
	if err := json.Unmarshal([]byte(out), &list); err != nil || len(list) != 1 {
		t.Fatalf("list after init: %v %q", err, out)
	}
	want := clients.Client{ID: "admin", GrantTypes: []string{"client_credentials"}, Scopes: []string{"signet:admin"}, Audiences: []string{"signet-admin"}}
	got := list[0]
	if got.ID != want.ID || strings.Join(got.Scopes, " ") != "signet:admin" || strings.Join(got.Audiences, " ") != "signet-admin" ||
		strings.Join(got.GrantTypes, " ") != "client_credentials" || got.SigningAlg != "ES256" {
		t.Errorf("admin client = %+v, want %+v with alg ES256", got, want)
	}
}

// TestRun_Clients_Offline: the whole client lifecycle on a data dir, and
// a clear refusal while a server holds it.
func TestRun_Clients_Offline(t *testing.T) {
	t.Setenv("SIGNET_KEYS_ALGORITHMS", "ES256,EdDSA")
	dir := t.TempDir()
	out, _, err := clientsCmd(t, "create", "--data-dir", dir, "--id", "svc", "--grant", "client_credentials",
		"--scope", "a b", "--audience", "API", "--alg", "EdDSA", "--ttl", "5m", "--claim", "team=payments", "--claim", `level=3`)
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	first := decodeSecret(t, out)
	if first.ClientID != "svc" {
		t.Errorf("client_id = %q", first.ClientID)
	}
	if _, _, err := clientsCmd(t, "create", "--data-dir", dir, "--id", "bad id", "--audience", "API"); err == nil || !strings.Contains(err.Error(), "client_id") {
		t.Errorf("create with a bad id = %v, want an error naming client_id", err)
	}
	if _, _, err := clientsCmd(t, "create", "--data-dir", dir, "--id", "x", "--audience", "API", "--alg", "RS256"); err == nil || !strings.Contains(err.Error(), "signing_alg") {
		t.Errorf("create with an alg that is not live = %v, want an error naming signing_alg", err)
	}
	if _, _, err := clientsCmd(t, "create", "--data-dir", dir); err == nil {
		t.Error("create without --id succeeded")
	}

	out, _, err = clientsCmd(t, "list", "--data-dir", dir)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "CLIENT_ID") || !strings.Contains(out, "svc") || !strings.Contains(out, "a b") || !strings.Contains(out, "EdDSA") {
		t.Errorf("list table:\n%s", out)
	}
	out, _, err = clientsCmd(t, "get", "--json", "--data-dir", dir, "svc")
	if err != nil {
		t.Fatal(err)
	}
	var got []clients.Client
	if err := json.Unmarshal([]byte(out), &got); err != nil || len(got) != 1 || string(got[0].ExtraClaims["level"]) != "3" ||
		string(got[0].ExtraClaims["team"]) != `"payments"` || time.Duration(got[0].AccessTokenTTL) != 5*time.Minute {
		t.Errorf("get --json = %v %s", err, out)
	}

	out, _, err = clientsCmd(t, "rotate-secret", "--data-dir", dir, "--keep-old", "1h", "svc")
	if err != nil {
		t.Fatal(err)
	}
	if second := decodeSecret(t, out); second.ClientSecret == first.ClientSecret || !strings.Contains(out, "previous_secret_expires_at") {
		t.Errorf("rotate-secret output %s", out)
	}
	if _, _, err := clientsCmd(t, "delete", "--data-dir", dir, "svc"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := clientsCmd(t, "get", "--data-dir", dir, "svc"); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("get after delete = %v, want not found", err)
	}
	if _, _, err := clientsCmd(t, "delete", "--data-dir", dir); err == nil {
		t.Error("delete without ID succeeded")
	}

	// While a server holds the store: a clear error, not a hang.
	c := testConfig(t, func(c *config.Config) { c.DataDir = dir })
	startMain(t, c, nil)
	if _, _, err := clientsCmd(t, "list", "--data-dir", dir); err == nil || !strings.Contains(err.Error(), "in use by another signet process") {
		t.Errorf("list on a held store = %v", err)
	}
}

// TestRun_Clients_Online: init offline, start the server, then manage
// clients over the admin API with the admin credentials from the
// environment; the client it creates gets tokens at once.
func TestRun_Clients_Online(t *testing.T) {
	t.Setenv("SIGNET_KEYS_ALGORITHMS", "ES256,EdDSA")
	c := testConfig(t, nil)
	out, _, err := initCmd(t, "--data-dir", c.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	admin := decodeSecret(t, out)
	m, logs := startMain(t, c, nil)

	if _, _, err := clientsCmd(t, "list", "--server", m.URL()); err == nil || !strings.Contains(err.Error(), "SIGNET_CLIENT_ID") {
		t.Errorf("online without credentials = %v, want a hint about SIGNET_CLIENT_ID", err)
	}
	t.Setenv("SIGNET_CLIENT_ID", admin.ClientID)
	t.Setenv("SIGNET_CLIENT_SECRET", "wrong")
	if _, _, err := clientsCmd(t, "list", "--server", m.URL()); err == nil || !strings.Contains(err.Error(), "invalid_client") {
		t.Errorf("online with a wrong secret = %v, want invalid_client", err)
	}
	t.Setenv("SIGNET_CLIENT_SECRET", admin.ClientSecret)

	out, _, err = clientsCmd(t, "create", "--server", m.URL(), "--id", "svc", "--grant", "client_credentials", "--scope", "a b", "--audience", "API")
	if err != nil {
		t.Fatalf("create online: %v", err)
	}
	svc := decodeSecret(t, out)
	cc := clientcredentials.Config{ClientID: svc.ClientID, ClientSecret: svc.ClientSecret, TokenURL: m.URL() + "/oauth2/token", Scopes: []string{"b"}}
	tok, err := cc.Token(t.Context())
	if err != nil {
		t.Fatalf("token for the client created online: %v", err)
	}
	payload, _ := base64.RawURLEncoding.DecodeString(strings.Split(tok.AccessToken, ".")[1])
	var claims map[string]any
	_ = json.Unmarshal(payload, &claims)
	if claims["aud"] != "API" || claims["scope"] != "b" || claims["sub"] != "svc" || claims["iss"] != m.Config.Issuer {
		t.Errorf("claims = %v", claims)
	}

	if _, _, err := clientsCmd(t, "create", "--server", m.URL(), "--id", "svc", "--audience", "API"); err == nil || !strings.Contains(err.Error(), "409") {
		t.Errorf("duplicate create online = %v, want 409", err)
	}
	out, _, err = clientsCmd(t, "list", "--server", m.URL())
	if err != nil || !strings.Contains(out, "svc") || !strings.Contains(out, "admin") {
		t.Fatalf("list online = %v\n%s", err, out)
	}
	out, _, err = clientsCmd(t, "rotate-secret", "--server", m.URL(), "svc")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cc.Token(t.Context()); err == nil {
		t.Error("old secret still works after rotate-secret without --keep-old")
	}
	cc.ClientSecret = decodeSecret(t, out).ClientSecret
	if _, err := cc.Token(t.Context()); err != nil {
		t.Errorf("new secret: %v", err)
	}
	if _, _, err := clientsCmd(t, "delete", "--server", m.URL(), "svc"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := clientsCmd(t, "get", "--server", m.URL(), "svc"); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("get after delete = %v, want 404", err)
	}
	for _, s := range []string{admin.ClientSecret, svc.ClientSecret, cc.ClientSecret, tok.AccessToken} {
		if strings.Contains(logs.String(), s) {
			t.Errorf("server logs contain a secret or token")
		}
	}
}
