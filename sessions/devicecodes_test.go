package sessions_test

import (
	"strings"
	"testing"

	"github.com/signet-auth/signet/sessions"
)

// TestUserCode: user codes are eight of the twenty consonants, every one
// used, shown as XXXX-XXXX, and read back whatever the case, dashes or
// spaces; anything else is not a user code.
func TestUserCode(t *testing.T) {
	const alphabet = "BCDFGHJKLMNPQRSTVWXZ"
	seen := map[rune]int{}
	codes := map[string]bool{}
	for range 2000 {
		c := sessions.NewUserCode()
		if len(c) != 8 {
			t.Fatalf("user code %q: want 8 letters", c)
		}
		for _, r := range c {
			if !strings.ContainsRune(alphabet, r) {
				t.Fatalf("user code %q has %q", c, r)
			}
			seen[r]++
		}
		codes[c] = true
	}
	if len(seen) != 20 || len(codes) != 2000 {
		t.Errorf("%d letters used, %d distinct codes of 2000", len(seen), len(codes))
	}
	for _, n := range seen { // 16000 draws: about 800 each
		if n < 600 || n > 1000 {
			t.Errorf("letter counts %v: not uniform", seen)
			break
		}
	}
	if got := sessions.FormatUserCode("BCDFGHJK"); got != "BCDF-GHJK" {
		t.Errorf("FormatUserCode = %q", got)
	}
	for in, want := range map[string]string{"BCDF-GHJK": "BCDFGHJK", "bcdf-ghjk": "BCDFGHJK", " bcdf ghjk ": "BCDFGHJK", "BCDFGHJK": "BCDFGHJK"} {
		if got, ok := sessions.NormalizeUserCode(in); !ok || got != want {
			t.Errorf("NormalizeUserCode(%q) = %q, %v", in, got, ok)
		}
	}
	for _, bad := range []string{"", "BCDF-GHJ", "BCDF-GHJKL", "ABCD-GHJK", "BCD0-GHJK", "BCDF_GHJK", strings.Repeat("-", 40) + "BCDFGHJK"} {
		if _, ok := sessions.NormalizeUserCode(bad); ok {
			t.Errorf("NormalizeUserCode(%q) accepted", bad)
		}
	}
}
