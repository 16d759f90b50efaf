package clients

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
)

// AuthPrivateKeyJWT is RFC 7523 §2.2 client authentication: the client
// signs a short-lived JWT with a private key whose public half it
// registered (jwks or jwks_uri).
const AuthPrivateKeyJWT = "private_key_jwt"

// assertionAlgs are the JWS algorithms a client may sign its assertions
// with: asymmetric only. "none" and HS* are never accepted: an HMAC
// "signed" with a published public key is a classic forgery (RFC 8725 §2.1).
var assertionAlgs = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}

// AssertionAlgorithms returns the algorithms private_key_jwt accepts.
func AssertionAlgorithms() []string { return slices.Clone(assertionAlgs) }

// Limits of registered key material.
const (
	maxJWKSBytes  = 16 << 10
	maxJWKSKeys   = 16
	maxJWKSURILen = 2048
	minRSABits    = 2048
)

// PublicKey is one verification key of a client, prepared once: the raw
// public key and the algorithms it can verify.
type PublicKey struct {
	KID string
	// Algs are the algorithms this key verifies: the JWK's alg when it
	// names one, else every algorithm of its type (RSA: RS* and PS*).
	Algs []string
	Key  any // *rsa.PublicKey, *ecdsa.PublicKey or ed25519.PublicKey
}

// ParsePublicKeys reads a JWK Set (RFC 7517 §5) of a client's public
// signature keys. It refuses private or symmetric keys, RSA keys under
// 2048 bits, keys for encryption and sets larger than the limits, so a
// key set that parses is one Signet can verify with and nothing more.
func ParsePublicKeys(b []byte) ([]PublicKey, error) {
	if len(b) > maxJWKSBytes {
		return nil, fmt.Errorf("JWK Set is larger than %d bytes", maxJWKSBytes)
	}
	set, err := jwk.Parse(b)
	if err != nil {
		return nil, fmt.Errorf("not a JWK Set: %s", safeText(err.Error()))
	}
	if set.Len() == 0 {
		return nil, errors.New("JWK Set has no keys")
	}
	if set.Len() > maxJWKSKeys {
		return nil, fmt.Errorf("JWK Set has more than %d keys", maxJWKSKeys)
	}
	out := make([]PublicKey, 0, set.Len())
	for i := range set.Len() {
		k, _ := set.Key(i)
		pk, err := publicKey(k)
		if err != nil {
			name := k.KeyID()
			if name == "" {
				name = fmt.Sprintf("#%d", i)
			}
			return nil, fmt.Errorf("key %s: %s", QuoteValue(name), safeText(err.Error()))
		}
		out = append(out, pk)
	}
	return out, nil
}

func publicKey(k jwk.Key) (PublicKey, error) {
	if u := k.KeyUsage(); u != "" && u != string(jwk.ForSignature) {
		return PublicKey{}, fmt.Errorf("use is %s, want sig", QuoteValue(u))
	}
	pk := PublicKey{KID: k.KeyID()}
	switch k := k.(type) {
	case jwk.RSAPrivateKey, jwk.ECDSAPrivateKey, jwk.OKPPrivateKey:
		return PublicKey{}, errors.New("is a private key: register only the public half")
	case jwk.SymmetricKey:
		return PublicKey{}, errors.New("is a symmetric (oct) key: private_key_jwt needs an asymmetric key")
	case jwk.RSAPublicKey:
		var raw rsa.PublicKey
		if err := k.Raw(&raw); err != nil {
			return PublicKey{}, err
		}
		if raw.N.BitLen() < minRSABits {
			return PublicKey{}, fmt.Errorf("RSA key has %d bits, at least %d are required", raw.N.BitLen(), minRSABits)
		}
		pk.Key, pk.Algs = &raw, []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}
	case jwk.ECDSAPublicKey:
		var raw ecdsa.PublicKey
		if err := k.Raw(&raw); err != nil {
			return PublicKey{}, err
		}
		switch raw.Curve {
		case elliptic.P256():
			pk.Algs = []string{"ES256"}
		case elliptic.P384():
			pk.Algs = []string{"ES384"}
		case elliptic.P521():
			pk.Algs = []string{"ES512"}
		default:
			return PublicKey{}, errors.New("unsupported curve")
		}
		pk.Key = &raw
	case jwk.OKPPublicKey:
		if k.Crv() != jwa.Ed25519 {
			return PublicKey{}, errors.New("OKP curve is not Ed25519")
		}
		var raw ed25519.PublicKey
		if err := k.Raw(&raw); err != nil {
			return PublicKey{}, err
		}
		pk.Key, pk.Algs = raw, []string{"EdDSA"}
	default:
		return PublicKey{}, fmt.Errorf("unsupported key type %s", QuoteValue(string(k.KeyType())))
	}
	if a := k.Algorithm().String(); a != "" {
		if !slices.Contains(pk.Algs, a) {
			return PublicKey{}, fmt.Errorf("alg %s does not fit the key type (%s)", QuoteValue(a), strings.Join(pk.Algs, ", "))
		}
		pk.Algs = []string{a}
	}
	return pk, nil
}

