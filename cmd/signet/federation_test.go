package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"

	"github.com/signet-auth/signet/config"
)

// TestServe_FederatedWorkload: through `signet serve` with a federation:
// section, a client made by `signet clients create --federated` (no
// secret printed, none sent) gets tokens with a Kubernetes-shaped pod
// token from an issuer found by discovery, and with a SPIFFE JWT-SVID
// whose keys are a jwks_file; discovery advertises the jwt-bearer grant.
func TestServe_FederatedWorkload(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	kubeKey, _ := jwk.FromRaw(rsaKey)
	_ = kubeKey.Set(jwk.KeyIDKey, "kube-1")
	_ = kubeKey.Set(jwk.AlgorithmKey, jwa.RS256)
	kubePub, _ := kubeKey.PublicKey()
	_ = kubePub.Set(jwk.KeyUsageKey, "sig")
	mux := http.NewServeMux()
	kube := httptest.NewTLSServer(mux)
	defer kube.Close()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]any{"issuer": kube.URL, "jwks_uri": kube.URL + "/openid/v1/jwks",
			"response_types_supported": []string{"id_token"}, "subject_types_supported": []string{"public"}, "id_token_signing_alg_values_supported": []string{"RS256"}})
	})
	mux.HandleFunc("GET /openid/v1/jwks", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]any{"keys": []any{kubePub}})
	})
	dir := t.TempDir()
	ca := filepath.Join(dir, "kube-ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: kube.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	ecRaw, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	spireKey, _ := jwk.FromRaw(ecRaw)
	_ = spireKey.Set(jwk.KeyIDKey, "spire-1")
	spirePub, _ := spireKey.PublicKey()
	bundle, _ := json.Marshal(map[string]any{"keys": []any{spirePub}})
	bundleFile := filepath.Join(dir, "bundle.json")
	if err := os.WriteFile(bundleFile, bundle, 0o600); err != nil {
		t.Fatal(err)
	}

	t.Setenv("SIGNET_KEYS_ALGORITHMS", "ES256")
	c := testConfig(t, func(c *config.Config) {
		c.Outbound.CAFile = ca
		c.Outbound.AllowNetworks = []string{"127.0.0.0/8"}
		c.Federation.Issuers = []config.FederationIssuer{
			{Issuer: kube.URL, Algorithms: []string{"RS256"}, Claims: map[string]string{"kubernetes.io.namespace": "k8s_namespace"}},
			{Issuer: "spiffe://trust.domain", JWKSFile: bundleFile, MaxTokenLifetime: "10m"},
		}
	})
	out, _, err := initCmd(t, "--data-dir", c.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	admin := decodeSecret(t, out)
	m, logs := startMain(t, c, nil)
	t.Setenv("SIGNET_CLIENT_ID", admin.ClientID)
	t.Setenv("SIGNET_CLIENT_SECRET", admin.ClientSecret)

	out, errOut, err := clientsCmd(t, "create", "--server", m.URL(), "--id", "payments", "--audience", "API",
		"--grant", "client_credentials", "--grant", "urn:ietf:params:oauth:grant-type:jwt-bearer",
		"--federated", kube.URL+"=system:serviceaccount:payments:*", "--federated", "spiffe://trust.domain=spiffe://trust.domain/ns/payments/sa/*")
	if err != nil {
		t.Fatalf("create: %v %s", err, errOut)
	}
	if strings.Contains(out, "client_secret") || strings.Contains(errOut, "secret") {
		t.Errorf("create printed a secret for a federated client: %s %s", out, errOut)
	}

	now := time.Now()
	sign := func(key jwk.Key, alg jwa.SignatureAlgorithm, claims map[string]any) string {
		b, _ := json.Marshal(claims)
		s, err := jws.Sign(b, jws.WithKey(alg, key))
		if err != nil {
			t.Fatal(err)
		}
		return string(s)
	}
	pod := func() string {
		return sign(kubeKey, jwa.RS256, map[string]any{"iss": kube.URL, "sub": "system:serviceaccount:payments:api", "aud": []string{m.Config.Issuer},
			"exp": now.Add(10 * time.Minute).Unix(), "iat": now.Unix(), "nbf": now.Unix(), "jti": rand.Text(),
			"kubernetes.io": map[string]any{"namespace": "payments", "pod": map[string]any{"name": "api-1", "uid": "u1"}, "serviceaccount": map[string]any{"name": "api", "uid": "u2"}}})
	}
	svid := sign(spireKey, jwa.ES256, map[string]any{"iss": "spiffe://trust.domain", "sub": "spiffe://trust.domain/ns/payments/sa/api",
		"aud": m.Config.Issuer, "exp": now.Add(5 * time.Minute).Unix(), "iat": now.Unix()})
	post := func(form url.Values) (int, map[string]any) {
		resp, err := http.PostForm(m.URL()+"/oauth2/token", form)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&body)
		return resp.StatusCode, body
	}
	assertion := func(tok string) url.Values {
		return url.Values{"grant_type": {"client_credentials"}, "client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {tok}}
	}
	for name, form := range map[string]url.Values{
		"pod client_assertion":  assertion(pod()),
		"pod jwt-bearer":        {"grant_type": {"urn:ietf:params:oauth:grant-type:jwt-bearer"}, "assertion": {pod()}},
		"svid client_assertion": assertion(svid),
	} {
		status, body := post(form)
		if status != http.StatusOK {
			t.Fatalf("%s: %d %v\n%s", name, status, body, logs)
		}
		msg, err := jws.ParseString(body["access_token"].(string))
		if err != nil {
			t.Fatal(err)
		}
		var claims map[string]any
		_ = json.Unmarshal(msg.Payload(), &claims)
		if claims["sub"] != "payments" || claims["client_id"] != "payments" || claims["kubernetes.io"] != nil {
			t.Errorf("%s: claims %v", name, claims)
		}
		if wantNS := name == "pod jwt-bearer"; (claims["k8s_namespace"] == "payments") != wantNS {
			t.Errorf("%s: k8s_namespace in %v, want it only from the grant", name, claims)
		}
	}
	// Another pod's signature over a payload rewritten to this namespace.
	parts := strings.Split(pod(), ".")
	other, _ := json.Marshal(map[string]any{"iss": kube.URL, "sub": "system:serviceaccount:payments:api", "aud": m.Config.Issuer, "exp": now.Add(time.Minute).Unix(), "jti": "x"})
	if status, body := post(assertion(parts[0] + "." + base64.RawURLEncoding.EncodeToString(other) + "." + parts[2])); status != http.StatusUnauthorized ||
		!strings.Contains(body["error_description"].(string), "signature") {
		t.Errorf("a tampered pod token: %d %v", status, body)
	}

	// update --federated replaces the bindings: the payments pod is out.
	out, errOut, err = clientsCmd(t, "update", "--server", m.URL(), "payments", "--federated", kube.URL+"=system:serviceaccount:billing:*", "--json")
	if err != nil || !strings.Contains(out, "system:serviceaccount:billing:*") || strings.Contains(out, "payments:*") {
		t.Fatalf("update --federated: %v %s %s", err, out, errOut)
	}
	for deadline := time.Now().Add(10 * time.Second); ; { // the server's client cache follows the store's watch
		status, body := post(assertion(pod()))
		if status == http.StatusUnauthorized && strings.Contains(body["error_description"].(string), "bound") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pod token after update: %d %v", status, body)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, _, err := clientsCmd(t, "update", "--server", m.URL(), "payments", "--federated", kube.URL+"=system:serviceaccount:billing:x*"); err == nil || !strings.Contains(err.Error(), "federated_identities") {
		t.Errorf("update with a partial-segment pattern = %v, want a federated_identities problem", err)
	}

	// --federated '' empties the list; private_key_jwt is then left with
	// no key at all, refused unless keys come with it.
	if _, _, err := clientsCmd(t, "update", "--server", m.URL(), "payments", "--federated", ""); err == nil || !strings.Contains(err.Error(), "jwks") {
		t.Errorf("update --federated '' alone = %v, want the keys problem named", err)
	}
	_, set := esKey(t, "own-1")
	keyFile := filepath.Join(dir, "own-jwks.json")
	if err := os.WriteFile(keyFile, set, 0o600); err != nil {
		t.Fatal(err)
	}
	out, _, err = clientsCmd(t, "update", "--server", m.URL(), "payments", "--federated", "", "--jwks-file", keyFile, "--json")
	if err != nil || strings.Contains(out, "federated_identities") || !strings.Contains(out, "own-1") {
		t.Errorf("update --federated '' --jwks-file = %v %s", err, out)
	}

	resp, err := http.Get(m.URL() + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var md struct {
		Grants []string `json:"grant_types_supported"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&md)
	if !slices.Contains(md.Grants, "urn:ietf:params:oauth:grant-type:jwt-bearer") {
		t.Errorf("grant_types_supported = %v", md.Grants)
	}
	if strings.Contains(logs.String(), "eyJ") {
		t.Error("server logs contain a token")
	}
}
