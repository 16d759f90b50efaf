package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/signet-auth/signet/jwks"
)

// runVerify is `signet verify`: it checks an access token the way a
// service does, with the jwks verifier against the issuer's published keys
// and revocation feed, and prints its claims. Exit 1 when it is refused.
func runVerify(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("verify", stderr)
	setUsage(fs, "--issuer URL --audience AUD TOKEN")
	issuer := fs.String("issuer", "", "the issuer URL, as in the token's iss (required)")
	var audiences []string
	fs.Func("audience", "an audience the token must name (repeatable; required)", func(v string) error {
		audiences = append(audiences, v)
		return nil
	})
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *issuer == "" || len(audiences) == 0 {
		return usageError{"--issuer and --audience are required"}
	}
	if fs.NArg() != 1 {
		return usageError{"give exactly one token"}
	}
	v, err := jwks.NewVerifier(ctx, *issuer, jwks.WithAudience(audiences...), jwks.WithDenylist(true), jwks.WithContext(ctx))
	if err != nil {
		return fmt.Errorf("keys of %s: %w", *issuer, err)
	}
	defer v.Close()
	claims, err := v.Verify(ctx, strings.TrimSpace(fs.Arg(0)))
	if err != nil {
		return fmt.Errorf("token refused: %w", err)
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(claims.Raw())
}