// validJWKSURI is an absolute https URL (http only on a loopback host, for
// development: the outbound fetcher decides at fetch time whether that is
// allowed) without credentials or fragment.
func validJWKSURI(s string) string {
	if len(s) > maxJWKSURILen {
		return fmt.Sprintf("longer than %d characters", maxJWKSURILen)
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || !u.IsAbs() {
		return "must be an absolute https URL"
	}
	switch {
	case u.User != nil:
		return "must not carry credentials"
	case u.Fragment != "" || strings.Contains(s, "#"):
		return "must not have a fragment"
	case u.Scheme == "https":
		return ""
	case u.Scheme == "http" && isLoopbackHost(u.Hostname()):
		return ""
	}
	return "must be an https URL (http only on a loopback host)"
}

// safeText keeps a library's error text inside the error_description
// charset (RFC 6749 §5.2).
func safeText(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e || r == '"' || r == '\\' {
			return '\''
		}
		return r
	}, s)
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}

func isLoopbackHost(h string) bool {
	return h == "localhost" || h == "127.0.0.1" || h == "::1"
}

// validateKeyJWT checks the private_key_jwt settings of cl and fills in
// the default algorithms.
func validateKeyJWT(cl *Client, bad func(field, problem string)) {
	uses := slices.Contains(cl.AuthMethods, AuthPrivateKeyJWT)
	if !uses {
		if len(cl.JWKS) > 0 {
			bad("jwks", "is only used with token_endpoint_auth_methods "+AuthPrivateKeyJWT)
		}
		if cl.JWKSURI != "" {
			bad("jwks_uri", "is only used with token_endpoint_auth_methods "+AuthPrivateKeyJWT)
		}
		if len(cl.AssertionAlgs) > 0 {
			bad("token_endpoint_auth_signing_algs", "is only used with token_endpoint_auth_methods "+AuthPrivateKeyJWT)
		}
		return
	}
	if cl.Public {
		bad("token_endpoint_auth_methods", AuthPrivateKeyJWT+" is for confidential clients; a public client has no key to keep")
	}
	if len(cl.AssertionAlgs) == 0 {
		cl.AssertionAlgs = AssertionAlgorithms()
	}
	for _, a := range cl.AssertionAlgs {
		switch {
		case a == "none" || strings.HasPrefix(strings.ToUpper(a), "HS"):
			bad("token_endpoint_auth_signing_algs", QuoteValue(a)+" is never accepted: only asymmetric algorithms ("+strings.Join(assertionAlgs, ", ")+")")
		case !slices.Contains(assertionAlgs, a):
			bad("token_endpoint_auth_signing_algs", "unsupported algorithm "+QuoteValue(a)+" (supported: "+strings.Join(assertionAlgs, ", ")+")")
		}
	}
	if hasDup(cl.AssertionAlgs) {
		bad("token_endpoint_auth_signing_algs", "duplicate value")
	}
	switch {
	case len(cl.JWKS) > 0 && cl.JWKSURI != "":
		bad("jwks", "set jwks or jwks_uri, not both")
	case len(cl.JWKS) > 0:
		keys, err := ParsePublicKeys(cl.JWKS)
		if err != nil {
			bad("jwks", err.Error())
			return
		}
		fits := false
		for _, k := range keys {
			for _, a := range k.Algs {
				fits = fits || slices.Contains(cl.AssertionAlgs, a)
			}
		}
		if !fits {
			bad("jwks", "no key fits any of token_endpoint_auth_signing_algs ("+strings.Join(cl.AssertionAlgs, ", ")+")")
		}
	case cl.JWKSURI != "":
		if p := validJWKSURI(cl.JWKSURI); p != "" {
			bad("jwks_uri", p)
		}
	case len(cl.Federated) > 0: // the keys are the trusted issuer's (package federation)
	default:
		bad("jwks", AuthPrivateKeyJWT+" needs the client's public keys: set jwks (a JWK Set) or jwks_uri, or federated_identities")
	}
}
