package jwks

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// Request-level errors of VerifyRequest, beside the Err* of Verify and of
// the DPoP checker.
var (
	// ErrNoToken: the request has no Authorization header, or one of a
	// scheme the verifier does not take (RFC 6750 §3.1: answer with a bare
	// challenge).
	ErrNoToken = errors.New("jwks: no access token in the request")
	// ErrInvalidRequest: the request has more than one Authorization
	// header.
	ErrInvalidRequest = errors.New("jwks: invalid request")
)

// WithDPoP makes the verifier take DPoP-bound access tokens (RFC 9449):
// VerifyRequest and the middleware then accept `Authorization: DPoP
// <token>` with a `DPoP: <proof>` header that c accepts, made with the key
// the token names in cnf.jkt. Bearer tokens are still accepted; a bound
// token presented as Bearer never is.
func WithDPoP(c *DPoPChecker) Option { return func(cfg *config) { cfg.dpop = c } }

// Verify checks a bearer token and returns its claims. The order is size,
// shape, header allowlist, key lookup (refetching once on an unknown kid),
// signature, then claims and the denylist, so no claim of an unsigned
// token is ever looked at. ctx bounds the wait for a refetch. The returned
// error wraps one of the Err* sentinels.
//
// A token bound to a key (it has a cnf claim, RFC 9449 §6 or RFC 8705 §3)
// is refused with ErrDPoPBinding: whoever presents it must also prove they
// hold the key, which a bare token cannot show. VerifyRequest checks such a
// token together with its DPoP proof.
func (v *Verifier) Verify(ctx context.Context, token string) (*Claims, error) {
	cl, err := v.verifyToken(ctx, token)
	if err != nil {
		return nil, err
	}
	if cl.bound {
		return nil, fmt.Errorf("token bound to a key (cnf) presented as bearer: %w", ErrDPoPBinding)
	}
	return cl, nil
}

// JKT is the token's cnf.jkt claim: the RFC 7638 thumbprint of the key the
// token is bound to (RFC 9449 §6.1), or "" for a bearer token. Claims
// returned by VerifyRequest with a non-empty JKT were presented with a
// valid proof made with that key.
func (c *Claims) JKT() string {
	return c.jkt
}

// VerifyRequest verifies the access token of r and returns its claims:
// `Authorization: Bearer <token>` as Verify does, and, with WithDPoP,
// `Authorization: DPoP <token>` with exactly one DPoP header whose proof
// was made for this request (htm, htu, ath) with the key of the token's
// cnf.jkt (RFC 9449 §7). The scheme name is matched without case.
//
// Errors: ErrInvalidRequest (several Authorization headers), ErrNoToken
// (none, or another scheme), ErrDPoPProof or ErrDPoPNonce (the proof),
// ErrDPoPBinding (the token is not bound to the proof's key, is bound but
// presented as Bearer, or is not bound but presented as DPoP), or one of
// Verify's errors (the token).
func (v *Verifier) VerifyRequest(ctx context.Context, r *http.Request) (*Claims, error) {
	vals := r.Header.Values("Authorization")
	if len(vals) > 1 {
		return nil, fmt.Errorf("several Authorization headers: %w", ErrInvalidRequest)
	}
	if len(vals) == 0 {
		return nil, ErrNoToken
	}
	scheme, token, _ := strings.Cut(vals[0], " ")
	dpop := strings.EqualFold(scheme, "DPoP") && v.dpop != nil
	if !dpop && !strings.EqualFold(scheme, "Bearer") {
		return nil, fmt.Errorf("authorization scheme %q: %w", safeForMessage(scheme), ErrNoToken)
	}
	if len(vals[0]) > maxAuthorizationHeader {
		return nil, fmt.Errorf("authorization header too long: %w", ErrMalformed)
	}
	token = strings.TrimLeft(token, " ")
	if !dpop {
		return v.Verify(ctx, token)
	}

	proofs := r.Header.Values("DPoP")
	if len(proofs) != 1 {
		return nil, fmt.Errorf("%d DPoP headers, want 1: %w", len(proofs), ErrDPoPProof)
	}
	cl, err := v.verifyToken(ctx, token)
	if err != nil {
		return nil, err
	}
	jkt := cl.JKT()
	if len(jkt) != 43 { // base64url of a SHA-256 hash
		return nil, fmt.Errorf("token presented as DPoP has no cnf.jkt: %w", ErrDPoPBinding)
	}
	if _, err := v.dpop.Check(ctx, DPoPRequest{
		Proof: proofs[0], Method: r.Method, URL: v.dpop.requestURL(r), AccessToken: token, BoundTo: jkt,
	}); err != nil {
		return nil, err
	}
	return cl, nil
}

// requestURL is the URL r was sent to as the client saw it: the configured
// origin, or the request's own scheme and Host, and its path.
func (c *DPoPChecker) requestURL(r *http.Request) string {
	origin := c.origin
	if origin == "" {
		scheme := "http"
		if r.TLS != nil {
			scheme = "https"
		}
		origin = scheme + "://" + r.Host
	}
	return origin + r.URL.EscapedPath()
}
