package login_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"

	"github.com/signet-auth/signet/internal/signettest"
)

// proofKey is a client's ES256 DPoP key and its RFC 7638 thumbprint.
type proofKey struct {
	priv *ecdsa.PrivateKey
	jkt  string
}

func newProofKey(t testing.TB) proofKey {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := jwk.FromRaw(priv.Public())
	tp, err := pub.Thumbprint(crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	return proofKey{priv: priv, jkt: base64.RawURLEncoding.EncodeToString(tp)}
}

// proof is a DPoP proof for POST u at now.
func (k proofKey) proof(t testing.TB, u string, now time.Time) string {
	t.Helper()
	pub, _ := jwk.FromRaw(k.priv.Public())
	h := jws.NewHeaders()
	_ = h.Set(jws.TypeKey, "dpop+jwt")
	_ = h.Set(jws.JWKKey, pub)
	var jti [12]byte
	_, _ = rand.Read(jti[:])
	payload, _ := json.Marshal(map[string]any{"jti": hex.EncodeToString(jti[:]), "htm": "POST", "htu": u, "iat": now.Unix()})
	out, err := jws.Sign(payload, jws.WithKey(jwa.ES256, k.priv, jws.WithProtectedHeaders(h)))
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// TestDPoPJKT: dpop_jkt at the authorization endpoint (RFC 9449 §10)
// binds the code to that key: redeeming it without a proof, or with
// another key's proof, is invalid_grant and spends the code; with a proof
// of the key it gives a token bound to it. A malformed dpop_jkt is
// redirected as invalid_request.
func TestDPoPJKT(t *testing.T) {
	e := newEnv(t, envOptions{})
	secret := e.webClient("web", nil)
	key, other := newProofKey(t), newProofKey(t)
	redeem := func(code, verifier string, k *proofKey) tokenResponse {
		form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {"https://app.example/cb"}, "code_verifier": {verifier}}
		req, _ := http.NewRequest(http.MethodPost, e.issuer+"/oauth2/token", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth("web", secret)
		if k != nil {
			req.Header.Set("DPoP", k.proof(t, e.issuer+"/oauth2/token", e.clock.Now()))
		}
		resp, err := e.http.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		out := tokenResponse{status: resp.StatusCode}
		_ = json.NewDecoder(resp.Body).Decode(&out.body)
		return out
	}
	b := e.browser()
	code := func() (string, string) {
		verifier, challenge := signettest.PKCE()
		p := b.Authorize(url.Values{"response_type": {"code"}, "client_id": {"web"}, "redirect_uri": {"https://app.example/cb"},
			"scope": {"openid"}, "code_challenge": {challenge}, "code_challenge_method": {"S256"}, "dpop_jkt": {key.jkt}})
		if p.Location == nil {
			p = b.login(p, "alice", alicePassword)
		}
		return codeFrom(t, p).Get("code"), verifier
	}

	for _, tc := range []struct {
		name string
		key  *proofKey
	}{{"no proof", nil}, {"another key's proof", &other}} {
		c, v := code()
		if tr := redeem(c, v, tc.key); tr.status != http.StatusBadRequest || tr.body["error"] != "invalid_grant" {
			t.Errorf("%s: %d %v, want 400 invalid_grant", tc.name, tr.status, tr.body)
		}
		if tr := redeem(c, v, &key); tr.status != http.StatusBadRequest {
			t.Errorf("%s: the code was not spent: %d %v", tc.name, tr.status, tr.body)
		}
	}
	c, v := code()
	tr := redeem(c, v, &key)
	if tr.status != http.StatusOK || tr.str("token_type") != "DPoP" {
		t.Fatalf("redeem with the key's proof = %d %v", tr.status, tr.body)
	}
	if cnf, _ := signettest.Claims(t, tr.str("access_token"))["cnf"].(map[string]any); cnf["jkt"] != key.jkt {
		t.Fatalf("cnf = %v, want jkt %s", cnf, key.jkt)
	}

	_, challenge := signettest.PKCE()
	for _, bad := range [][]string{{"not-a-thumbprint"}, {key.jkt, other.jkt}} {
		p := b.Authorize(url.Values{"response_type": {"code"}, "client_id": {"web"}, "redirect_uri": {"https://app.example/cb"},
			"scope": {"openid"}, "code_challenge": {challenge}, "code_challenge_method": {"S256"}, "dpop_jkt": bad})
		if p.Location == nil || p.Location.Query().Get("error") != "invalid_request" {
			t.Errorf("dpop_jkt %v: %d %v, want a redirect with invalid_request", bad, p.Status, p.Location)
		}
	}
}
