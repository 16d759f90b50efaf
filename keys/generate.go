package keys

import (
	"context"
	"crypto"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"

	"github.com/signet-auth/signet/keys/custody"
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

// generate makes a key pair for alg in custody c outside any transaction
// (RSA generation, or a round trip to an HSM, takes long enough to block
// every writer if done inside one) and computes its kid as the RFC 7638
// thumbprint. What the custody hands back as the private half's handle goes
// into the record: sealed PKCS #8 in Private for the store custody, the
// object's id in Handle for an external one. A key of an external custody
// that is never committed is an orphan (Manager.Orphans).
func generate(ctx context.Context, c custody.Custody, alg string, rsaBits int, now time.Time) (generated, error) {
	var pub jwk.Key
	kidOf := func(p crypto.PublicKey) (string, error) {
		var err error
		pub, err = publicJWK(p, alg)
		if err != nil {
			return "", err
		}
		return pub.KeyID(), nil
	}
	k, err := c.Generate(ctx, alg, rsaBits, kidOf)
	if err != nil {
		return generated{}, fmt.Errorf("generate %s in %s custody: %w", alg, c.Name(), err)
	}
	if pub == nil { // the custody did not ask: compute it here
		if _, err := kidOf(k.Signer.Public()); err != nil {
			return generated{}, fmt.Errorf("generate %s: %w", alg, err)
		}
	}
	pubJSON, err := json.Marshal(pub)
	if err != nil {
		return generated{}, fmt.Errorf("generate %s: encode public key: %w", alg, err)
	}
	rec := record{
		Info:   Info{KID: pub.KeyID(), Alg: alg, State: StatePending, CreatedAt: now.UTC()},
		Public: pubJSON,
	}
	if c.Name() == custody.Store {
		rec.Private = k.Handle
	} else {
		rec.Custody = c.Name()
		rec.Handle = k.Handle
	}
	return generated{rec: rec, priv: k.Signer}, nil
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
