package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
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
	"github.com/signet-auth/signet/datadir"
	"github.com/signet-auth/signet/storage/etcd/etcdtest"
)

// TestReplicas_Etcd_DPoPNonce: with dpop.nonce, a DPoP token request
// without a nonce is answered use_dpop_nonce with a DPoP-Nonce header by
// signet serve, and the nonce one replica hands out is taken by the other
// (the nonces are keyed from the shared KEK); a replica with another KEK
// refuses it.
func TestReplicas_Etcd_DPoPNonce(t *testing.T) {
	cl := etcdtest.Start(t, etcdtest.Options{})
	kek := newKEK(t)
	nonces := func(c *config.Config) { c.Issuer = "http://signet.test"; c.DPoP.Nonce = true }
	a, _ := startEtcdReplica(t, cl, "a", "nonce/", kek, nonces)
	b, _ := startEtcdReplica(t, cl, "b", "nonce/", kek, nonces)
	cfg := writeConfig(t, fmt.Sprintf("data_dir: %s\nstorage:\n  backend: etcd\n  etcd:\n    endpoints: [%s]\n    prefix: nonce/\nkeys:\n  algorithms: [ES256, EdDSA]\n",
		t.TempDir(), strings.Join(cl.Endpoints(), ", ")))
	out, _, err := clientsCmd(t, "create", "--config", cfg, "--id", "svc", "--grant", "client_credentials", "--scope", "read", "--audience", "api")
	if err != nil {
		t.Fatal(err)
	}
	svc := decodeSecret(t, out)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tokenURL := "http://signet.test/oauth2/token"
	post := func(m *Main, nonce string) (int, http.Header, map[string]any) {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, m.URL()+"/oauth2/token",
			strings.NewReader(url.Values{"grant_type": {"client_credentials"}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("DPoP", nonceProof(t, key, tokenURL, nonce))
		req.SetBasicAuth(svc.ClientID, svc.ClientSecret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&body)
		return resp.StatusCode, resp.Header, body
	}
	var nonce string
	for deadline := time.Now().Add(5 * time.Second); ; { // bounded wait for A's watch to see the client
		code, hdr, body := post(a, "")
		if code == http.StatusBadRequest && body["error"] == "use_dpop_nonce" && hdr.Get("DPoP-Nonce") != "" {
			nonce = hdr.Get("DPoP-Nonce")
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("proof without a nonce at A: %d %v", code, body)
		}
		time.Sleep(10 * time.Millisecond)
	}
	for deadline := time.Now().Add(5 * time.Second); ; {
		code, _, body := post(b, nonce)
		if code == http.StatusOK && body["token_type"] == "DPoP" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("A's nonce at B: %d %v, want a DPoP token", code, body)
		}
		time.Sleep(10 * time.Millisecond)
	}

	// A server with another KEK (its own data directory) hands out other nonces.
	c := testConfig(t, func(c *config.Config) { c.DPoP.Nonce = true })
	other, _ := startMain(t, c, nil)
	b2, err := os.ReadFile(filepath.Join(c.DataDir, datadir.AdminCredentialsFile))
	if err != nil {
		t.Fatal(err)
	}
	var admin datadir.AdminCredentials
	_ = json.Unmarshal(b2, &admin)
	code, _, body := postAs(t, other.URL()+"/oauth2/token", admin, nonceProof(t, key, other.Config.Issuer+"/oauth2/token", nonce))
	if code != http.StatusBadRequest || body["error"] != "use_dpop_nonce" {
		t.Fatalf("A's nonce at a server with another KEK: %d %v, want use_dpop_nonce", code, body)
	}

	path := filepath.Join(t.TempDir(), "c.yaml")
	_ = os.WriteFile(path, []byte("dpop:\n  nonce: true\n  nonce_period: 2s\n"), 0o600)
	bad := config.Default()
	if err := config.LoadFile(&bad, path); err != nil {
		t.Fatal(err)
	}
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "dpop.nonce_period") {
		t.Errorf("nonce_period 2s: Validate = %v, want a dpop.nonce_period problem", err)
	}
}

// postAs sends a client_credentials request as client with proof.
func postAs(t *testing.T, u string, client datadir.AdminCredentials, proof string) (int, http.Header, map[string]any) {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, u, strings.NewReader("grant_type=client_credentials"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("DPoP", proof)
	req.SetBasicAuth(client.ClientID, client.ClientSecret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, resp.Header, body
}

// nonceProof is an ES256 DPoP proof for POST u with nonce ("" for none).
func nonceProof(t *testing.T, key *ecdsa.PrivateKey, u, nonce string) string {
	t.Helper()
	pub, _ := jwk.FromRaw(key.Public())
	h := jws.NewHeaders()
	_ = h.Set(jws.TypeKey, "dpop+jwt")
	_ = h.Set(jws.JWKKey, pub)
	var jti [12]byte
	_, _ = rand.Read(jti[:])
	cl := map[string]any{"jti": hex.EncodeToString(jti[:]), "htm": "POST", "htu": u, "iat": time.Now().Unix()}
	if nonce != "" {
		cl["nonce"] = nonce
	}
	payload, _ := json.Marshal(cl)
	out, err := jws.Sign(payload, jws.WithKey(jwa.ES256, key, jws.WithProtectedHeaders(h)))
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}
