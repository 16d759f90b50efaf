package keys

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"sort"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
)

// algorithms lists the signature algorithms Signet can generate keys for.
// HS* is absent on purpose: a shared secret cannot be published.
var algorithms = map[string]jwa.SignatureAlgorithm{
	"RS256": jwa.RS256,
	"PS256": jwa.PS256,
	"ES256": jwa.ES256,
	"ES384": jwa.ES384,
	"ES512": jwa.ES512,
	"EdDSA": jwa.EdDSA,
}

// Algorithms returns the names of the supported algorithms, sorted.
func Algorithms() []string {
	names := make([]string, 0, len(algorithms))
	for n := range algorithms {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// ValidAlgorithm reports whether Signet can generate keys for alg.
func ValidAlgorithm(alg string) bool {
	_, ok := algorithms[alg]
	return ok
}

// RSA sizes allowed. RFC 7518 §3.3 requires at least 2048 bits.
var rsaSizes = []int{2048, 3072, 4096}

// ValidRSABits reports whether n is an allowed RSA modulus size.
func ValidRSABits(n int) bool { return slices.Contains(rsaSizes, n) }

// generated is a fresh key pair, ready to store.
type generated struct {
	rec  record
	priv crypto.Signer
}

// generate makes a key pair for alg outside any transaction (RSA generation
// takes long enough to block every writer if done inside one), computes its
// kid as the RFC 7638 thumbprint, and seals the private half under kek.
func generate(rand io.Reader, alg string, rsaBits int, kek []byte, now time.Time) (generated, error) {
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
		return generated{}, fmt.Errorf("generate: unknown algorithm %q", alg)
	}
	if err != nil {
		return generated{}, fmt.Errorf("generate %s: %w", alg, err)
	}
	pub, err := publicJWK(priv.Public(), alg)
	if err != nil {
		return generated{}, fmt.Errorf("generate %s: %w", alg, err)
	}
	pubJSON, err := json.Marshal(pub)
	if err != nil {
		return generated{}, fmt.Errorf("generate %s: encode public key: %w", alg, err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return generated{}, fmt.Errorf("generate %s: encode private key: %w", alg, err)
	}
	sealed, err := seal(rand, kek, pub.KeyID(), der)
	clear(der)
	if err != nil {
		return generated{}, fmt.Errorf("generate %s: %w", alg, err)
	}
	return generated{
		rec: record{
			Info:    Info{KID: pub.KeyID(), Alg: alg, State: StatePending, CreatedAt: now.UTC()},
			Public:  pubJSON,
			Private: sealed,
		},
		priv: priv,
	}, nil
}

// publicJWK builds the published form of a key: public members only, with
// kid (RFC 7638 thumbprint), alg and use set.
func publicJWK(pub crypto.PublicKey, alg string) (jwk.Key, error) {
	k, err := jwk.FromRaw(pub)
	if err != nil {
		return nil, fmt.Errorf("public jwk: %w", err)
	}
	tp, err := k.Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("thumbprint: %w", err)
	}
	for name, v := range map[string]any{
		jwk.KeyIDKey:     base64.RawURLEncoding.EncodeToString(tp),
		jwk.AlgorithmKey: algorithms[alg],
		jwk.KeyUsageKey:  jwk.ForSignature,
	} {
		if err := k.Set(name, v); err != nil {
			return nil, fmt.Errorf("set %s: %w", name, err)
		}
	}
	return k, nil
}

// privateJWK turns a decrypted private key into the jwk.Key the signer uses.
func privateJWK(priv any, kid, alg string) (jwk.Key, error) {
	k, err := jwk.FromRaw(priv)
	if err != nil {
		return nil, err
	}
	for name, v := range map[string]any{
		jwk.KeyIDKey:     kid,
		jwk.AlgorithmKey: algorithms[alg],
		jwk.KeyUsageKey:  jwk.ForSignature,
	} {
		if err := k.Set(name, v); err != nil {
			return nil, err
		}
	}
	return k, nil
}
