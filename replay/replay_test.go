package replay_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/signet-auth/signet/jwks"
	"github.com/signet-auth/signet/replay"
	"github.com/signet-auth/signet/storage"
	"github.com/signet-auth/signet/storage/bolt"
	"github.com/signet-auth/signet/storage/etcd"
	"github.com/signet-auth/signet/storage/etcd/etcdtest"
)

// The cache is what the jwks DPoP checker takes.
var _ jwks.DPoPReplayCache = (*replay.Cache)(nil)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func openBolt(t *testing.T) storage.Store {
	st, err := bolt.Open(filepath.Join(t.TempDir(), "signet.db"), bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// TestCache_Bolt: an id is fresh once until it expires; an expired record
// is overwritten, and Purge deletes only expired ones.
func TestCache_Bolt(t *testing.T) {
	ctx := t.Context()
	clk := &clock{t: time.Unix(1_800_000_000, 0)}
	c := replay.New(openBolt(t), replay.DPoPBucket, clk.Now)
	remember := func(id string, ttl time.Duration) bool {
		t.Helper()
		ok, err := c.Remember(ctx, id, clk.Now().Add(ttl))
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	if !remember("a", time.Minute) || remember("a", time.Minute) {
		t.Fatal("a: want fresh once")
	}
	if !remember("b", 10*time.Minute) {
		t.Fatal("b")
	}
	clk.Add(30 * time.Second)
	if remember("a", time.Minute) {
		t.Fatal("a accepted again inside its window")
	}
	clk.Add(time.Minute)
	if p := c.Purge(ctx, "test"); p.Err != nil || p.Deleted != 1 || p.Kind != "test" {
		t.Fatalf("Purge = %+v, want 1 deleted (a)", p)
	}
	if remember("b", time.Minute) {
		t.Fatal("b was purged early")
	}
	if !remember("a", time.Minute) {
		t.Fatal("a after its expiry: want fresh")
	}
}

// TestCache_Etcd_TwoReplicas: two replicas on one etcd cluster race to
// spend the same ids; each id is accepted exactly once across both.
func TestCache_Etcd_TwoReplicas(t *testing.T) {
	cl := etcdtest.Start(t, etcdtest.Options{})
	var caches [2]*replay.Cache
	for i := range caches {
		st, err := etcd.Open(t.Context(), etcd.Options{Endpoints: cl.Endpoints(), Prefix: "/replay-test/"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = st.Close() })
		caches[i] = replay.New(st, replay.DPoPBucket, nil)
	}
	var accepted atomic.Int64
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 20; i++ {
				ok, err := caches[g%2].Remember(context.Background(), fmt.Sprint("id-", i), time.Now().Add(time.Minute))
				if err != nil {
					t.Error(err)
				}
				if ok {
					accepted.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if accepted.Load() != 20 {
		t.Fatalf("accepted %d, want 20", accepted.Load())
	}
}
