package authority

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"fmt"
)

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
	}
	return nil, fmt.Errorf("no signer for a %T key with alg %s", raw, alg)
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
