package keys_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/signet-auth/signet/keys"
	"github.com/signet-auth/signet/storage"
	"github.com/signet-auth/signet/storage/etcd"
	"github.com/signet-auth/signet/storage/etcd/etcdtest"
)

var operatorPrefixes atomic.Int64

// readBarrier holds every caller whose context carries a barrier after its
// first View, until all of them have read: both operators then decide on
// the same key set, which is what "at the same moment" means. (Without it
// one may read after the other committed, and a second rotation is then a
// later, separate rotation.)
type readBarrier struct{ storage.Store }

type barrier struct {
	once *sync.Once
	wg   *sync.WaitGroup
}

type barrierKey struct{}

func (s readBarrier) View(ctx context.Context, fn func(storage.Tx) error) error {
	err := s.Store.View(ctx, fn)
	if b, ok := ctx.Value(barrierKey{}).(barrier); ok {
		b.once.Do(func() { b.wg.Done(); b.wg.Wait() })
	}
	return err
}

// TestRotate_TwoReplicasAtOnce_Etcd: two operators rotate at the same
// moment through two replicas (two Managers, each with its own etcd
// client) of one store. The rotation transaction checks the active keys it
// read, so exactly one rotation happens: one new active key per algorithm,
// never two, never none. Repeated 20 times with a barrier.
func TestRotate_TwoReplicasAtOnce_Etcd(t *testing.T) {
	c := etcdtest.Start(t, etcdtest.Options{})
	algs := []string{"ES256", "EdDSA"}
	for round := range 20 {
		prefix := fmt.Sprintf("operators%d/", operatorPrefixes.Add(1))
		var ms []*keys.Manager
		for range 2 {
			st, err := etcd.Open(t.Context(), etcd.Options{Endpoints: c.Endpoints(), Prefix: prefix})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = st.Close() })
			ms = append(ms, openManager(t, readBarrier{st}, keys.Options{Algorithms: algs}))
		}
		before := byState(ms[0].Current())
		start := make(chan struct{})
		var read, wg sync.WaitGroup
		read.Add(len(ms))
		errs := make([]error, len(ms))
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
		infos, err := ms[1].List(t.Context()) // read from etcd, not a snapshot
		if err != nil {
			t.Fatal(err)
		}
		after := byState(infos)
		for _, alg := range algs {
			if n := len(after[keys.StateActive][alg]); n != 1 {
				t.Fatalf("round %d: %d active %s keys, want 1", round, n, alg)
			}
			if n, was := len(after[keys.StateRetired][alg]), len(before[keys.StateRetired][alg]); n != was+1 {
				t.Fatalf("round %d: %s retired keys went from %d to %d: want exactly one rotation", round, alg, was, n)
			}
			if after[keys.StateActive][alg][0].KID != before[keys.StatePending][alg][0].KID {
				t.Fatalf("round %d: the new active %s key is not the pending key of before", round, alg)
			}
		}
	}
}
