package keys

import (
	"crypto"
	"fmt"

	"github.com/lestrrat-go/jwx/v2/jwk"
)

// externalKey is the signing key of an algorithm whose private half lives
// outside this process (an HSM): the public JWK (kid, alg, use set) with
// Raw handing out the custody's crypto.Signer instead of private members.
// jwx's RSA, ECDSA and EdDSA signers accept a crypto.Signer, and so does the
// token path's prepareKey, so the token endpoint needs no second code path.
type externalKey struct {
	jwk.Key
	signer crypto.Signer
}

// newExternalKey checks that signer holds the private half of pub (a record
// whose handle names another object must not sign under its kid).
func newExternalKey(pub jwk.Key, signer crypto.Signer) (jwk.Key, error) {
	got, err := publicJWK(signer.Public(), pub.Algorithm().String())
	if err != nil {
		return nil, fmt.Errorf("key %s: %w", pub.KeyID(), err)
	}
	if got.KeyID() != pub.KeyID() {
		return nil, fmt.Errorf("key %s: the custody's object holds key %s", pub.KeyID(), got.KeyID())
	}
	c, err := pub.Clone()
	if err != nil {
		return nil, fmt.Errorf("key %s: %w", pub.KeyID(), err)
	}
	return &externalKey{Key: c, signer: signer}, nil
}

// Raw sets v (a *any or a *crypto.Signer) to the custody's signer.
func (k *externalKey) Raw(v any) error {
	switch p := v.(type) {
	case *any:
		*p = k.signer
	case *crypto.Signer:
		*p = k.signer
	default:
		return fmt.Errorf("key %s is held outside this process: Raw gives a crypto.Signer, not %T", k.KeyID(), v)
	}
	return nil
}

// CryptoSigner is the custody's signer.
func (k *externalKey) CryptoSigner() crypto.Signer { return k.signer }
