package jwks

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// exportedErrors are every error Verify may wrap; a refusal outside them
// would leave services unable to classify it.
var exportedErrors = []error{ErrMalformed, ErrUnsupportedAlgorithm, ErrAlgorithmMismatch, ErrUnknownKey,
	ErrInvalidSignature, ErrForbiddenHeader, ErrType, ErrExpired, ErrNotYetValid, ErrIssuedInFuture,
	ErrIssuer, ErrAudience, ErrMissingClaim, ErrRevoked, ErrDPoPBinding}

// FuzzVerify feeds arbitrary strings to Verify: it must never panic, every
// refusal must wrap one of the exported errors, and anything accepted must
// carry the issuer and an audience the verifier was configured with.
func FuzzVerify(f *testing.F) {
	k := newTestKey(f, "ES256")
	clk := newFakeClock()
	iss := newFakeIssuer(f, k)
	v := newTestVerifier(f, iss, clk)
	valid := sign(f, k, iss.claims(clk.Now()), nil)
	parts := strings.Split(valid, ".")
	for _, seed := range []string{
		valid,
		parts[0] + "." + parts[1] + ".",
		parts[0] + ".." + parts[2],
		"." + parts[1] + "." + parts[2],
		valid + ".x",
		"e30.e30.e30",
		"eyJhbGciOiJub25lIn0.e30.",
		"..",
		"",
		strings.Repeat("A", 100),
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, tok string) {
		c, err := v.Verify(context.Background(), tok)
		if err != nil {
			for _, e := range exportedErrors {
				if errors.Is(err, e) {
					return
				}
			}
			t.Fatalf("Verify(%q) = %v: wraps no exported error", tok, err)
		}
		if c == nil || c.Issuer != iss.URL() || len(c.Audience) == 0 {
			t.Fatalf("Verify(%q) accepted claims %+v", tok, c)
		}
	})
}
