package etcdtest_test

import (
	"errors"
	"testing"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/signet-auth/signet/storage/etcd/etcdtest"
)

func TestSingle(t *testing.T) {
	c := etcdtest.Start(t, etcdtest.Options{})
	cl := c.Client()
	if _, err := cl.Put(t.Context(), "k", "v1"); err != nil {
		t.Fatal(err)
	}
	resp, err := cl.Get(t.Context(), "k")
	if err != nil || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "v1" {
		t.Fatalf("Get = %v, %v, want v1", resp, err)
	}
	old := resp.Header.Revision
	if _, err := cl.Put(t.Context(), "k", "v2"); err != nil {
		t.Fatal(err)
	}
	c.Compact(t.Context())
	if _, err := cl.Get(t.Context(), "k", clientv3.WithRev(old)); !errors.Is(err, rpctypes.ErrCompacted) {
		t.Fatalf("Get at compacted revision = %v, want ErrCompacted", err)
	}
}

// TestThree stops and restarts a member: the cluster keeps quorum and the
// restarted member catches up.
func TestThree(t *testing.T) {
	c := etcdtest.Start(t, etcdtest.Options{Members: 3})
	c.Stop(0)
	if _, err := c.Client().Put(t.Context(), "k", "while m0 was down"); err != nil {
		t.Fatal(err)
	}
	c.Restart(0)
	cl, err := etcdtest.NewClient(c.Member(0).Endpoint())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	resp, err := cl.Get(t.Context(), "k")
	if err != nil || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "while m0 was down" {
		t.Fatalf("Get on restarted member = %v, %v", resp, err)
	}
}
