package jwks

import "errors"

// Verification errors. Verify wraps exactly one of them with context, so a
// service can count failures by kind with errors.Is. The wrapped messages name
// the failing check but never contain the token.
var (
	// ErrMalformed: not a compact JWS of acceptable size, bad base64url,
	// bad JSON, duplicate JSON members, wrongly typed claims or a kid that
	// fails the sanity check.
	ErrMalformed = errors.New("jwks: malformed token")
	// ErrUnsupportedAlgorithm: the header alg is none, HS*, or not allowed.
	ErrUnsupportedAlgorithm = errors.New("jwks: unsupported algorithm")
	// ErrAlgorithmMismatch: the key named by kid is pinned to another alg.
	ErrAlgorithmMismatch = errors.New("jwks: algorithm does not match key")
	// ErrUnknownKey: no kid, or no key with that kid after a refetch.
	ErrUnknownKey = errors.New("jwks: unknown key")
	// ErrInvalidSignature: the signature does not verify with the key.
	ErrInvalidSignature = errors.New("jwks: invalid signature")
	// ErrForbiddenHeader: the header carries jwk, jku, x5u, x5c, crit, b64,
	// cty, enc or zip. Keys never come from the token, and no extension or
	// nesting is understood.
	ErrForbiddenHeader = errors.New("jwks: forbidden header parameter")
	// ErrType: the header typ is missing or not the required type.
	ErrType = errors.New("jwks: wrong token type")
	// ErrExpired: exp plus leeway is in the past.
	ErrExpired = errors.New("jwks: token expired")
	// ErrNotYetValid: nbf minus leeway is in the future.
	ErrNotYetValid = errors.New("jwks: token not yet valid")
	// ErrIssuedInFuture: iat minus leeway is in the future.
	ErrIssuedInFuture = errors.New("jwks: token issued in the future")
	// ErrIssuer: iss is not the configured issuer, byte for byte.
	ErrIssuer = errors.New("jwks: wrong issuer")
	// ErrAudience: no aud element is a configured audience.
	ErrAudience = errors.New("jwks: wrong audience")
	// ErrMissingClaim: a claim RFC 9068 requires (iss, sub, aud, exp, iat,
	// jti, client_id) is absent.
	ErrMissingClaim = errors.New("jwks: missing claim")
	// ErrRevoked: the denylist names the jti, or the token was issued before
	// its subject's cutoff.
	ErrRevoked = errors.New("jwks: token revoked")
)
