package etcd_test

import (
	"errors"
	"strconv"
	"testing"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/signet-auth/signet/storage"
	"github.com/signet-auth/signet/storage/etcd"
	"github.com/signet-auth/signet/storage/etcd/etcdtest"
)

// TestUpdate_CommitWithoutAnswer (issue 17): a commit whose answer is lost
// (etcd's leader died after applying it, or before) is not reported as a
// failure of unknown outcome when the store can find out: applied, Update
// and Batch return nil (the caller answers what happened); not applied,
// they return storage.ErrUnavailable and the lost transaction can no
// longer apply if it arrives late, so the client's retry is safe.
func TestUpdate_CommitWithoutAnswer(t *testing.T) {
	c := etcdtest.Start(t, etcdtest.Options{})
	s := open(t, c)
	incr := func(tx storage.Tx) error {
		b, err := tx.Get("c", "n")
		if err != nil {
			return err
		}
		n, _ := strconv.Atoi(string(b))
		return tx.Put("c", "n", []byte(strconv.Itoa(n+1)))
	}
	if err := s.Update(t.Context(), func(tx storage.Tx) error { return tx.Put("c", "n", []byte("0")) }); err != nil {
		t.Fatal(err)
	}
	value := func() string {
		var v []byte
		if err := s.View(t.Context(), func(tx storage.Tx) error {
			var err error
			v, err = tx.Get("c", "n")
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return string(v)
	}
	for _, run := range []struct {
		name string
		op   func() error
	}{
		{"Update", func() error { return s.Update(t.Context(), incr) }},
		{"Batch", func() error { return s.Batch(t.Context(), incr) }},
	} {
		// Applied, answer lost.
		etcd.SetCommitHook(s, func(send func() (*clientv3.TxnResponse, error)) (*clientv3.TxnResponse, error) {
			if _, err := send(); err != nil {
				return nil, err
			}
			return nil, rpctypes.ErrTimeoutDueToLeaderFail
		})
		before := value()
		if err := run.op(); err != nil {
			t.Errorf("%s: applied commit without an answer = %v, want nil", run.name, err)
		}
		if got, want := value(), strconv.Itoa(atoi(before)+1); got != want {
			t.Errorf("%s: n = %s after one applied increment, want %s", run.name, got, want)
		}

		// Not applied: the answer is lost before etcd applies it. etcd
		// may still apply it later, unless its checks fail by then: the
		// key it read must have a new revision (same value).
		rev := modRev(t, c, s.Prefix()+"b/c/n")
		etcd.SetCommitHook(s, func(send func() (*clientv3.TxnResponse, error)) (*clientv3.TxnResponse, error) {
			return nil, rpctypes.ErrTimeoutDueToLeaderFail
		})
		before = value()
		err := run.op()
		etcd.SetCommitHook(s, nil)
		if !errors.Is(err, storage.ErrUnavailable) {
			t.Errorf("%s: lost commit = %v, want storage.ErrUnavailable", run.name, err)
		}
		if got := value(); got != before {
			t.Errorf("%s: n = %s, want %s unchanged", run.name, got, before)
		}
		if now := modRev(t, c, s.Prefix()+"b/c/n"); now == rev {
			t.Errorf("%s: the key the lost transaction read still has revision %d: it could apply late, after the client retried", run.name, rev)
		}
	}
}

func modRev(t *testing.T, c *etcdtest.Cluster, key string) int64 {
	t.Helper()
	resp, err := c.Client().Get(t.Context(), key)
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("get %s: %v", key, err)
	}
	return resp.Kvs[0].ModRevision
}

func atoi(s string) int { n, _ := strconv.Atoi(s); return n }
