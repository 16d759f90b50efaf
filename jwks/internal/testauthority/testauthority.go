// Package testauthority is a minimal in-process token issuer that stands in
// for Signet in the examples and tests of jwks and echojwt, so that they run
// in go test without a Signet server: an Ed25519 key, RFC 8414 metadata and
// a JWK Set on an httptest server on 127.0.0.1, and access tokens shaped as
// Signet issues them (RFC 9068). It uses only the standard library.
package testauthority

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"time"
)

// Authority issues tokens and publishes its key.
type Authority struct {
	srv  *httptest.Server
	key  ed25519.PrivateKey
	kid  string
	jwks []byte
	jti  atomic.Uint64
}

// Start starts an authority; Close stops it.
func Start() *Authority {
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		panic(fmt.Sprintf("testauthority: %v", err))
	}
	x := base64.RawURLEncoding.EncodeToString(key.Public().(ed25519.PublicKey))
	// RFC 7638 thumbprint, as Signet names its keys.
	tp := sha256.Sum256([]byte(`{"crv":"Ed25519","kty":"OKP","x":"` + x + `"}`))
	a := &Authority{key: key, kid: base64.RawURLEncoding.EncodeToString(tp[:])}
	a.jwks = mustJSON(map[string]any{"keys": []map[string]string{
		{"kty": "OKP", "crv": "Ed25519", "x": x, "kid": a.kid, "alg": "EdDSA", "use": "sig"},
	}})
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/oauth-authorization-server", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(mustJSON(map[string]string{"issuer": a.Issuer(), "jwks_uri": a.Issuer() + "/.well-known/jwks.json"}))
	})
	mux.HandleFunc("GET /.well-known/jwks.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "public, max-age=300")
		_, _ = w.Write(a.jwks)
	})
	a.srv = httptest.NewServer(mux)
	return a
}

// Issuer is the authority's issuer URL (http on 127.0.0.1, which the
// verifier accepts on loopback only).
func (a *Authority) Issuer() string { return a.srv.URL }

// Close stops the server.
func (a *Authority) Close() { a.srv.Close() }

// Token returns an access token for subject and audience with scope
// (space-separated), valid for five minutes from now.
func (a *Authority) Token(subject, audience, scope string) string {
	now := time.Now()
	return a.sign(map[string]any{
		"iss": a.Issuer(), "sub": subject, "aud": audience, "client_id": "example-client", "scope": scope,
		"iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix(), "jti": fmt.Sprintf("jti-%d", a.jti.Add(1)),
	})
}

// BoundToken is Token bound to the DPoP key whose RFC 7638 thumbprint is
// jkt (cnf.jkt, RFC 9449 §6.1).
func (a *Authority) BoundToken(subject, audience, scope, jkt string) string {
	now := time.Now()
	return a.sign(map[string]any{
		"iss": a.Issuer(), "sub": subject, "aud": audience, "client_id": "example-client", "scope": scope,
		"iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix(), "jti": fmt.Sprintf("jti-%d", a.jti.Add(1)),
		"cnf": map[string]string{"jkt": jkt},
	})
}

// ExpiredToken is Token issued an hour ago, expired for 55 minutes.
func (a *Authority) ExpiredToken(subject, audience, scope string) string {
	then := time.Now().Add(-time.Hour)
	return a.sign(map[string]any{
		"iss": a.Issuer(), "sub": subject, "aud": audience, "client_id": "example-client", "scope": scope,
		"iat": then.Unix(), "exp": then.Add(5 * time.Minute).Unix(), "jti": fmt.Sprintf("jti-%d", a.jti.Add(1)),
	})
}

func (a *Authority) sign(claims map[string]any) string {
	enc := base64.RawURLEncoding.EncodeToString
	input := enc(mustJSON(map[string]string{"alg": "EdDSA", "kid": a.kid, "typ": "at+jwt"})) + "." + enc(mustJSON(claims))
	return input + "." + enc(ed25519.Sign(a.key, []byte(input)))
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("testauthority: %v", err))
	}
	return b
}

// DPoPClient is a client's DPoP key (Ed25519): it makes proofs (RFC 9449
// §4.2) and names its key by thumbprint for BoundToken.
type DPoPClient struct {
	key ed25519.PrivateKey
	jwk map[string]string
	jkt string
	seq atomic.Uint64
}

// NewDPoPClient makes a client with a new key.
func NewDPoPClient() *DPoPClient {
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		panic(fmt.Sprintf("testauthority: %v", err))
	}
	x := base64.RawURLEncoding.EncodeToString(key.Public().(ed25519.PublicKey))
	tp := sha256.Sum256([]byte(`{"crv":"Ed25519","kty":"OKP","x":"` + x + `"}`))
	return &DPoPClient{key: key, jwk: map[string]string{"kty": "OKP", "crv": "Ed25519", "x": x},
		jkt: base64.RawURLEncoding.EncodeToString(tp[:])}
}

// JKT is the key's RFC 7638 thumbprint.
func (c *DPoPClient) JKT() string { return c.jkt }

// Proof is a fresh proof for a request of method to url presenting token.
func (c *DPoPClient) Proof(method, url, token string) string {
	return c.ProofWithNonce(method, url, token, "")
}

// ProofWithNonce is Proof carrying the server's nonce (when not "").
func (c *DPoPClient) ProofWithNonce(method, url, token, nonce string) string {
	enc := base64.RawURLEncoding.EncodeToString
	ath := sha256.Sum256([]byte(token))
	claims := map[string]any{"jti": fmt.Sprintf("proof-%d", c.seq.Add(1)), "htm": method, "htu": url,
		"iat": time.Now().Unix(), "ath": enc(ath[:])}
	if nonce != "" {
		claims["nonce"] = nonce
	}
	input := enc(mustJSON(map[string]any{"typ": "dpop+jwt", "alg": "EdDSA", "jwk": c.jwk})) + "." + enc(mustJSON(claims))
	return input + "." + enc(ed25519.Sign(c.key, []byte(input)))
}
