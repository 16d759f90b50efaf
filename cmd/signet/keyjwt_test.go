package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"

	"github.com/signet-auth/signet/config"
)

// esKey is an ES256 private key with kid, and its public JWK Set.
func esKey(t *testing.T, kid string) (jwk.Key, []byte) {
	t.Helper()
	raw, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	priv, _ := jwk.FromRaw(raw)
	_ = priv.Set(jwk.KeyIDKey, kid)
	pub, _ := priv.PublicKey()
	set := jwk.NewSet()
	_ = set.AddKey(pub)
	b, _ := json.Marshal(set)
	return priv, b
}

// assertionToken asks the server at base (issuer: its issuer) for a client_credentials token with a
// private_key_jwt assertion signed by priv.
func assertionToken(t *testing.T, base, issuer, id string, priv jwk.Key) (int, map[string]any) {
	t.Helper()
	now := time.Now().Unix()
	claims, _ := json.Marshal(map[string]any{"iss": id, "sub": id, "aud": issuer, "exp": now + 60, "iat": now, "jti": priv.KeyID() + "-" + time.Now().Format(time.RFC3339Nano)})
	signed, err := jws.Sign(claims, jws.WithKey(jwa.ES256, priv))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.PostForm(base+"/oauth2/token", url.Values{"grant_type": {"client_credentials"},
		"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {string(signed)}})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, m
}

// TestRun_Clients_PrivateKeyJWT: a client made with `signet clients create
// --jwks-file` gets tokens through `signet serve` with an assertion and no
// secret; `signet clients update --jwks-uri` moves it to a key set URL.
func TestRun_Clients_PrivateKeyJWT(t *testing.T) {
	t.Setenv("SIGNET_KEYS_ALGORITHMS", "ES256")
	c := testConfig(t, nil)
	out, _, err := initCmd(t, "--data-dir", c.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	admin := decodeSecret(t, out)
	m, logs := startMain(t, c, nil)
	t.Setenv("SIGNET_CLIENT_ID", admin.ClientID)
	t.Setenv("SIGNET_CLIENT_SECRET", admin.ClientSecret)

	k1, set1 := esKey(t, "k1")
	file := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(file, set1, 0o600); err != nil {
		t.Fatal(err)
	}
	out, errOut, err := clientsCmd(t, "create", "--server", m.URL(), "--id", "svc", "--audience", "API", "--jwks-file", file, "--auth-signing-alg", "ES256")
	if err != nil {
		t.Fatalf("create: %v %s", err, errOut)
	}
	if strings.Contains(out, "client_secret") || strings.Contains(errOut, "secret") {
		t.Errorf("create printed a secret for a private_key_jwt client: %s %s", out, errOut)
	}
	if status, body := assertionToken(t, m.URL(), m.Config.Issuer, "svc", k1); status != 200 {
		t.Fatalf("token with k1 = %d %v", status, body)
	}

	k2, set2 := esKey(t, "k2")
	keysrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(set2) }))
	defer keysrv.Close()
	out, _, err = clientsCmd(t, "update", "--server", m.URL(), "svc", "--jwks-uri", keysrv.URL+"/jwks.json", "--json")
	if err != nil || !strings.Contains(out, keysrv.URL) || strings.Contains(out, `"jwks":`) {
		t.Fatalf("update --jwks-uri = %v\n%s", err, out)
	}
	if status, body := assertionToken(t, m.URL(), m.Config.Issuer, "svc", k2); status != 200 {
		t.Fatalf("token with k2 from jwks_uri = %d %v", status, body)
	}
	if status, _ := assertionToken(t, m.URL(), m.Config.Issuer, "svc", k1); status != 401 {
		t.Fatalf("token with the replaced k1 = %d, want 401", status)
	}
	if _, _, err := clientsCmd(t, "update", "--server", m.URL(), "svc", "--jwks-uri", "http://keys.example.com/jwks.json"); err == nil || !strings.Contains(err.Error(), "jwks_uri") {
		t.Errorf("update to an http jwks_uri = %v, want a jwks_uri problem", err)
	}
	if _, _, err := clientsCmd(t, "update", "--server", m.URL(), "svc"); err == nil {
		t.Error("update without flags succeeded")
	}
	if strings.Contains(logs.String(), "eyJhbGci") {
		t.Error("server logs contain an assertion")
	}
}

// TestConfig_Outbound: the outbound: and client_auth: fields are checked
// and named.
func TestConfig_Outbound(t *testing.T) {
	for _, tc := range []struct {
		yaml, field string
	}{
		{"outbound:\n  allow_networks: [10.0.0.0]\n", "outbound.allow_networks"},
		{"outbound:\n  timeout: forever\n", "outbound.timeout"},
		{"outbound:\n  max_body_bytes: 10\n", "outbound.max_body_bytes"},
		{"outbound:\n  min_cache: 2h\n  max_cache: 1h\n", "outbound.min_cache"},
		{"outbound:\n  ca_file: /nonexistent/ca.pem\n", "outbound.ca_file"},
		{"client_auth:\n  assertion_max_lifetime: 48h\n", "client_auth.assertion_max_lifetime"},
	} {
		c := config.Default()
		path := filepath.Join(t.TempDir(), "c.yaml")
		_ = os.WriteFile(path, []byte(tc.yaml), 0o600)
		if err := config.LoadFile(&c, path); err != nil {
			t.Fatal(err)
		}
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("%q: Validate = %v, want a problem with %s", tc.yaml, err, tc.field)
		}
	}
}
