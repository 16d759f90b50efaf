package authority_test

import (
	"testing"

	"github.com/signet-auth/signet/storage"
	"github.com/signet-auth/signet/storage/etcd"
	"github.com/signet-auth/signet/storage/etcd/etcdtest"
)

// TestPurge_Etcd: the purge job deletes more dead records than etcd allows
// in one transaction (--max-txn-ops, 128 by default) and keeps the live
// ones. One transaction over everything failed there.
func TestPurge_Etcd(t *testing.T) {
	c := etcdtest.Start(t, etcdtest.Options{})
	st, err := etcd.Open(t.Context(), etcd.Options{Endpoints: c.Endpoints(), Prefix: "/purge-test/"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	e := newEnv(t, envOptions{algs: []string{"ES256"}, store: st})
	sec := e.userClient("app", nil)
	alice := e.createUser("alice")
	e.createUser("bob")
	const n = 150
	for range n {
		e.login("app", sec, "alice", nil)
	}
	_, keep := e.login("app", sec, "bob", nil)
	// Her logout revokes the families of all of alice's logins.
	if _, err := e.srv.Logout(t.Context(), alice); err != nil {
		t.Fatal(err)
	}
	got, err := e.srv.Purge(t.Context())
	if err != nil {
		t.Fatalf("Purge = %v", err)
	}
	if want := 3 * n; got != want { // per family: record, token, index entry
		t.Errorf("Purge deleted %d records, want %d", got, want)
	}
	if s, b := e.refresh("app", sec, keep, nil); s != 200 {
		t.Errorf("live family after purge: refresh = %d %v", s, b)
	}
	left := 0
	err = st.View(t.Context(), func(tx storage.Tx) error {
		return tx.Scan("refresh_families", "", func(string, []byte) error { left++; return nil })
	})
	if err != nil || left != 1 {
		t.Errorf("families left = %d, %v; want 1 (bob's)", left, err)
	}
}
