package authority

import (
	"crypto/rand"
	"crypto/rsa"
	"testing"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
)

// TestPrepareKey_RSAPrecomputed: the prepared RSA key signs without crypto/rsa
// rebuilding its precomputed form per signature. jwx's Raw returns a key
// without it, and signing with that key allocates the rebuild (about ten
// times the allocations) every time; the prepared key must not. The token
// still verifies with the public key.
func TestPrepareKey_RSAPrecomputed(t *testing.T) {
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	jk, err := jwk.FromRaw(priv)
	if err != nil {
		t.Fatal(err)
	}
	_ = jk.Set(jwk.KeyIDKey, "k1")
	_ = jk.Set(jwk.AlgorithmKey, jwa.RS256)
	k, err := prepareKey("RS256", jk)
	if err != nil {
		t.Fatal(err)
	}
	payload := []byte(`{"sub":"x"}`)
	prepared := testing.AllocsPerRun(10, func() {
		if _, err := k.sign(payload); err != nil {
			t.Fatal(err)
		}
	})
	var raw any
	if err := jk.Raw(&raw); err != nil {
		t.Fatal(err)
	}
	input := []byte(k.header + "eyJzdWIiOiJ4In0")
	fromJWX := testing.AllocsPerRun(10, func() {
		if _, err := k.signer.Sign(input, raw); err != nil {
			t.Fatal(err)
		}
	})
	if prepared*3 > fromJWX {
		t.Errorf("signing with the prepared key allocates %.0f per token, jwx's raw key %.0f: the prepared key is not precomputed", prepared, fromJWX)
	}
	tok, err := k.sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := jws.Verify([]byte(tok), jws.WithKey(jwa.RS256, &priv.PublicKey)); err != nil {
		t.Errorf("token from the prepared key does not verify: %v", err)
	}
}
