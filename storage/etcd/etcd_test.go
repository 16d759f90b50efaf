package etcd_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

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

const waitTimeout = 20 * time.Second

func put(t *testing.T, s storage.Store, bucket, key, value string) {
	t.Helper()
	if err := s.Update(t.Context(), func(tx storage.Tx) error { return tx.Put(bucket, key, []byte(value)) }); err != nil {
		t.Fatalf("Update(Put %s/%s) = %v", bucket, key, err)
	}
}

func del(t *testing.T, s storage.Store, bucket, key string) {
	t.Helper()
	if err := s.Update(t.Context(), func(tx storage.Tx) error { return tx.Delete(bucket, key) }); err != nil {
		t.Fatalf("Update(Delete %s/%s) = %v", bucket, key, err)
	}
}

func fmtEvent(e storage.Event) string {
	if e.Deleted {
		return e.Key + " deleted"
	}
	return e.Key + "=" + string(e.Value)
}

// expect reads len(want) events (formatted by fmtEvent) in order.
func expect(t *testing.T, ch <-chan storage.Event, want ...string) {
	t.Helper()
	for i, w := range want {
		select {
		case ev, ok := <-ch:
			if !ok {
				t.Fatalf("watch closed before event %d (%s)", i, w)
			}
			if got := fmtEvent(ev); got != w {
				t.Fatalf("event %d = %s, want %s", i, got, w)
			}
		case <-time.After(waitTimeout):
			t.Fatalf("no event %d (%s) within %s", i, w, waitTimeout)
		}
	}
}

