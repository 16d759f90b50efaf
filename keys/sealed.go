package keys

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"fmt"
	"io"

	"github.com/signet-auth/signet/keys/custody"
)

// sealedCustody is the default custody: the private half is generated in
// this process, sealed under the KEK (AES-256-GCM, the kid as additional
// data) into the key record, and decrypted into memory to sign. It is the
// fastest custody: a signature never leaves the process.
type sealedCustody struct {
	kek  []byte
	rand io.Reader
}

func (sealedCustody) Name() string { return custody.Store }

func (s sealedCustody) Generate(_ context.Context, alg string, rsaBits int, kidOf func(crypto.PublicKey) (string, error)) (custody.Key, error) {
	priv, err := newPrivateKey(s.rand, alg, rsaBits)
	if err != nil {
		return custody.Key{}, err
	}
	kid, err := kidOf(priv.Public())
	if err != nil {
		return custody.Key{}, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return custody.Key{}, fmt.Errorf("encode private key: %w", err)
	}
	sealed, err := seal(s.rand, s.kek, kid, der)
	clear(der)
	if err != nil {
		return custody.Key{}, err
	}
	return custody.Key{Signer: priv, Handle: sealed}, nil
}

func (s sealedCustody) Load(_ context.Context, kid, _ string, handle []byte) (crypto.Signer, error) {
	if len(handle) == 0 {
		return nil, &DecryptError{KID: kid, Err: fmt.Errorf("no private key stored")}
	}
	der, err := open(s.kek, kid, handle)
	if err != nil {
		return nil, &DecryptError{KID: kid, Err: err}
	}
	raw, err := x509.ParsePKCS8PrivateKey(der)
	clear(der)
	if err != nil {
		return nil, &DecryptError{KID: kid, Err: fmt.Errorf("parse private key: %w", err)}
	}
	signer, ok := raw.(crypto.Signer)
	if !ok {
		return nil, &DecryptError{KID: kid, Err: fmt.Errorf("private key of type %T cannot sign", raw)}
	}
	return signer, nil
}

// Destroy has nothing to do: the sealed bytes live in the record, and the
// lifecycle drops them when the key stops signing.
func (sealedCustody) Destroy(context.Context, string, []byte) error { return nil }

// newPrivateKey makes an in-memory key pair for alg.
func newPrivateKey(rand io.Reader, alg string, rsaBits int) (crypto.Signer, error) {
	var priv crypto.Signer
	var err error
	switch alg {
	case "RS256", "PS256":
		priv, err = rsa.GenerateKey(rand, rsaBits)
	case "ES256":
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand)
	case "ES384":
		priv, err = ecdsa.GenerateKey(elliptic.P384(), rand)
	case "ES512":
		priv, err = ecdsa.GenerateKey(elliptic.P521(), rand)
	case "EdDSA":
		_, priv, err = ed25519.GenerateKey(rand)
	default:
		return nil, fmt.Errorf("unknown algorithm %q", alg)
	}
	if err != nil {
		return nil, fmt.Errorf("generate %s: %w", alg, err)
	}
	return priv, nil
}
