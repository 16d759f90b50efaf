package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/signet-auth/signet/config"
	"github.com/signet-auth/signet/storage/etcd/etcdtest"
)

// es256Proof is a DPoP proof (RFC 9449 §4.2) for method and u, signed with
// key, written with the standard library alone.
func es256Proof(t *testing.T, key *ecdsa.PrivateKey, jti, method, u string) string {
	t.Helper()
	enc := base64.RawURLEncoding.EncodeToString
	h, _ := json.Marshal(map[string]any{"typ": "dpop+jwt", "alg": "ES256", "jwk": map[string]string{
		"kty": "EC", "crv": "P-256", "x": enc(key.X.FillBytes(make([]byte, 32))), "y": enc(key.Y.FillBytes(make([]byte, 32))),
	}})
	p, _ := json.Marshal(map[string]any{"jti": jti, "htm": method, "htu": u, "iat": time.Now().Unix()})
	input := enc(h) + "." + enc(p)
	sum := sha256.Sum256([]byte(input))
	r, s, err := ecdsa.Sign(rand.Reader, key, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	return input + "." + enc(append(r.FillBytes(make([]byte, 32)), s.FillBytes(make([]byte, 32))...))
}

// TestReplicas_Etcd_DPoPReplay: signet serve binds a client_credentials
// token to the key of its DPoP proof, and a proof accepted by replica A is
// refused when replayed at replica B (the jti is spent in etcd, not in A's
// memory). The proof names the issuer's token endpoint, whichever replica
// answers.
func TestReplicas_Etcd_DPoPReplay(t *testing.T) {
	cl := etcdtest.Start(t, etcdtest.Options{})
	kek := newKEK(t)
	// A fleet shares one issuer (an unset one would follow each replica's
	// own port).
	sameIssuer := func(c *config.Config) { c.Issuer = "http://signet.test" }
	a, _ := startEtcdReplica(t, cl, "a", "dpop/", kek, sameIssuer)
	b, _ := startEtcdReplica(t, cl, "b", "dpop/", kek, sameIssuer)
	cfg := writeConfig(t, fmt.Sprintf("data_dir: %s\nstorage:\n  backend: etcd\n  etcd:\n    endpoints: [%s]\n    prefix: dpop/\nkeys:\n  algorithms: [ES256, EdDSA]\n",
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
	tokenURL := strings.TrimSuffix(a.Config.Issuer, "/") + "/oauth2/token"
	post := func(m *Main, proof string) (int, map[string]any) {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, m.URL()+"/oauth2/token",
			strings.NewReader(url.Values{"grant_type": {"client_credentials"}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("DPoP", proof)
		req.SetBasicAuth(svc.ClientID, svc.ClientSecret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&body)
		return resp.StatusCode, body
	}
	// Both replicas learn of the client from the watch; each gets a token
	// with a proof of its own (bounded wait for the watch).
	for i, m := range []*Main{a, b} {
		for deadline := time.Now().Add(5 * time.Second); ; {
			code, body := post(m, es256Proof(t, key, fmt.Sprintf("warm-%d-%d", i, time.Now().UnixNano()), "POST", tokenURL))
			if code == http.StatusOK && body["token_type"] == "DPoP" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("token at %s: %d %v", m.URL(), code, body)
			}
			time.Sleep(10 * time.Millisecond) // waiting for the watch, bounded
		}
	}
	proof := es256Proof(t, key, "once", "POST", tokenURL)
	if code, body := post(a, proof); code != http.StatusOK || body["token_type"] != "DPoP" {
		t.Fatalf("first use at A: %d %v", code, body)
	}
	if code, body := post(b, proof); code != http.StatusBadRequest || body["error"] != "invalid_dpop_proof" {
		t.Fatalf("replay at B: %d %v, want 400 invalid_dpop_proof", code, body)
	}
	if code, body := post(a, proof); code != http.StatusBadRequest || body["error"] != "invalid_dpop_proof" {
		t.Fatalf("replay at A: %d %v, want 400 invalid_dpop_proof", code, body)
	}
	// Discovery at either replica lists the proof algorithms.
	resp, err := http.Get(b.URL() + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var md map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&md)
	if algs, _ := md["dpop_signing_alg_values_supported"].([]any); len(algs) == 0 {
		t.Errorf("dpop_signing_alg_values_supported = %v", md["dpop_signing_alg_values_supported"])
	}
}
