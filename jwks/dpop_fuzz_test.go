package jwks

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// FuzzDPoPCheck feeds arbitrary strings to the proof checker as the DPoP
// header of GET dpopURL: it must never panic, every refusal must wrap one of
// the DPoP errors, and an accepted proof must name its key's thumbprint
// and a jti. Seeds are in testdata/fuzz/FuzzDPoPCheck (self-contained
// proofs: each carries its own key, signed for the fake clock's time),
// plus the variations below.
func FuzzDPoPCheck(f *testing.F) {
	clk := newFakeClock()
	c := newTestChecker(f, clk)
	k := newDPoPKey(f, "ES256")
	valid := k.proof(f, k.claims(clk.Now()), nil)
	parts := strings.Split(valid, ".")
	for _, seed := range []string{
		valid,
		parts[0] + "." + parts[1] + ".",
		parts[0] + ".." + parts[2],
		"." + parts[1] + "." + parts[2],
		valid + ".x",
		"e30.e30.e30",
		"..",
		"",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, proof string) {
		p, err := c.Check(context.Background(), DPoPRequest{Proof: proof, Method: "GET", URL: dpopURL})
		if err != nil {
			if !errors.Is(err, ErrDPoPProof) && !errors.Is(err, ErrDPoPNonce) && !errors.Is(err, ErrDPoPBinding) {
				t.Fatalf("Check(%q) = %v: wraps no DPoP error", proof, err)
			}
			if strings.Contains(err.Error(), proof) && len(proof) > 16 {
				t.Fatalf("error %q quotes the proof", err)
			}
			return
		}
		if p == nil || len(p.Thumbprint) != 43 || p.JTI == "" {
			t.Fatalf("Check(%q) accepted %+v", proof, p)
		}
	})
}

// TestDPoPSeeds_Valid: the stored valid_* seeds are accepted, so the fuzzer
// starts from proofs that reach every check (a seed refused at the first
// check would explore little).
func TestDPoPSeeds_Valid(t *testing.T) {
	names, err := filepath.Glob("testdata/fuzz/FuzzDPoPCheck/valid_*")
	if err != nil || len(names) < 5 {
		t.Fatalf("seeds: %v, %v", names, err)
	}
	clk := newFakeClock()
	c := newTestChecker(t, clk)
	for _, name := range names {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		_, lit, _ := strings.Cut(strings.TrimSpace(string(b)), "\nstring(")
		proof, err := strconv.Unquote(strings.TrimSuffix(lit, ")"))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if _, err := c.Check(t.Context(), DPoPRequest{Proof: proof, Method: "GET", URL: dpopURL}); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}
