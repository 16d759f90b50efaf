// Package jwssign signs JWTs on the hot path: a key is prepared once (raw
// key, precomputed RSA, encoded header) and each token is one signature
// with crypto directly. jwx's signers copy the key on every call, which
// defeats crypto/ecdsa's per-key cache; signing here keeps the same key
// pointer.
package jwssign

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/lestrrat-go/jwx/v2/jwk"
)

// Key is a private signing key prepared for the hot path: the raw key in
// the form crypto signs fastest with, and the encoded JOSE header.
type Key struct {
	kid    string
	header string // base64url(header) + "."
	sign   signFunc
}

// Prepare converts jk, whose algorithm must be alg, once, for tokens with
// header typ typ ("at+jwt" for access tokens, "JWT" for ID tokens).
func Prepare(alg, typ string, jk jwk.Key) (*Key, error) {
	if got := jk.Algorithm().String(); got != alg {
		return nil, fmt.Errorf("signing key %s has alg %q, want %q", jk.KeyID(), got, alg)
	}
	if jk.KeyID() == "" {
		return nil, fmt.Errorf("signing key for %s has no kid", alg)
	}
	var raw any
	if err := jk.Raw(&raw); err != nil {
		return nil, fmt.Errorf("signing key %s: %w", jk.KeyID(), err)
	}
	// jwx's Raw builds an rsa.PrivateKey without crypto/rsa's precomputed
	// form, which crypto/rsa would then rebuild and re-check on every
	// signature. Build it once here; Validate reports a key it cannot build.
	if rk, ok := raw.(*rsa.PrivateKey); ok {
		rk.Precompute()
		if err := rk.Validate(); err != nil {
			return nil, fmt.Errorf("signing key %s: %w", jk.KeyID(), err)
		}
	}
	sign, err := newSignFunc(alg, raw)
	if err != nil {
		return nil, fmt.Errorf("signer for %s: %w", alg, err)
	}
	hdr, err := json.Marshal(struct {
		Alg string `json:"alg"`
		Kid string `json:"kid"`
		Typ string `json:"typ"`
	}{alg, jk.KeyID(), typ})
	if err != nil {
		return nil, err
	}
	return &Key{kid: jk.KeyID(), sign: sign, header: base64.RawURLEncoding.EncodeToString(hdr) + "."}, nil
}

// KID is the key's id, as in the header.
func (k *Key) KID() string { return k.kid }

// Sign returns the compact JWS (RFC 7515 §7.1) of payload, a JSON object.
func (k *Key) Sign(payload []byte) (string, error) {
	n := len(k.header) + base64.RawURLEncoding.EncodedLen(len(payload))
	in := make([]byte, n, n+1+base64.RawURLEncoding.EncodedLen(512)) // room for the largest signature, RSA 4096
	copy(in, k.header)
	base64.RawURLEncoding.Encode(in[len(k.header):], payload)
	sig, err := k.sign(in)
	if err != nil {
		return "", err
	}
	out := append(in, '.')
	out = base64.RawURLEncoding.AppendEncode(out, sig)
	return string(out), nil
}

// signFunc signs a JWS signing input (RFC 7515 §5.1) and returns the JWS
// signature in its JOSE form (RFC 7518 §3).
type signFunc func(input []byte) ([]byte, error)

// newSignFunc signs with raw, the private key as jwk.Key.Raw returns it,
// for alg. It calls crypto directly with the same key pointer every time:
// jwx's ECDSA signer copies the key per call, which defeats crypto/ecdsa's
// per-key cache, so every signature re-derived and re-checked the public
// point (about a third of an ES256 signature's CPU and 40 allocations).
func newSignFunc(alg string, raw any) (signFunc, error) {
	switch k := raw.(type) {
	case *rsa.PrivateKey:
		switch alg {
		case "RS256":
			return func(in []byte) ([]byte, error) {
				d := sha256.Sum256(in)
				return rsa.SignPKCS1v15(nil, k, crypto.SHA256, d[:])
			}, nil
		case "PS256":
			opts := &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: crypto.SHA256}
			return func(in []byte) ([]byte, error) {
				d := sha256.Sum256(in)
				return rsa.SignPSS(rand.Reader, k, crypto.SHA256, d[:], opts)
			}, nil
		}
	case *ecdsa.PrivateKey:
		size := (k.Curve.Params().BitSize + 7) / 8
		var digest func([]byte) []byte
		switch {
		case alg == "ES256" && size == 32:
			digest = func(in []byte) []byte { d := sha256.Sum256(in); return d[:] }
		case alg == "ES384" && size == 48:
			digest = func(in []byte) []byte { d := sha512.Sum384(in); return d[:] }
		case alg == "ES512" && size == 66:
			digest = func(in []byte) []byte { d := sha512.Sum512(in); return d[:] }
		}
		if digest != nil {
			return func(in []byte) ([]byte, error) {
				der, err := ecdsa.SignASN1(rand.Reader, k, digest(in))
				if err != nil {
					return nil, err
				}
				return ecdsaJOSE(der, size)
			}, nil
		}
	case ed25519.PrivateKey:
		if alg == "EdDSA" {
			return func(in []byte) ([]byte, error) { return ed25519.Sign(k, in), nil }, nil
		}
	case crypto.Signer:
		return externalSignFunc(alg, k)
	}
	return nil, fmt.Errorf("no signer for a %T key with alg %s", raw, alg)
}

