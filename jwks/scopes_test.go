package jwks

import (
	"slices"
	"testing"
)

// TestClaims_ScopesAgreesWithHasScope: Scopes splits on the space only,
// so it lists exactly the scopes HasScope grants.
func TestClaims_ScopesAgreesWithHasScope(t *testing.T) {
	for _, tc := range []struct {
		scope string
		want  []string
	}{
		{"", nil},
		{"read write", []string{"read", "write"}},
		{"read\twrite", []string{"read\twrite"}},
		{"read\nwrite", []string{"read\nwrite"}},
		{"read\u00a0write", []string{"read\u00a0write"}},
		{"read\u2003write", []string{"read\u2003write"}},
		{"read\u0085write", []string{"read\u0085write"}},
	} {
		c := &Claims{Scope: tc.scope}
		got := c.Scopes()
		if !slices.Equal(got, tc.want) {
			t.Errorf("Scopes(%q) = %q, want %q", tc.scope, got, tc.want)
		}
		for _, s := range got {
			if !c.HasScope(s) {
				t.Errorf("Scopes(%q) lists %q, which HasScope denies", tc.scope, s)
			}
		}
		if c.HasScope("write") != slices.Contains(got, "write") {
			t.Errorf("%q: HasScope(write) = %v, Scopes = %q", tc.scope, c.HasScope("write"), got)
		}
	}
}

// TestQuoteSafe: what goes into a WWW-Authenticate quoted-string keeps
// only the RFC 6750 §3 characters (%x20-21 / %x23-5B / %x5D-7E).
func TestQuoteSafe(t *testing.T) {
	if got := quoteSafe("a \"b\\c\td\x7fe\u00a7f\u2003g\u0085h!~"); got != "a bcdefgh!~" {
		t.Errorf("quoteSafe = %q", got)
	}
	r := &Refusal{Code: "insufficient_scope", Description: "the access token lacks a required scope", Scope: "r\u00e9ad write"}
	if got := r.WWWAuthenticate(); got != `Bearer error="insufficient_scope", error_description="the access token lacks a required scope", scope="rad write"` {
		t.Errorf("header = %s", got)
	}
}
