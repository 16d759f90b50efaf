package mfa_test

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/signet-auth/signet/keys"
	"github.com/signet-auth/signet/mfa"
	"github.com/signet-auth/signet/storage/etcd"
	"github.com/signet-auth/signet/storage/etcd/etcdtest"
	"github.com/signet-auth/signet/totp"
)

// TestReplicas_Etcd_CodeOnce: two replicas on one etcd cluster are sent
// the same code (and the same recovery code) at the same moment; exactly
// one accepts it, every round.
func TestReplicas_Etcd_CodeOnce(t *testing.T) {
	c := etcdtest.Start(t, etcdtest.Options{})
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	kek := make([]byte, keys.KEKSize)
	var replicas []*mfa.Factors
	for range 2 {
		st, err := etcd.Open(t.Context(), etcd.Options{Endpoints: c.Endpoints(), Prefix: "/mfa-test/"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = st.Close() })
		replicas = append(replicas, mfa.New(st, kek, clock))
	}
	secret, err := replicas[0].BeginTOTP(t.Context(), "u1")
	if err != nil {
		t.Fatal(err)
	}
	codes, err := replicas[1].ConfirmTOTP(t.Context(), "u1", totp.Code(secret, totp.Step(now)))
	if err != nil {
		t.Fatal(err)
	}
	race := func(name string, check func(f *mfa.Factors) error) {
		t.Helper()
		errs := make([]error, len(replicas))
		var wg sync.WaitGroup
		for i, f := range replicas {
			wg.Add(1)
			go func() { defer wg.Done(); errs[i] = check(f) }()
		}
		wg.Wait()
		ok, refused := 0, 0
		for _, err := range errs {
			switch {
			case err == nil:
				ok++
			case errors.Is(err, mfa.ErrBadCode):
				refused++
			default:
				t.Fatalf("%s: %v", name, err)
			}
		}
		if ok != 1 || refused != len(replicas)-1 {
			t.Fatalf("%s: accepted by %d replicas, refused by %d; want 1 and %d", name, ok, refused, len(replicas)-1)
		}
	}
	for round := range 5 {
		mu.Lock()
		now = now.Add(totp.Period)
		mu.Unlock()
		code := totp.Code(secret, totp.Step(clock()))
		race("TOTP code", func(f *mfa.Factors) error { return f.VerifyTOTP(t.Context(), "u1", code) })
		race("recovery code", func(f *mfa.Factors) error { return f.UseRecoveryCode(t.Context(), "u1", codes[round]) })
	}
}