// externalSignFunc signs through s, a key held outside this process (an
// HSM, keys/custody): the input is hashed here and s signs the digest, as
// crypto.Signer asks; an ECDSA answer (ASN.1 DER) becomes its JOSE form.
func externalSignFunc(alg string, s crypto.Signer) (signFunc, error) {
	var h crypto.Hash
	var opts crypto.SignerOpts
	size := 0
	switch pub := s.Public().(type) {
	case *rsa.PublicKey:
		switch alg {
		case "RS256":
			h, opts = crypto.SHA256, crypto.SHA256
		case "PS256":
			h, opts = crypto.SHA256, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: crypto.SHA256}
		}
	case *ecdsa.PublicKey:
		size = (pub.Curve.Params().BitSize + 7) / 8
		switch {
		case alg == "ES256" && size == 32:
			h = crypto.SHA256
		case alg == "ES384" && size == 48:
			h = crypto.SHA384
		case alg == "ES512" && size == 66:
			h = crypto.SHA512
		}
		opts = h
	}
	if h == 0 {
		return nil, fmt.Errorf("no signer for an external %T key with alg %s", s.Public(), alg)
	}
	return func(in []byte) ([]byte, error) {
		d := h.New()
		d.Write(in)
		sig, err := s.Sign(rand.Reader, d.Sum(nil), opts)
		if err != nil || size == 0 {
			return sig, err
		}
		return ecdsaJOSE(sig, size)
	}, nil
}

// ecdsaJOSE turns an ASN.1 DER ECDSA signature, SEQUENCE { INTEGER r,
// INTEGER s }, into r and s as big-endian numbers of size bytes each,
// one after the other (RFC 7518 §3.4).
func ecdsaJOSE(der []byte, size int) ([]byte, error) {
	seq, rest, ok := derElem(der, 0x30)
	if !ok || len(rest) != 0 {
		return nil, errors.New("ecdsa: malformed signature")
	}
	out := make([]byte, 2*size)
	for i := range 2 {
		var n []byte
		n, seq, ok = derElem(seq, 0x02)
		if !ok || len(n) == 0 || n[0]&0x80 != 0 { // r and s are positive
			return nil, errors.New("ecdsa: malformed signature")
		}
		for len(n) > 1 && n[0] == 0 {
			n = n[1:]
		}
		if len(n) > size {
			return nil, errors.New("ecdsa: malformed signature")
		}
		copy(out[(i+1)*size-len(n):(i+1)*size], n)
	}
	if len(seq) != 0 {
		return nil, errors.New("ecdsa: malformed signature")
	}
	return out, nil
}

// derElem reads one DER element with the given tag: its contents and what
// follows it. Lengths up to 255 (one long-form byte) are all an ECDSA
// signature of the supported curves needs.
func derElem(b []byte, tag byte) (content, rest []byte, ok bool) {
	if len(b) < 2 || b[0] != tag {
		return nil, nil, false
	}
	n, hdr := int(b[1]), 2
	if n == 0x81 {
		if len(b) < 3 || b[2] < 0x80 {
			return nil, nil, false
		}
		n, hdr = int(b[2]), 3
	} else if n > 0x7f {
		return nil, nil, false
	}
	if len(b)-hdr < n {
		return nil, nil, false
	}
	return b[hdr : hdr+n], b[hdr+n:], true
}
