package jwks

import (
	"errors"
	"testing"
	"time"
)

// TestDenylist_HashedSubjects: a feed that lists subject cutoffs under
// HMAC-SHA256(key, sub) revokes the subject's older tokens at a verifier
// given the key, names no subject, and leaves a verifier without the key
// (or with another key) unable to apply them, which Stats reports.
func TestDenylist_HashedSubjects(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	clk := newFakeClock()
	rs := newTestKey(t, "RS256")
	f := newFakeIssuer(t, rs)
	cutoff := clk.Now().Unix()
	f.set(func(f *fakeIssuer) {
		f.feed = RevocationFeed{SubjectCutoffsHMAC: map[string]int64{SubjectHash(key, "fired-user"): cutoff}}
	})
	claims := func(sub string, iat int64) map[string]any {
		c := f.claims(clk.Now())
		c["sub"], c["iat"] = sub, iat
		return c
	}
	before := claims("fired-user", clk.Now().Add(-time.Second).Unix())
	after := claims("fired-user", cutoff)
	other := claims("someone-else", clk.Now().Add(-time.Second).Unix())

	v := newTestVerifier(t, f, clk, WithDenylist(true), WithDenylistSubjectKey(key))
	if _, err := v.Verify(t.Context(), sign(t, rs, before, nil)); !errors.Is(err, ErrRevoked) {
		t.Errorf("token before the cutoff: %v, want ErrRevoked", err)
	}
	for name, c := range map[string]map[string]any{"at the cutoff": after, "another subject": other} {
		if _, err := v.Verify(t.Context(), sign(t, rs, c, nil)); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	if st := v.Stats(); st.SubjectKeyMissing || st.SubjectCutoffs != 1 {
		t.Errorf("Stats = %+v", st)
	}
	for name, opts := range map[string][]Option{
		"no key":    {WithDenylist(true)},
		"other key": {WithDenylist(true), WithDenylistSubjectKey([]byte("another key of thirty-two bytes!"))},
	} {
		w := newTestVerifier(t, f, clk, opts...)
		if _, err := w.Verify(t.Context(), sign(t, rs, before, nil)); err != nil {
			t.Errorf("%s: %v (the cutoff cannot be matched)", name, err)
		}
		if got := w.Stats().SubjectKeyMissing; got != (name == "no key") {
			t.Errorf("%s: SubjectKeyMissing = %v", name, got)
		}
	}
}