// TestWatch_Disconnect runs a store whose only endpoint is member 0 of a
// three-member cluster while member 0 is down and the others carry on.
func TestWatch_Disconnect(t *testing.T) {
	c := etcdtest.Start(t, etcdtest.Options{Members: 3})
	others := []string{c.Member(1).Endpoint(), c.Member(2).Endpoint()}

	// Without compaction the watch resumes where it stopped: every event,
	// in order, none twice.
	t.Run("Resume", func(t *testing.T) {
		a := open(t, c, c.Member(0).Endpoint())
		b := openPrefix(t, c, a.Prefix(), others...)
		ch := a.Watch(t.Context(), "w")
		put(t, b, "w", "k", "1")
		expect(t, ch, "k=1")
		c.Stop(0)
		put(t, b, "w", "k", "2")
		put(t, b, "w", "new", "1")
		del(t, b, "w", "k")
		c.Restart(0)
		put(t, b, "w", "after", "1")
		expect(t, ch, "k=2", "new=1", "k deleted", "after=1")
	})

	// With the history compacted past the watcher's revision while it is
	// cut off, it reloads the bucket and reports the difference in key
	// order: the last value of each changed key, the deletions, nothing
	// for unchanged keys or for keys created and deleted meanwhile.
	t.Run("Compacted", func(t *testing.T) {
		a := open(t, c, c.Member(0).Endpoint())
		b := openPrefix(t, c, a.Prefix(), others...)
		for _, k := range []string{"changed", "gone", "keep"} {
			put(t, b, "w", k, "1")
		}
		ch := a.Watch(t.Context(), "w")
		put(t, b, "w", "changed", "2")
		expect(t, ch, "changed=2")
		c.Stop(0)
		put(t, b, "w", "changed", "3")
		del(t, b, "w", "gone")
		put(t, b, "w", "new", "1")
		put(t, b, "w", "changed", "4")
		put(t, b, "w", "flash", "1")
		del(t, b, "w", "flash")
		put(t, b, "other", "x", "not watched")
		c.Compact(t.Context())
		c.Restart(0)
		expect(t, ch, "changed=4", "gone deleted", "new=1")
		// And it follows live changes again.
		put(t, b, "w", "after", "1")
		expect(t, ch, "after=1")
	})

	// A Watch that cannot reach etcd when called keeps trying, and once it
	// can it reports every record of the bucket, since it cannot know what
	// changed meanwhile.
	t.Run("StartWhileDown", func(t *testing.T) {
		prefix := fmt.Sprintf("test%d/", prefixes.Add(1))
		a, err := etcd.Open(t.Context(), etcd.Options{Endpoints: []string{c.Member(0).Endpoint()}, Prefix: prefix, RequestTimeout: 300 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		defer a.Close()
		b := openPrefix(t, c, prefix, others...)
		put(t, b, "w", "k1", "1")
		c.Stop(0)
		ch := a.Watch(t.Context(), "w")
		put(t, b, "w", "k2", "1")
		c.Restart(0)
		expect(t, ch, "k1=1", "k2=1")
		put(t, b, "w", "k3", "1")
		expect(t, ch, "k3=1")
	})
}

// TestPrefix: stores on different prefixes of one cluster share nothing.
func TestPrefix(t *testing.T) {
	c := etcdtest.Start(t, etcdtest.Options{})
	a := openPrefix(t, c, "deployment-a")
	b := openPrefix(t, c, "deployment-a-b/") // extends a's prefix textually
	chB := b.Watch(t.Context(), "w")
	put(t, a, "w", "k", "a")
	put(t, b, "w", "mine", "b")
	expect(t, chB, "mine=b")
	err := b.View(t.Context(), func(tx storage.Tx) error {
		if _, err := tx.Get("w", "k"); !errors.Is(err, storage.ErrNotFound) {
			return fmt.Errorf("Get(w/k) on b = %v, want ErrNotFound", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if a.Prefix() != "deployment-a/" {
		t.Errorf("Prefix() = %q, want a slash added", a.Prefix())
	}
	resp, err := c.Client().Get(t.Context(), "deployment-a/b/w/k")
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("raw key deployment-a/b/w/k: %v, %v; want the documented layout", resp, err)
	}
}

// TestUpdate_ConflictBound: an Update whose reads change on every attempt
// gives up with ErrConflict after MaxAttempts runs.
func TestUpdate_ConflictBound(t *testing.T) {
	c := etcdtest.Start(t, etcdtest.Options{})
	a := open(t, c)
	s, err := etcd.Open(t.Context(), etcd.Options{Endpoints: c.Endpoints(), Prefix: a.Prefix(), MaxAttempts: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	runs := 0
	err = s.Update(t.Context(), func(tx storage.Tx) error {
		runs++
		if _, err := tx.Get("b", "k"); err != nil && !errors.Is(err, storage.ErrNotFound) {
			return err
		}
		put(t, a, "b", "k", fmt.Sprint(runs)) // another replica writes what we read
		return tx.Put("b", "mine", []byte("x"))
	})
	if !errors.Is(err, storage.ErrConflict) || runs != 3 {
		t.Fatalf("Update = %v after %d runs, want ErrConflict after 3", err, runs)
	}
	err = s.View(t.Context(), func(tx storage.Tx) error {
		_, err := tx.Get("b", "mine")
		return err
	})
	if !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("write of a conflicting Update is visible: %v", err)
	}
}

// TestUpdate_ManyReads: more reads than etcd accepts checks in one
// transaction are checked bucket-wide, which still catches a conflict.
func TestUpdate_ManyReads(t *testing.T) {
	c := etcdtest.Start(t, etcdtest.Options{})
	a := open(t, c)
	b := openPrefix(t, c, a.Prefix())
	runs := 0
	err := a.Update(t.Context(), func(tx storage.Tx) error {
		runs++
		for i := range etcd.DefaultMaxTxnOps + 50 {
			if _, err := tx.Get("r", fmt.Sprint(i)); !errors.Is(err, storage.ErrNotFound) {
				return fmt.Errorf("Get(r/%d) = %v, want ErrNotFound", i, err)
			}
		}
		if runs == 1 {
			put(t, b, "r", "unrelated-key", "x") // not one of the keys read, but in the bucket
		}
		return tx.Put("out", "k", []byte("x"))
	})
	if err != nil || runs != 2 {
		t.Fatalf("Update = %v after %d runs, want nil after 2 (bucket-wide check, one retry)", err, runs)
	}
}

// TestUpdate_TooManyWrites: a transaction larger than etcd accepts fails
// with an error that says so, not a conflict, and writes nothing.
func TestUpdate_TooManyWrites(t *testing.T) {
	c := etcdtest.Start(t, etcdtest.Options{})
	s := open(t, c)
	err := s.Update(t.Context(), func(tx storage.Tx) error {
		for i := range etcd.DefaultMaxTxnOps + 1 {
			if err := tx.Put("b", fmt.Sprint(i), nil); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil || errors.Is(err, storage.ErrConflict) || !strings.Contains(err.Error(), "max-txn-ops") {
		t.Fatalf("Update(129 puts) = %v, want an error naming --max-txn-ops", err)
	}
	err = s.View(t.Context(), func(tx storage.Tx) error { _, err := tx.Get("b", "0"); return err })
	if !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("Get after failed Update = %v, want ErrNotFound", err)
	}
}

// TestScan_Paged: Scan and Watch read a bucket far larger than the
// client accepts in one response.
func TestScan_Paged(t *testing.T) {
	c := etcdtest.Start(t, etcdtest.Options{})
	w := open(t, c)
	const n, size, limit = 3000, 1000, 1 << 20 // 3 MB of values, 1 MiB responses
	value := strings.Repeat("v", size)
	for i := 0; i < n; i += 100 {
		err := w.Update(t.Context(), func(tx storage.Tx) error {
			for j := i; j < i+100; j++ {
				if err := tx.Put("big", fmt.Sprintf("%05d", j), []byte(value)); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	s, err := etcd.OpenWithRecvLimit(t.Context(), etcd.Options{Endpoints: c.Endpoints(), Prefix: w.Prefix()}, limit)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// The limit bites: one response for the whole bucket is refused.
	if _, err := s.Client().Get(t.Context(), w.Prefix()+"b/big/", clientv3.WithPrefix()); err == nil {
		t.Fatalf("unpaged Get of %d bytes under a %d-byte limit succeeded; the test proves nothing", n*size, limit)
	}
	count := 0
	err = s.View(t.Context(), func(tx storage.Tx) error {
		return tx.Scan("big", "", func(k string, v []byte) error {
			if k != fmt.Sprintf("%05d", count) || len(v) != size {
				return fmt.Errorf("record %d: key %s, %d bytes", count, k, len(v))
			}
			count++
			return nil
		})
	})
	if err != nil || count != n {
		t.Fatalf("Scan = %v after %d records, want nil after %d", err, count, n)
	}
	ch := s.Watch(t.Context(), "big") // reads the bucket's keys in pages too
	put(t, w, "big", "z", "end")
	expect(t, ch, "z=end")
}

func TestOpen_Errors(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + l.Addr().String()
	l.Close() // nothing listens there now
	start := time.Now()
	_, err = etcd.Open(t.Context(), etcd.Options{Endpoints: []string{dead}, DialTimeout: 300 * time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), dead) {
		t.Errorf("Open(%s) = %v, want an error naming the endpoint", dead, err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Open took %s with a 300ms DialTimeout", d)
	}

	dir := t.TempDir()
	notPEM := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, opts := range map[string]etcd.Options{
		"no endpoints": {},
		"missing CA":   {Endpoints: []string{dead}, TLS: etcd.TLSFiles{CAFile: filepath.Join(dir, "absent.pem")}},
		"CA not PEM":   {Endpoints: []string{dead}, TLS: etcd.TLSFiles{CAFile: notPEM}},
		"cert, no key": {Endpoints: []string{dead}, TLS: etcd.TLSFiles{CertFile: notPEM}},
		"cert not PEM": {Endpoints: []string{dead}, TLS: etcd.TLSFiles{CertFile: notPEM, KeyFile: notPEM}},
	} {
		if _, err := etcd.Open(t.Context(), opts); err == nil {
			t.Errorf("Open(%s) = nil error", name)
		}
	}
}

// TestUpdate_Deadline: a caller's deadline bounds a request to a cluster
// that cannot answer (its only member is down).
func TestUpdate_Deadline(t *testing.T) {
	c := etcdtest.Start(t, etcdtest.Options{})
	s := open(t, c)
	c.Stop(0)
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := s.Update(ctx, func(tx storage.Tx) error {
		_, err := tx.Get("b", "k")
		return err
	})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Update with a member down = %v, want DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Update took %s under a 300ms deadline", d)
	}
	c.Restart(0)
}

// TestView_Unreachable: a View that reads nothing still fails when etcd
// does not answer, so a readiness check built on View(nop) means something.
func TestView_Unreachable(t *testing.T) {
	c := etcdtest.Start(t, etcdtest.Options{})
	s := open(t, c)
	nop := func(storage.Tx) error { return nil }
	if err := s.View(t.Context(), nop); err != nil {
		t.Fatalf("View(nop) = %v", err)
	}
	c.Stop(0)
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	if err := s.View(ctx, nop); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("View(nop) with etcd down = %v, want DeadlineExceeded", err)
	}
	c.Restart(0)
	if err := s.View(t.Context(), nop); err != nil {
		t.Errorf("View(nop) after restart = %v", err)
	}
}

// holdBatch holds the Batch committer in a first commit, starts one Batch
// per fns[i] and waits until each has run and queued, in order; release
// lets the committer go on, and results yields the Batch results.
func holdBatch(t *testing.T, s *etcd.Store, fns []func(storage.Tx) error) (release func(), results <-chan error) {
	t.Helper()
	hold, entered := make(chan struct{}), make(chan struct{})
	var once sync.Once
	etcd.SetBeforeGroupCommit(s, func() {
		once.Do(func() {
			close(entered)
			<-hold
		})
	})
	first := make(chan error, 1)
	go func() {
		first <- s.Batch(t.Context(), func(tx storage.Tx) error { return tx.Put("held", "k", nil) })
	}()
	select {
	case <-entered:
	case <-time.After(waitTimeout):
		t.Fatal("first Batch did not reach the committer")
	}
	out := make(chan error, len(fns))
	deadline := time.Now().Add(waitTimeout)
	for i, fn := range fns {
		go func() { out <- s.Batch(t.Context(), fn) }()
		for etcd.BatchQueueLen(s) != i+1 {
			if time.Now().After(deadline) {
				t.Fatalf("%d of %d Batch calls queued", etcd.BatchQueueLen(s), len(fns))
			}
			time.Sleep(100 * time.Microsecond) // polling an eventual condition, bounded
		}
	}
	return func() {
		close(hold)
		if err := <-first; err != nil {
			t.Errorf("first Batch = %v", err)
		}
	}, out
}

// revisions returns the ModRevision of each key under bucket.
func revisions(t *testing.T, s *etcd.Store, bucket string) map[string]int64 {
	t.Helper()
	resp, err := s.Client().Get(t.Context(), s.Prefix()+"b/"+bucket+"/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	revs := map[string]int64{}
	for _, kv := range resp.Kvs {
		revs[string(kv.Key)[len(s.Prefix()+"b/"+bucket+"/"):]] = kv.ModRevision
	}
	return revs
}

func distinct(revs map[string]int64) int {
	seen := map[int64]bool{}
	for _, r := range revs {
		seen[r] = true
	}
	return len(seen)
}

func incr(tx storage.Tx) error {
	n := 0
	if v, err := tx.Get("g", "counter"); err == nil {
		if _, err := fmt.Sscan(string(v), &n); err != nil {
			return err
		}
	} else if !errors.Is(err, storage.ErrNotFound) {
		return err
	}
	return tx.Put("g", "counter", []byte(fmt.Sprint(n+1)))
}

// TestBatch_Group: independent Batch transactions ready together share one
// commit; one that writes what a member read waits for the next commit,
// and is checked against the first (its stale read is a conflict, re-run).
func TestBatch_Group(t *testing.T) {
	c := etcdtest.Start(t, etcdtest.Options{})
	s := open(t, c)
	ch := s.Watch(t.Context(), "g")
	const n = 10
	var fns []func(storage.Tx) error
	for i := range n {
		fns = append(fns, func(tx storage.Tx) error { return tx.Put("g", fmt.Sprintf("k%02d", i), []byte("v")) })
	}
	fns = append(fns, incr, incr)
	release, results := holdBatch(t, s, fns)
	release()
	for range fns {
		if err := <-results; err != nil {
			t.Fatalf("Batch = %v", err)
		}
	}
	revs := revisions(t, s, "g")
	if len(revs) != n+1 {
		t.Fatalf("%d keys, want %d", len(revs), n+1)
	}
	shared := revs["k00"]
	for k, r := range revs {
		if k != "counter" && r != shared {
			t.Errorf("%s committed at %d, k00 at %d: want one shared commit", k, r, shared)
		}
	}
	if r := revs["counter"]; r <= shared {
		t.Errorf("counter last written at %d, not after the shared commit %d", r, shared)
	}
	v, err := func() (v []byte, err error) {
		err = s.View(t.Context(), func(tx storage.Tx) error { v, err = tx.Get("g", "counter"); return err })
		return v, err
	}()
	if err != nil || string(v) != "2" {
		t.Fatalf("counter = %q, %v, want 2 (both increments)", v, err)
	}
	// Watchers see each change once.
	put(t, s, "g", "end", "")
	seen := map[string]int{}
	for {
		ev := <-ch
		if ev.Key == "end" {
			break
		}
		seen[ev.Key]++
	}
	if len(seen) != n+1 || seen["counter"] != 2 || seen["k00"] != 1 {
		t.Errorf("events %v, want one per put and two for counter", seen)
	}
	// A function that fails writes nothing.
	if err := s.Batch(t.Context(), func(tx storage.Tx) error {
		if err := tx.Put("g", "failed", nil); err != nil {
			return err
		}
		return errors.New("boom")
	}); err == nil || err.Error() != "boom" {
		t.Fatalf("failing Batch = %v, want boom", err)
	}
	if _, ok := revisions(t, s, "g")["failed"]; ok {
		t.Error("a failed Batch wrote its key")
	}
}

// TestBatch_Split: transactions whose writes together pass --max-txn-ops
// are committed in several etcd transactions, all of them.
func TestBatch_Split(t *testing.T) {
	c := etcdtest.Start(t, etcdtest.Options{})
	s := open(t, c)
	var fns []func(storage.Tx) error
	for i := range 5 {
		fns = append(fns, func(tx storage.Tx) error {
			for j := range 50 {
				if err := tx.Put("s", fmt.Sprintf("%d-%02d", i, j), nil); err != nil {
					return err
				}
			}
			return nil
		})
	}
	release, results := holdBatch(t, s, fns)
	release()
	for range fns {
		if err := <-results; err != nil {
			t.Fatalf("Batch = %v", err)
		}
	}
	revs := revisions(t, s, "s")
	if len(revs) != 250 || distinct(revs) != 3 {
		t.Fatalf("%d keys in %d commits, want 250 in 3 (two by two, at most %d writes each)", len(revs), distinct(revs), etcd.DefaultMaxTxnOps)
	}
}

// TestBatch_Conflict: when a shared commit fails a check, each member is
// committed on its own; the one whose read changed runs again.
func TestBatch_Conflict(t *testing.T) {
	c := etcdtest.Start(t, etcdtest.Options{})
	s := open(t, c)
	other := openPrefix(t, c, s.Prefix())
	var runs atomic.Int32
	fns := []func(storage.Tx) error{
		func(tx storage.Tx) error {
			runs.Add(1)
			if _, err := tx.Get("c", "read"); err != nil && !errors.Is(err, storage.ErrNotFound) {
				return err
			}
			return tx.Put("c", "a", nil)
		},
		func(tx storage.Tx) error { return tx.Put("c", "b", nil) },
	}
	release, results := holdBatch(t, s, fns)
	put(t, other, "c", "read", "changed by another replica after the read")
	release()
	for range fns {
		if err := <-results; err != nil {
			t.Fatalf("Batch = %v", err)
		}
	}
	if runs.Load() != 2 {
		t.Errorf("the reading function ran %d times, want 2", runs.Load())
	}
	if revs := revisions(t, s, "c"); len(revs) != 3 || revs["a"] <= revs["read"] {
		t.Errorf("revisions %v: want a committed after read", revs)
	}
}

// TestBatch_WriteSkew: two transactions that each write what the other
// read must not share a commit (each would pass its checks against the
// state before it, and together they are not serializable).
func TestBatch_WriteSkew(t *testing.T) {
	c := etcdtest.Start(t, etcdtest.Options{})
	s := open(t, c)
	putIfAbsent := func(read, write string) func(storage.Tx) error {
		return func(tx storage.Tx) error {
			if _, err := tx.Get("w", read); !errors.Is(err, storage.ErrNotFound) {
				return err // present (nil): nothing to do
			}
			return tx.Put("w", write, nil)
		}
	}
	release, results := holdBatch(t, s, []func(storage.Tx) error{putIfAbsent("x", "y"), putIfAbsent("y", "x")})
	release()
	for range 2 {
		if err := <-results; err != nil {
			t.Fatalf("Batch = %v", err)
		}
	}
	if revs := revisions(t, s, "w"); len(revs) != 1 {
		t.Fatalf("keys %v: want exactly one of x and y", revs)
	}
}
