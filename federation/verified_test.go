package federation

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

// TestVerifiedTokens: a token counts as verified for verifiedWindow after
// its check, by its exact bytes; another token (one changed byte) never;
// the memory stays bounded under any number of tokens; and it is safe
// for concurrent use (-race).
func TestVerifiedTokens(t *testing.T) {
	var v verifiedTokens
	t0 := time.Date(2026, 12, 8, 1, 0, 0, 0, time.UTC)
	const tok = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln"
	if v.seen(tok, t0) {
		t.Fatal("a token never verified is seen")
	}
	v.add(tok, t0)
	for _, tc := range []struct {
		tok  string
		at   time.Time
		want bool
	}{
		{tok, t0, true},
		{tok, t0.Add(verifiedWindow - time.Nanosecond), true},
		{tok, t0.Add(verifiedWindow), false},
		{tok, t0.Add(-time.Second), false}, // a clock that went back
		{tok[:len(tok)-1] + "x", t0, false},
		{tok + ".", t0, false},
	} {
		if got := v.seen(tc.tok, tc.at); got != tc.want {
			t.Errorf("seen(%q, %s) = %v, want %v", tc.tok, tc.at.Sub(t0), got, tc.want)
		}
	}

	for i := range 10 * verifiedMax {
		v.add(fmt.Sprint("token-", i), t0)
	}
	if n := len(v.at); n > verifiedMax {
		t.Fatalf("%d tokens remembered, want at most %d", n, verifiedMax)
	}
	if !v.seen(fmt.Sprint("token-", 10*verifiedMax-1), t0) {
		t.Fatal("the newest token was forgotten")
	}

	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 500 {
				tk := fmt.Sprint("g", g, "-", i)
				v.add(tk, t0)
				v.seen(tk, t0) // may be forgotten already by another's eviction: that only costs a check
			}
		})
	}
	wg.Wait()
	if n := len(v.at); n > verifiedMax {
		t.Fatalf("%d tokens remembered after concurrent adds, want at most %d", n, verifiedMax)
	}
}
