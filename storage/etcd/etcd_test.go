package etcd_test

import (
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/signet-auth/signet/storage"
	"github.com/signet-auth/signet/storage/etcd"
	"github.com/signet-auth/signet/storage/etcd/etcdtest"
	"github.com/signet-auth/signet/storage/storagetest"
)

// prefixes numbers the stores of a test so each starts empty on a shared
// cluster (the way several deployments share one).
var prefixes atomic.Int64

func open(t *testing.T, c *etcdtest.Cluster, endpoints ...string) *etcd.Store {
	t.Helper()
	return openPrefix(t, c, fmt.Sprintf("test%d/", prefixes.Add(1)), endpoints...)
}

func openPrefix(t *testing.T, c *etcdtest.Cluster, prefix string, endpoints ...string) *etcd.Store {
	t.Helper()
	if len(endpoints) == 0 {
		endpoints = c.Endpoints()
	}
	s, err := etcd.Open(t.Context(), etcd.Options{Endpoints: endpoints, Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestStore(t *testing.T) {
	c := etcdtest.Start(t, etcdtest.Options{})
	storagetest.Run(t, func(t *testing.T) storage.Store { return open(t, c) }, second(c))
}

// second opens another store on s's prefix, as a second replica would.
func second(c *etcdtest.Cluster) storagetest.Option {
	return storagetest.WithSecondStore(func(t *testing.T, s storage.Store) storage.Store {
		return openPrefix(t, c, s.(*etcd.Store).Prefix())
	})
}
