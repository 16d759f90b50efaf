//go:build pkcs11

package keys_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/signet-auth/signet/keys"
	"github.com/signet-auth/signet/keys/custody/pkcs11/softhsmtest"
	"github.com/signet-auth/signet/storage/etcd"
	"github.com/signet-auth/signet/storage/etcd/etcdtest"
)

// TestPKCS11_TwoReplicasAtOnce_Etcd is TestRotate_TwoReplicasAtOnce_Etcd
// with the keys in one PKCS#11 token that both replicas reach (what a
// network HSM gives a fleet): two operators rotate at the same moment,
// exactly one rotation happens, the replica that lost destroys the keys it
// generated for nothing (no orphan), and both replicas then sign with the
// same new key through the token. A revocation through one replica moves
// the other's signer too.
func TestPKCS11_TwoReplicasAtOnce_Etcd(t *testing.T) {
	c := etcdtest.Start(t, etcdtest.Options{})
	hsm := softhsmtest.Open(t, "signet-fleet")
	algs := []string{"ES256"}
	prefix := fmt.Sprintf("hsmfleet%d/", operatorPrefixes.Add(1))
	var ms []*keys.Manager
	for range 2 {
		st, err := etcd.Open(t.Context(), etcd.Options{Endpoints: c.Endpoints(), Prefix: prefix})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = st.Close() })
		ms = append(ms, openManager(t, readBarrier{st}, keys.Options{Algorithms: algs, Custody: hsmCustody(hsm)}))
	}
	converged := func(what string) string {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			a, _ := ms[0].SigningKey("ES256")
			b, _ := ms[1].SigningKey("ES256")
			if a != nil && b != nil && a.KeyID() == b.KeyID() {
				return a.KeyID()
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: replicas sign with different keys after 10s", what)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	for round := range 3 {
		before := byState(ms[0].Current())
		var read, wg sync.WaitGroup
		read.Add(len(ms))
		errs := make([]error, len(ms))
		start := make(chan struct{})
		for i, m := range ms {
			wg.Go(func() {
				<-start
				ctx := context.WithValue(t.Context(), barrierKey{}, barrier{once: new(sync.Once), wg: &read})
				errs[i] = m.Rotate(ctx, true)
			})
		}
		close(start)
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("round %d: operator %d: %v", round, i, err)
			}
		}
		infos, err := ms[1].List(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		after := byState(infos)
		if n := len(after[keys.StateActive]["ES256"]); n != 1 {
			t.Fatalf("round %d: %d active keys, want 1", round, n)
		}
		if after[keys.StateActive]["ES256"][0].KID != before[keys.StatePending]["ES256"][0].KID {
			t.Fatalf("round %d: the new active key is not the pending key of before", round)
		}
		orphans, err := ms[0].Orphans(t.Context())
		if err != nil || len(orphans) != 0 {
			t.Fatalf("round %d: orphans %v, %v; want none (the loser destroys what it generated)", round, orphans, err)
		}
		kid := converged(fmt.Sprintf("round %d", round))
		for _, m := range ms {
			if got := signAndVerify(t, m, "ES256"); got != kid {
				t.Fatalf("round %d: signed with %s, want %s", round, got, kid)
			}
		}
	}
	active, _ := ms[0].SigningKey("ES256")
	if err := ms[0].Revoke(t.Context(), active.KeyID()); err != nil {
		t.Fatal(err)
	}
	if kid := converged("after revoke"); kid == active.KeyID() {
		t.Fatal("the revoked key still signs")
	}
	signAndVerify(t, ms[1], "ES256")
}
