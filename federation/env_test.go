package federation_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/signet-auth/signet/authority"
	"github.com/signet-auth/signet/clients"
	"github.com/signet-auth/signet/federation"
	"github.com/signet-auth/signet/internal/signettest"
	"github.com/signet-auth/signet/outbound"
	"github.com/signet-auth/signet/storage"
	"github.com/signet-auth/signet/users"
)

// signet is a whole Signet over real HTTP on 127.0.0.1 (bolt in a temp
// dir, the real key manager, the authority server) with a federation.
type signet struct {
	t        testing.TB
	clock    *signettest.Clock
	srv      *authority.Server
	http     *httptest.Server
	issuer   string
	fed      *federation.Federation
	logs     *bytes.Buffer
	adminKey string
}

// fetcher is the outbound fetcher of the tests: the httptest CA, and
// 127.0.0.0/8 allowed as the operator would allow the cluster's network.
func fetcher(t testing.TB, tlsSrv *httptest.Server) *outbound.Fetcher {
	pool := x509.NewCertPool()
	pool.AddCert(tlsSrv.Certificate())
	return outbound.New(outbound.Options{RootCAs: pool, AllowNetworks: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
}

func newSignet(t testing.TB, f *outbound.Fetcher, issuers ...federation.Issuer) *signet {
	t.Helper()
	return newSignetOn(t, nil, f, issuers...)
}

// newSignetOn is newSignet on st (a replica of a fleet sharing it); nil
// opens a bolt file of its own.
func newSignetOn(t testing.TB, st storage.Store, f *outbound.Fetcher, issuers ...federation.Issuer) *signet {
	t.Helper()
	s := &signet{t: t, logs: &bytes.Buffer{}}
	logger := slog.New(slog.NewJSONHandler(io.Discard, nil))
	stack := signettest.Start(t, signettest.Options{Logger: logger, LogStore: true, Store: st, Algorithms: []string{"ES256"},
		Clock: signettest.NewClock(time.Now().Truncate(time.Second))})
	s.clock, s.http, s.issuer = stack.Clock, stack.HTTP, stack.Issuer
	var err error
	s.fed, err = federation.New(federation.Config{Issuers: issuers, Signet: s.issuer, Fetcher: f, Store: stack.Store, Now: s.clock.Now, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	cfg := stack.Config()
	cfg.Password, cfg.LoginRateLimit = users.PasswordParams{}, authority.LoginRateLimit{}
	cfg.RateLimit, cfg.Outbound = authority.RateLimit{PerClient: -1, PerIP: -1}, f
	cfg.Federation, cfg.Grants = s.fed, map[string]authority.Grant{clients.GrantJWTBearer: s.fed}
	s.srv = stack.Authority(cfg)
	stack.Serve(s.srv)
	_, s.adminKey, err = s.srv.Clients().Create(context.Background(), clients.Client{ID: "admin", Scopes: []string{authority.AdminScope}, Audiences: []string{authority.AdminAudience}})
	if err != nil && !errors.Is(err, clients.ErrExists) { // a second replica
		t.Fatal(err)
	}
	return s
}

// workload registers a client that authenticates by federated identities
// only: private_key_jwt with no key of its own, and no secret handed out.
func (s *signet) workload(id string, ids ...clients.FederatedIdentity) {
	s.t.Helper()
	_, _, err := s.srv.Clients().Create(context.Background(), clients.Client{ID: id, Scopes: []string{"read"}, Audiences: []string{"https://api.example"},
		AuthMethods: []string{clients.AuthPrivateKeyJWT}, GrantTypes: []string{clients.GrantClientCredentials, clients.GrantJWTBearer}, Federated: ids})
	if err != nil {
		s.t.Fatal(err)
	}
}

// post sends form to path (Basic credentials when id is set) and returns
// the status and decoded body.
func (s *signet) post(path string, form url.Values, id, secret string) (int, map[string]any) {
	s.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, s.issuer+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if id != "" {
		req.SetBasicAuth(id, secret)
	}
	return do(s.t, req)
}

func do(t testing.TB, req *http.Request) (int, map[string]any) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	b, _ := io.ReadAll(resp.Body)
	if len(b) > 0 {
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("body is not JSON: %q", b)
		}
	}
	return resp.StatusCode, m
}

// assertionForm is a client_credentials request authenticated by a
// federated token as client_assertion (Keycloak's shape).
func assertionForm(tok string) url.Values {
	return url.Values{"grant_type": {"client_credentials"}, "client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {tok}}
}

// bearerForm is the RFC 7523 §2.1 jwt-bearer grant.
func bearerForm(tok string) url.Values {
	return url.Values{"grant_type": {clients.GrantJWTBearer}, "assertion": {tok}}
}

// kubeIssuer is a Kubernetes service-account issuer as kube-apiserver
// serves it: /.well-known/openid-configuration and /openid/v1/jwks, an
// RSA key, RS256 tokens shaped as projected service-account tokens.
type kubeIssuer struct {
	srv *httptest.Server
	mu  sync.Mutex // key and kid change when the cluster rotates (rotate)
	key *rsa.PrivateKey
	kid string
	// discoveryIssuer overrides the discovery document's issuer.
	discoveryIssuer string
	// jwksURI overrides the discovery document's jwks_uri; jwks
	// overrides the key set handler.
	jwksURI string
	jwks    http.HandlerFunc
}

func newKubeIssuer(t testing.TB, configure func(*kubeIssuer)) *kubeIssuer {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	k := &kubeIssuer{key: key, kid: "kQ9ag0c2R5iCq0mWLV5y3cFCu0HoRxnS1gRw0l2hZ0A"}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		uri := k.jwksURI
		if uri == "" {
			uri = k.srv.URL + "/openid/v1/jwks"
		}
		iss := k.srv.URL
		if k.discoveryIssuer != "" {
			iss = k.discoveryIssuer
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"issuer": iss, "jwks_uri": uri,
			"response_types_supported": []string{"id_token"}, "subject_types_supported": []string{"public"},
			"id_token_signing_alg_values_supported": []string{"RS256"}})
	})
	mux.HandleFunc("GET /openid/v1/jwks", func(w http.ResponseWriter, r *http.Request) {
		if k.jwks != nil {
			k.jwks(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/jwk-set+json")
		_, _ = w.Write(k.jwksDoc())
	})
	k.srv = httptest.NewTLSServer(mux)
	t.Cleanup(k.srv.Close)
	if configure != nil {
		configure(k)
	}
	return k
}

func (k *kubeIssuer) jwksDoc() []byte {
	k.mu.Lock()
	defer k.mu.Unlock()
	b, _ := json.Marshal(map[string]any{"keys": []any{map[string]any{"use": "sig", "kty": "RSA", "kid": k.kid, "alg": "RS256",
		"n": b64(k.key.N.Bytes()), "e": b64(big.NewInt(int64(k.key.E)).Bytes())}}})
	return b
}

// podToken is a projected service-account token of pod api-7d9f in
// namespace ns for service account sa, audienced to aud, as kubelet
// mounts it (expirationSeconds 600).
func (k *kubeIssuer) podToken(now time.Time, ns, sa, aud string, edit func(map[string]any)) string {
	claims := map[string]any{
		"aud": []string{aud}, "exp": now.Add(10 * time.Minute).Unix(), "iat": now.Unix(), "nbf": now.Unix(),
		"iss": k.srv.URL, "jti": rand.Text(), "sub": "system:serviceaccount:" + ns + ":" + sa,
		"kubernetes.io": map[string]any{"namespace": ns,
			"node":           map[string]any{"name": "node-1", "uid": "5a1b1e57-0c3c-4c2e-9a55-1c1bdf44b3c9"},
			"pod":            map[string]any{"name": "api-7d9f", "uid": "8a2f4a4d-2b1e-4f44-9d2f-7c0d0e1b2a3c"},
			"serviceaccount": map[string]any{"name": sa, "uid": "c8c1f6d2-43a7-4b0e-8f0e-0f5b3a9f1d11"},
		},
	}
	if edit != nil {
		edit(claims)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	return signRS256(k.key, map[string]any{"alg": "RS256", "kid": k.kid}, claims)
}

// rotate replaces the cluster's service-account signing key, as a
// --service-account-signing-key-file change does.
func (k *kubeIssuer) rotate(t testing.TB, kid string) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	k.key, k.kid = key, kid
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func jsonB64(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b64(b)
}

func signRS256(key *rsa.PrivateKey, header, claims map[string]any) string {
	input := jsonB64(header) + "." + jsonB64(claims)
	h := sha256.Sum256([]byte(input))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, h[:])
	if err != nil {
		panic(err)
	}
	return input + "." + b64(sig)
}

func signES256(key *ecdsa.PrivateKey, header, claims map[string]any) string {
	input := jsonB64(header) + "." + jsonB64(claims)
	h := sha256.Sum256([]byte(input))
	r, s, err := ecdsa.Sign(rand.Reader, key, h[:])
	if err != nil {
		panic(err)
	}
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return input + "." + b64(sig)
}

// signHS256 is the classic forgery: HMAC keyed with the issuer's
// published public key (RFC 8725 §2.1).
func signHS256(secret []byte, header, claims map[string]any) string {
	input := jsonB64(header) + "." + jsonB64(claims)
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(input))
	return input + "." + b64(m.Sum(nil))
}

func newECKey(t testing.TB) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// ecJWKS is a JWK Set of k's public key, as a SPIRE bundle publishes it.
func ecJWKS(k *ecdsa.PrivateKey, kid string) []byte {
	b, _ := json.Marshal(map[string]any{"keys": []any{map[string]any{"kty": "EC", "crv": "P-256", "kid": kid, "use": "sig", "alg": "ES256",
		"x": b64(k.X.FillBytes(make([]byte, 32))), "y": b64(k.Y.FillBytes(make([]byte, 32)))}}})
	return b
}
