package jwssign

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
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
	k, err := Prepare("RS256", "at+jwt", jk)
	if err != nil {
		t.Fatal(err)
	}
	payload := []byte(`{"sub":"x"}`)
	prepared := testing.AllocsPerRun(10, func() {
		if _, err := k.Sign(payload); err != nil {
			t.Fatal(err)
		}
	})
	var raw any
	if err := jk.Raw(&raw); err != nil {
		t.Fatal(err)
	}
	input := []byte(k.header + "eyJzdWIiOiJ4In0")
	signer, err := jws.NewSigner(jwa.RS256)
	if err != nil {
		t.Fatal(err)
	}
	fromJWX := testing.AllocsPerRun(10, func() {
		if _, err := signer.Sign(input, raw); err != nil {
			t.Fatal(err)
		}
	})
	if prepared*3 > fromJWX {
		t.Errorf("signing with the prepared key allocates %.0f per token, jwx's raw key %.0f: the prepared key is not precomputed", prepared, fromJWX)
	}
	tok, err := k.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := jws.Verify([]byte(tok), jws.WithKey(jwa.RS256, &priv.PublicKey)); err != nil {
		t.Errorf("token from the prepared key does not verify: %v", err)
	}
}

// TestPrepareKey_EveryAlgorithm: the prepared key of every supported
// algorithm signs tokens that jwx verifies with the public key and the
// algorithm, with the JOSE signature length (ECDSA r||s, not ASN.1), and
// ECDSA signing stays within its allocation budget (jwx's signer copied
// the key per call, which missed crypto/ecdsa's per-key cache and cost 78
// allocations per ES256 signature; crypto/ecdsa itself needs about 60).
func TestPrepareKey_EveryAlgorithm(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ec := func(c elliptic.Curve) *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(c, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	tests := []struct {
		alg       string
		priv      any
		pub       any
		sigLen    int
		maxAllocs float64
	}{
		{"RS256", rsaKey, &rsaKey.PublicKey, 256, 12},
		{"PS256", rsaKey, &rsaKey.PublicKey, 256, 20},
		{"ES256", ec(elliptic.P256()), nil, 64, 70},
		{"ES384", ec(elliptic.P384()), nil, 96, 70},
		{"ES512", ec(elliptic.P521()), nil, 132, 70},
		{"EdDSA", edKey, edKey.Public(), 64, 4},
	}
	for _, tc := range tests {
		t.Run(tc.alg, func(t *testing.T) {
			if k, ok := tc.priv.(*ecdsa.PrivateKey); ok {
				tc.pub = &k.PublicKey
			}
			jk, err := jwk.FromRaw(tc.priv)
			if err != nil {
				t.Fatal(err)
			}
			_ = jk.Set(jwk.KeyIDKey, "k1")
			_ = jk.Set(jwk.AlgorithmKey, jwa.SignatureAlgorithm(tc.alg))
			k, err := Prepare(tc.alg, "at+jwt", jk)
			if err != nil {
				t.Fatal(err)
			}
			payload := []byte(`{"sub":"x"}`)
			// Enough signatures that an r or s with leading zero bytes
			// (1 in 128 per ECDSA signature) is likely among them.
			for range 200 {
				tok, err := k.Sign(payload)
				if err != nil {
					t.Fatal(err)
				}
				got, err := jws.Verify([]byte(tok), jws.WithKey(jwa.SignatureAlgorithm(tc.alg), tc.pub))
				if err != nil {
					t.Fatalf("token does not verify: %v", err)
				}
				if !bytes.Equal(got, payload) {
					t.Fatalf("payload %s", got)
				}
				m, err := jws.Parse([]byte(tok))
				if err != nil {
					t.Fatal(err)
				}
				if n := len(m.Signatures()[0].Signature()); n != tc.sigLen {
					t.Fatalf("signature of %d bytes, want %d", n, tc.sigLen)
				}
			}
			if a := testing.AllocsPerRun(20, func() { _, _ = k.Sign(payload) }); a > tc.maxAllocs {
				t.Errorf("%.0f allocations per signature, want at most %.0f", a, tc.maxAllocs)
			}
			if _, err := newSignFunc(tc.alg, "not a key"); err == nil {
				t.Error("a string was accepted as a key")
			}
		})
	}
	if _, err := newSignFunc("ES384", ec(elliptic.P256())); err == nil {
		t.Error("ES384 with a P-256 key was accepted")
	}
	if _, err := newSignFunc("EdDSA", rsaKey); err == nil {
		t.Error("EdDSA with an RSA key was accepted")
	}
}

// TestECDSAJOSE: DER signatures with short, padded and maximal integers
// become fixed-size r||s; malformed ones are errors, never a panic.
func TestECDSAJOSE(t *testing.T) {
	r32 := bytes.Repeat([]byte{0x7f}, 32)
	hi := append([]byte{0}, bytes.Repeat([]byte{0xff}, 32)...) // 0x00 pad before a high bit
	der := func(r, s []byte) []byte {
		body := append(append([]byte{0x02, byte(len(r))}, r...), append([]byte{0x02, byte(len(s))}, s...)...)
		return append([]byte{0x30, byte(len(body))}, body...)
	}
	want := func(r, s []byte) []byte {
		out := make([]byte, 64)
		copy(out[32-len(r):32], r)
		copy(out[64-len(s):], s)
		return out
	}
	good := []struct {
		name string
		der  []byte
		want []byte
	}{
		{"full", der(r32, r32), want(r32, r32)},
		{"short r", der([]byte{1}, r32), want([]byte{1}, r32)},
		{"padded s", der(r32, hi), want(r32, hi[1:])},
	}
	for _, tc := range good {
		got, err := ecdsaJOSE(tc.der, 32)
		if err != nil || !bytes.Equal(got, tc.want) {
			t.Errorf("%s: got %x, %v", tc.name, got, err)
		}
	}
	long := append([]byte{0x30, 0x81, 0x88}, der(make([]byte, 66), make([]byte, 66))[2:]...)
	if _, err := ecdsaJOSE(long, 66); err != nil {
		t.Errorf("long-form length: %v", err)
	}
	bad := [][]byte{
		nil, {0x30}, {0x30, 0x00}, der(r32, r32)[:10],
		append(der(r32, r32), 0),                   // trailing byte
		der(append([]byte{1}, r32...), r32),        // r longer than the curve
		der([]byte{0x80}, r32),                     // negative
		der(nil, r32),                              // empty integer
		{0x30, 0x82, 0, 0},                         // two-byte length
		{0x31, 0x06, 0x02, 0x01, 1, 0x02, 0x01, 1}, // a SET
	}
	for i, b := range bad {
		if got, err := ecdsaJOSE(b, 32); err == nil {
			t.Errorf("bad %d: accepted as %x", i, got)
		}
	}
}
