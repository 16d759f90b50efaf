package leader_test

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/signet-auth/signet/keys"
	"github.com/signet-auth/signet/storage"
	"github.com/signet-auth/signet/storage/etcd"
	"github.com/signet-auth/signet/storage/etcd/etcdtest"
	"github.com/signet-auth/signet/storage/etcd/leader"
)

type replica struct {
	name    string
	store   *etcd.Store
	elector *leader.Elector
	changes chan bool
}

func startReplica(t *testing.T, c *etcdtest.Cluster, name string) *replica {
	t.Helper()
	st, err := etcd.Open(t.Context(), etcd.Options{Endpoints: c.Endpoints(), Prefix: "fence/"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	r := &replica{name: name, store: st, changes: make(chan bool, 16)}
	r.elector = leader.Start(t.Context(), leader.Options{
		Client: st.Client(), Prefix: st.Prefix() + "leader/", Name: name, TTL: 2 * time.Second,
		OnChange: func(leading bool) { r.changes <- leading },
	})
	t.Cleanup(r.elector.Close)
	return r
}

// firstLeader waits for one of rs to report leadership.
func firstLeader(t *testing.T, rs ...*replica) *replica {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		for _, r := range rs {
			select {
			case leading := <-r.changes:
				if leading {
					return r
				}
			default:
			}
		}
		select {
		case <-timeout:
			t.Fatal("no leader within 20s")
		case <-time.After(10 * time.Millisecond): // polling several channels, bounded by timeout
		}
	}
}

// TestElector_ResignHandsOver: one of two replicas leads, and when it
// closes (resigns) the other leads well before the session TTL would have
// passed; the new leader's fence differs from the old one.
func TestElector_ResignHandsOver(t *testing.T) {
	c := etcdtest.Start(t, etcdtest.Options{})
	a, b := startReplica(t, c, "a"), startReplica(t, c, "b")
	first := firstLeader(t, a, b)
	other := a
	if first == a {
		other = b
	}
	ctx, done, ok := first.elector.Lead(t.Context())
	if !ok {
		t.Fatal("leader's Lead returned false")
	}
	oldFence, _ := storage.FenceFrom(ctx)
	done()
	if _, _, ok := other.elector.Lead(t.Context()); ok {
		t.Fatal("both replicas lead")
	}
	start := time.Now()
	first.elector.Close()
	if got := firstLeader(t, other); got != other {
		t.Fatal("unexpected leader")
	}
	took := time.Since(start)
	t.Logf("handover after resign: %s", took.Round(time.Millisecond))
	if took >= 2*time.Second {
		t.Errorf("handover took %s: not faster than the 2s session TTL, so the old leader did not resign", took)
	}
	nctx, ndone, ok := other.elector.Lead(t.Context())
	if !ok {
		t.Fatal("new leader's Lead returned false")
	}
	defer ndone()
	newFence, _ := storage.FenceFrom(nctx)
	if newFence == oldFence {
		t.Fatalf("new term has the old fence %+v", oldFence)
	}
	if other.elector.Leader() != other.name {
		t.Errorf("observed leader %q, want %q", other.elector.Leader(), other.name)
	}
}

// TestFence_DeposedLeaderRotationRefused: a scheduled rotation run by a
// leader that has been deposed (its context still fenced by its old term)
// is refused by etcd with storage.ErrFenced and leaves the keys unchanged,
// while the new leader's rotation commits.
func TestFence_DeposedLeaderRotationRefused(t *testing.T) {
	c := etcdtest.Start(t, etcdtest.Options{})
	a, b := startReplica(t, c, "a"), startReplica(t, c, "b")
	first := firstLeader(t, a, b)
	other := a
	if first == a {
		other = b
	}
	km, err := keys.Open(t.Context(), keys.Options{Store: first.store, KEK: bytes.Repeat([]byte{7}, keys.KEKSize), Algorithms: []string{"ES256"}})
	if err != nil {
		t.Fatal(err)
	}
	defer km.Close()
	ctx, done, _ := first.elector.Lead(t.Context())
	oldFence, _ := storage.FenceFrom(ctx)
	done()
	if err := km.RotateScheduled(storage.WithFence(t.Context(), oldFence)); err != nil {
		t.Fatalf("the leader's fenced rotation: %v", err)
	}
	before, err := keys.List(t.Context(), first.store)
	if err != nil {
		t.Fatal(err)
	}

	first.elector.Close() // deposed (a lost lease looks the same to etcd: the key is gone)
	firstLeader(t, other)
	err = km.RotateScheduled(storage.WithFence(t.Context(), oldFence))
	if !errors.Is(err, storage.ErrFenced) {
		t.Fatalf("deposed leader's rotation: got %v, want storage.ErrFenced", err)
	}
	after, err := keys.List(t.Context(), first.store)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(before) != fmt.Sprint(after) {
		t.Fatalf("keys changed by a fenced rotation:\nbefore %v\nafter  %v", before, after)
	}
	// Purge is fenced the same way (nothing to purge may mean no write;
	// a nil error is fine, a write would be refused).
	if _, err := km.Purge(storage.WithFence(t.Context(), oldFence)); err != nil && !errors.Is(err, storage.ErrFenced) {
		t.Fatalf("deposed purge: %v", err)
	}

	nctx, ndone, ok := other.elector.Lead(t.Context())
	if !ok {
		t.Fatal("new leader does not lead")
	}
	defer ndone()
	if err := km.RotateScheduled(nctx); err != nil {
		t.Fatalf("new leader's rotation: %v", err)
	}
	final, err := keys.List(t.Context(), first.store)
	if err != nil {
		t.Fatal(err)
	}
	if slices.EqualFunc(after, final, func(x, y keys.Info) bool { return x.KID == y.KID && x.State == y.State }) {
		t.Fatal("the new leader's rotation changed nothing")
	}
}

// TestElector_StepDownStartsANewTerm: a replica whose fenced write was
// refused steps down, and when it leads again it holds a new fence, so
// nothing fenced by its old term can commit.
func TestElector_StepDownStartsANewTerm(t *testing.T) {
	c := etcdtest.Start(t, etcdtest.Options{})
	a := startReplica(t, c, "a")
	firstLeader(t, a)
	ctx, done, ok := a.elector.Lead(t.Context())
	if !ok {
		t.Fatal("not leading")
	}
	old, _ := storage.FenceFrom(ctx)
	a.elector.StepDown(errors.New("test: fenced write refused"))
	<-ctx.Done() // the old term's jobs are cancelled
	done()
	if leading := <-a.changes; leading {
		t.Fatal("still leading after StepDown")
	}
	firstLeader(t, a)
	nctx, ndone, ok := a.elector.Lead(t.Context())
	if !ok {
		t.Fatal("not leading again")
	}
	defer ndone()
	if f, _ := storage.FenceFrom(nctx); f == old {
		t.Fatalf("new term kept the old fence %+v", old)
	}
}
