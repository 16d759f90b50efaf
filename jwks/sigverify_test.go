package jwks

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
)

// TestSigCheck_ECDSA: JOSE r||s signatures of every curve verify, those
// whose r or s has leading zero bytes (shorter DER integers) and those
// with the high bit set (a DER sign byte) included; a changed bit, a
// wrong length and a signature for another key fail.
func TestSigCheck_ECDSA(t *testing.T) {
	for _, tc := range []struct {
		alg   jwa.SignatureAlgorithm
		curve elliptic.Curve
		hash  func([]byte) []byte
	}{
		{jwa.ES256, elliptic.P256(), func(b []byte) []byte { d := sha256.Sum256(b); return d[:] }},
		{jwa.ES384, elliptic.P384(), func(b []byte) []byte { d := sha512.Sum384(b); return d[:] }},
		{jwa.ES512, elliptic.P521(), func(b []byte) []byte { d := sha512.Sum512(b); return d[:] }},
	} {
		t.Run(tc.alg.String(), func(t *testing.T) {
			priv, _ := ecdsa.GenerateKey(tc.curve, rand.Reader)
			other, _ := ecdsa.GenerateKey(tc.curve, rand.Reader)
			check, err := newSigCheck(tc.alg, &priv.PublicKey)
			if err != nil {
				t.Fatal(err)
			}
			wrongKey, _ := newSigCheck(tc.alg, &other.PublicKey)
			size := (tc.curve.Params().BitSize + 7) / 8
			in := []byte("header.payload")
			n := 400 // about 3 with a leading zero byte, 200 with a high bit
			if size > 32 {
				n = 40 // slow curves; P-521's first byte is always short
			}
			for range n {
				r, s, err := ecdsa.Sign(rand.Reader, priv, tc.hash(in))
				if err != nil {
					t.Fatal(err)
				}
				sig := make([]byte, 2*size)
				r.FillBytes(sig[:size])
				s.FillBytes(sig[size:])
				if !check(in, sig) {
					t.Fatalf("valid signature %x refused", sig)
				}
				if wrongKey(in, sig) {
					t.Fatal("signature verified with another key")
				}
				sig[len(sig)/3] ^= 1
				if check(in, sig) {
					t.Fatal("changed signature accepted")
				}
				sig[len(sig)/3] ^= 1
				if check(in, sig[1:]) || check(in, append(sig, 0)) {
					t.Fatal("signature of the wrong length accepted")
				}
			}
		})
	}
	if _, err := newSigCheck(jwa.ES384, &ecdsa.PublicKey{Curve: elliptic.P256()}); err == nil {
		t.Error("ES384 with a P-256 key accepted")
	}
}

// TestVerify_Allocations: Verify allocates a small, fixed number of times
// per token. It used to decode every claim into a map through
// encoding/json's tokenizer and verify through jwx, which copied the key
// on each call (205 allocations for ES256); Get and Raw still see every
// claim, decoded on first use.
func TestVerify_Allocations(t *testing.T) {
	for _, alg := range benchAlgs {
		t.Run(alg, func(t *testing.T) {
			k := newTestKey(t, alg)
			f := newFakeIssuer(t, k)
			v, err := NewVerifier(t.Context(), f.URL(), WithAudience("api"))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = v.Close() })
			c := f.claims(time.Now())
			c["tenant"] = "acme"
			tok := sign(t, k, c, nil)
			cl, err := v.Verify(t.Context(), tok)
			if err != nil {
				t.Fatal(err)
			}
			if got, _ := cl.Get("tenant"); got != "acme" {
				t.Errorf(`Get("tenant") = %v`, got)
			}
			if n := len(cl.Raw()); n != len(c) {
				t.Errorf("Raw has %d claims, want %d", n, len(c))
			}
			if a := testing.AllocsPerRun(50, func() { _, _ = v.Verify(t.Context(), tok) }); a > 40 {
				t.Errorf("%.0f allocations per Verify, want at most 40", a)
			}
		})
	}
}
