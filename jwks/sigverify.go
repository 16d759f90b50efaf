package jwks

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"fmt"

	"github.com/lestrrat-go/jwx/v2/jwa"
)

// sigCheck reports whether sig is a valid JWS signature (RFC 7518 §3) of
// input.
type sigCheck func(input, sig []byte) bool

// newSigCheck verifies with pub, a key acceptKey has already matched to
// alg, by calling crypto directly with the same key pointer every time.
// jwx's verifiers copy the key per call, which defeats the per-key caches
// of crypto/rsa and crypto/ecdsa: every verification re-imported and
// re-checked the public key.
func newSigCheck(alg jwa.SignatureAlgorithm, pub any) (sigCheck, error) {
	var h crypto.Hash
	switch alg {
	case jwa.RS256, jwa.PS256, jwa.ES256:
		h = crypto.SHA256
	case jwa.RS384, jwa.PS384, jwa.ES384:
		h = crypto.SHA384
	case jwa.RS512, jwa.PS512, jwa.ES512:
		h = crypto.SHA512
	}
	switch k := pub.(type) {
	case *rsa.PublicKey:
		switch alg {
		case jwa.RS256, jwa.RS384, jwa.RS512:
			return func(in, sig []byte) bool {
				var buf [64]byte
				return rsa.VerifyPKCS1v15(k, h, digest(h, in, &buf), sig) == nil
			}, nil
		case jwa.PS256, jwa.PS384, jwa.PS512:
			return func(in, sig []byte) bool {
				var buf [64]byte
				return rsa.VerifyPSS(k, h, digest(h, in, &buf), sig, nil) == nil
			}, nil
		}
	case *ecdsa.PublicKey:
		if c := curves[alg]; c != nil && c == k.Curve {
			size := (c.Params().BitSize + 7) / 8
			return func(in, sig []byte) bool {
				if len(sig) != 2*size {
					return false
				}
				var buf [64]byte
				var der [2*(2+1+66) + 3]byte
				return ecdsa.VerifyASN1(k, digest(h, in, &buf), appendDERSignature(der[:0], sig[:size], sig[size:]))
			}, nil
		}
	case ed25519.PublicKey:
		if alg == jwa.EdDSA {
			return func(in, sig []byte) bool { return ed25519.Verify(k, in, sig) }, nil
		}
	}
	return nil, fmt.Errorf("no verifier for a %T key with alg %s", pub, alg)
}

// digest hashes in with h into buf.
func digest(h crypto.Hash, in []byte, buf *[64]byte) []byte {
	switch h {
	case crypto.SHA384:
		d := sha512.Sum384(in)
		return append(buf[:0], d[:]...)
	case crypto.SHA512:
		d := sha512.Sum512(in)
		return append(buf[:0], d[:]...)
	}
	d := sha256.Sum256(in)
	return append(buf[:0], d[:]...)
}

// appendDERSignature appends SEQUENCE { INTEGER r, INTEGER s } for the
// unsigned big-endian r and s, as crypto/ecdsa.VerifyASN1 reads it.
func appendDERSignature(dst, r, s []byte) []byte {
	r, s = trimZeros(r), trimZeros(s)
	n := derIntLen(r) + derIntLen(s)
	dst = append(dst, 0x30)
	if n > 0x7f {
		dst = append(dst, 0x81)
	}
	dst = append(dst, byte(n))
	return appendDERInt(appendDERInt(dst, r), s)
}

func trimZeros(b []byte) []byte {
	for len(b) > 1 && b[0] == 0 {
		b = b[1:]
	}
	return b
}

// derIntLen is the encoded size of a non-negative INTEGER (contents at
// most 127 bytes: P-521's 66, plus a sign byte).
func derIntLen(b []byte) int {
	if b[0]&0x80 != 0 {
		return 3 + len(b)
	}
	return 2 + len(b)
}

func appendDERInt(dst, b []byte) []byte {
	if b[0]&0x80 != 0 {
		dst = append(dst, 0x02, byte(len(b)+1), 0)
	} else {
		dst = append(dst, 0x02, byte(len(b)))
	}
	return append(dst, b...)
}
