package registration_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"github.com/signet-auth/signet/internal/signettest"
	"net/http"
	"net/url"
	"testing"
	"time"
)

// es256Key is a client's signing key and its public JWK.
type es256Key struct {
	priv *ecdsa.PrivateKey
	jwk  map[string]any
}

func newES256Key(t *testing.T) es256Key {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	b64 := base64.RawURLEncoding.EncodeToString
	pub, _ := priv.PublicKey.Bytes() // 0x04 || X || Y
	return es256Key{priv: priv, jwk: map[string]any{"kty": "EC", "crv": "P-256", "kid": "k1", "alg": "ES256", "use": "sig",
		"x": b64(pub[1:33]), "y": b64(pub[33:])}}
}

// assertion signs an RFC 7523 client assertion for clientID.
func (k es256Key) assertion(t *testing.T, clientID, aud string, now time.Time) string {
	t.Helper()
	b64 := base64.RawURLEncoding.EncodeToString
	h, _ := json.Marshal(map[string]string{"alg": "ES256", "kid": "k1", "typ": "JWT"})
	c, _ := json.Marshal(map[string]any{"iss": clientID, "sub": clientID, "aud": aud, "iat": now.Unix(), "exp": now.Add(time.Minute).Unix(), "jti": b64([]byte(now.String() + clientID))})
	input := b64(h) + "." + b64(c)
	sum := sha256.Sum256([]byte(input))
	r, s, err := ecdsa.Sign(rand.Reader, k.priv, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return input + "." + b64(sig)
}

// TestCIMDPrivateKeyJWT: a metadata-document client that authenticates
// with private_key_jwt and its own jwks_uri redeems its code with an
// assertion; without one it is refused.
func TestCIMDPrivateKeyJWT(t *testing.T) {
	e := newEnv(t, envOptions{})
	k := newES256Key(t)
	jwksURI := e.serveJSON("/keys.json", map[string]any{"client_id": "", "keys": []any{k.jwk}})
	id := e.serveJSON("/agent.json", map[string]any{"client_name": "Agent", "redirect_uris": []string{"https://agent.example/cb"},
		"token_endpoint_auth_method": "private_key_jwt", "jwks_uri": jwksURI, "scope": "mcp:tools"})
	code, verifier := e.authorizeCode(e.browser(), id, "https://agent.example/cb", "mcp:tools", nil)
	form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {"https://agent.example/cb"}, "code_verifier": {verifier}, "client_id": {id}}
	if a := e.token(form, "", ""); a.status != http.StatusUnauthorized {
		t.Fatalf("without an assertion = %d %s", a.status, a.raw)
	}
	code, verifier = e.authorizeCode(e.browser(), id, "https://agent.example/cb", "mcp:tools", nil)
	form.Set("code", code)
	form.Set("code_verifier", verifier)
	form.Set("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
	form.Set("client_assertion", k.assertion(t, id, e.issuer+"/oauth2/token", e.clock.Now()))
	form.Del("client_id")
	a := e.token(form, "", "")
	if a.status != http.StatusOK {
		t.Fatalf("with an assertion = %d %s", a.status, a.raw)
	}
	if c := signettest.Claims(t, a.str("access_token")); c["client_id"] != id {
		t.Fatalf("claims = %v", c)
	}
}

// TestAttackCacheConfusion: a client whose jwks_uri is another client's
// metadata document URL neither breaks that client (a failed key set
// remembered for the document's URL) nor crashes the token endpoint (a
// cached client where a key set was expected): the fetcher keeps what
// each reader decoded apart.
func TestAttackCacheConfusion(t *testing.T) {
	for _, order := range []string{"key set first", "document first"} {
		t.Run(order, func(t *testing.T) {
			e := newEnv(t, envOptions{})
			doc := e.serveJSON("/victim.json", map[string]any{"client_name": "Victim", "redirect_uris": []string{"https://victim.example/cb"}, "token_endpoint_auth_method": "none"})
			a := e.register(map[string]any{"client_name": "Mallory", "redirect_uris": []string{"https://mallory.example/cb"},
				"token_endpoint_auth_method": "private_key_jwt", "jwks_uri": doc})
			if a.status != http.StatusCreated {
				t.Fatalf("register = %d %s", a.status, a.raw)
			}
			k := newES256Key(t)
			authenticate := func() {
				form := url.Values{"grant_type": {"authorization_code"}, "code": {"x"}, "redirect_uri": {"https://mallory.example/cb"},
					"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
					"client_assertion":      {k.assertion(t, a.str("client_id"), e.issuer+"/oauth2/token", e.clock.Now())}}
				if r := e.token(form, "", ""); r.status != http.StatusUnauthorized || r.str("error") != "invalid_client" {
					t.Fatalf("mallory's assertion = %d %s", r.status, r.raw)
				}
			}
			lookup := func() {
				if _, err := e.srv.Clients().Lookup(context.Background(), doc); err != nil {
					t.Fatalf("the victim's document: %v", err)
				}
			}
			if order == "key set first" {
				authenticate()
				lookup()
			} else {
				lookup()
				authenticate()
			}
		})
	}
}
