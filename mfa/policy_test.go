package mfa_test

import (
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/signet-auth/signet/mfa"
	"github.com/signet-auth/signet/storage/bolt"
)

// TestPolicy_Evaluate: who a requirement concerns and when its grace
// period ends. The configured policy's start is written once per user, by
// the first evaluation (of any replica: the store is shared); later and
// concurrent evaluations read the same due date; the operator's
// requirement counts from when it was set, the earlier start winning.
func TestPolicy_Evaluate(t *testing.T) {
	st, err := bolt.Open(filepath.Join(t.TempDir(), "s.db"), bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := t.Context()
	t0 := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	grace := 168 * time.Hour
	eval := func(p mfa.Policy, s mfa.Subject, now time.Time) mfa.Demand {
		t.Helper()
		d, err := p.Evaluate(ctx, st, s, now)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	none := mfa.Policy{RequiredFor: mfa.RequiredForNone, Grace: grace}
	if d := eval(none, mfa.Subject{UserID: "u1", Admin: true}, t0); d.Required {
		t.Fatalf("policy none: %+v", d)
	}
	admins := mfa.Policy{RequiredFor: mfa.RequiredForAdmins, Grace: grace}
	if d := eval(admins, mfa.Subject{UserID: "u1"}, t0); d.Required {
		t.Fatalf("policy admins, not an admin: %+v", d)
	}
	all := mfa.Policy{RequiredFor: mfa.RequiredForAll, Grace: grace}
	var wg sync.WaitGroup
	dues := make([]time.Time, 8)
	for i := range dues {
		wg.Go(func() {
			d, err := all.Evaluate(ctx, st, mfa.Subject{UserID: "u2"}, t0.Add(time.Duration(i)*time.Second))
			if err != nil {
				t.Error(err)
			}
			dues[i] = d.Due
		})
	}
	wg.Wait()
	for _, due := range dues[1:] {
		if !due.Equal(dues[0]) || due.Before(t0.Add(grace)) || due.After(t0.Add(grace+8*time.Second)) {
			t.Fatalf("due dates of concurrent first evaluations: %v", dues)
		}
	}
	later := eval(all, mfa.Subject{UserID: "u2"}, t0.Add(100*time.Hour))
	if !later.Due.Equal(dues[0]) || !later.InGrace(t0.Add(100*time.Hour), true) || !later.MustEnrol(dues[0], true) {
		t.Fatalf("a later evaluation: %+v, want due %v", later, dues[0])
	}
	// The operator's requirement, set before the policy applied.
	early := t0.Add(-24 * time.Hour)
	if d := eval(all, mfa.Subject{UserID: "u2", Required: true, RequiredSince: early}, t0); !d.Due.Equal(early.Add(grace)) {
		t.Fatalf("operator's earlier requirement: due %v, want %v", d.Due, early.Add(grace))
	}
	if d := eval(none, mfa.Subject{UserID: "u3", Required: true, RequiredSince: t0}, t0); !d.Required || !d.Due.Equal(t0.Add(grace)) {
		t.Fatalf("operator's requirement alone: %+v", d)
	}
	if err := (mfa.Policy{RequiredFor: "everyone"}).Validate(); err == nil {
		t.Fatal("policy everyone validated")
	}
}
