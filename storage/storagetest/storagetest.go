// Package storagetest is the conformance suite every storage.Store backend
// runs unchanged, in the manner of testing/fstest: a backend's test is one
// call to Run.
//
// The suite allows for shared, optimistic backends (etcd): Update may return
// storage.ErrConflict under contention (the concurrency tests retry it), and
// Watch events may arrive some time after the commit (the watch tests wait on
// channels with a generous timeout and never sleep).
//
// Tests that need two stores on the same data (two replicas on one etcd
// cluster) run only when the backend passes WithSecondStore; the others run
// on every backend. A backend that cannot open its data twice (bbolt: one
// process holds the file lock) does not pass it, and Run logs that those
// tests did not run. They are the Shared_* tests in shared.go.
package storagetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/signet-auth/signet/storage"
)

// waitTimeout bounds every wait for a watch event or a closed channel. It is
// generous because a remote backend's watch may lag and CI machines are slow.
const waitTimeout = 10 * time.Second

// errTest is the error test transactions return to force a rollback.
var errTest = errors.New("storagetest: deliberate failure")

// Option adds an ability of the backend to Run.
type Option func(*config)

type config struct {
	second func(t *testing.T, s storage.Store) storage.Store
}

// WithSecondStore runs the tests of two stores on the same data: second
// opens another store (as another replica would) on the data of s, which
// open returned. Run closes both.
func WithSecondStore(second func(t *testing.T, s storage.Store) storage.Store) Option {
	return func(c *config) { c.second = second }
}

// Run runs the conformance suite. open must return a fresh, empty store for
// each subtest; Run closes it when the subtest ends.
func Run(t *testing.T, open func(t *testing.T) storage.Store, opts ...Option) {
	var cfg config
	for _, o := range opts {
		o(&cfg)
	}
	tests := []struct {
		name string
		fn   func(t *testing.T, s storage.Store)
	}{
		{"Get_Empty", testGetEmpty},
		{"RoundTrip", testRoundTrip},
		{"Delete_Absent", testDeleteAbsent},
		{"Scan_Prefix", testScanPrefix},
		{"Scan_MissingBucket", testScanMissingBucket},
		{"Scan_Error", testScanError},
		{"Values_Owned", testValuesOwned},
		{"Update_Error_NoChange", testUpdateErrorNoChange},
		{"View_Error", testViewError},
		{"CanceledContext", testCanceledContext},
		{"UseAfterClose", testUseAfterClose},
		{"Batch_RoundTrip", testBatchRoundTrip},
		{"Batch_Error_NoChange", testBatchErrorNoChange},
		{"Update_Concurrent", testUpdateConcurrent},
		{"Batch_Concurrent", testBatchConcurrent},
		{"Watch_Order", testWatchOrder},
		{"Watch_RolledBack", testWatchRolledBack},
		{"Watch_TwoWatchers", testWatchTwoWatchers},
		{"Watch_SlowReader", testWatchSlowReader},
		{"Watch_Batch", testWatchBatch},
		{"Watch_Cancel", testWatchCancel},
		{"Watch_Close", testWatchClose},
		{"Watch_ThenView", testWatchThenView},
		{"LargeValue", testLargeValue},
		{"EmptyValue", testEmptyValue},
		{"Buckets", testBuckets},
		{"BucketNames", testBucketNames},
		{"Scan_Many", testScanMany},
		{"Scan_OwnWrites", testScanOwnWrites},
		{"Update_ScanInsertConflict", testUpdateScanInsertConflict},
		{"Update_ScanDeleteConflict", testUpdateScanDeleteConflict},
		{"Batch_Increment", testBatchIncrement},
		{"DeleteUnchanged", testDeleteUnchanged},
		{"DeleteUnchanged_Many", testDeleteUnchangedMany},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, openClosed(t, open))
		})
	}
	if cfg.second == nil {
		var names []string
		for _, tc := range sharedTests() {
			names = append(names, tc.name)
		}
		t.Logf("not run: %v (the backend cannot open a second store on the same data)", names)
		return
	}
	for _, tc := range sharedTests() {
		t.Run(tc.name, func(t *testing.T) {
			a := openClosed(t, open)
			b := cfg.second(t, a)
			t.Cleanup(func() {
				if err := b.Close(); err != nil && !errors.Is(err, storage.ErrClosed) {
					t.Errorf("Close() second store = %v", err)
				}
			})
			tc.fn(t, a, b)
		})
	}
}

// openClosed opens a store that is closed when the test ends.
func openClosed(t *testing.T, open func(t *testing.T) storage.Store) storage.Store {
	s := open(t)
	t.Cleanup(func() {
		if err := s.Close(); err != nil && !errors.Is(err, storage.ErrClosed) {
			t.Errorf("Close() = %v", err)
		}
	})
	return s
}

// put writes one key in its own Update.
func put(t *testing.T, s storage.Store, bucket, key string, value []byte) {
	t.Helper()
	err := s.Update(t.Context(), func(tx storage.Tx) error {
		return tx.Put(bucket, key, value)
	})
	if err != nil {
		t.Fatalf("Update(Put %s/%s) = %v", bucket, key, err)
	}
}

// get reads one key in its own View.
func get(t *testing.T, s storage.Store, bucket, key string) ([]byte, error) {
	t.Helper()
	var v []byte
	err := s.View(t.Context(), func(tx storage.Tx) error {
		var err error
		v, err = tx.Get(bucket, key)
		return err
	})
	return v, err
}

// mustGet reads a key that must exist and have the value want.
func mustGet(t *testing.T, s storage.Store, bucket, key string, want []byte) {
	t.Helper()
	got, err := get(t, s, bucket, key)
	if err != nil {
		t.Fatalf("Get(%s, %s) error = %v, want nil", bucket, key, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("Get(%s, %s) = %q, want %q", bucket, key, got, want)
	}
}

// mustNotFound checks that a key is absent.
func mustNotFound(t *testing.T, s storage.Store, bucket, key string) {
	t.Helper()
	if got, err := get(t, s, bucket, key); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("Get(%s, %s) = %q, %v, want ErrNotFound", bucket, key, got, err)
	}
}

// scan returns the keys and values of bucket under prefix.
func scan(t *testing.T, s storage.Store, bucket, prefix string) (keys []string, values [][]byte) {
	t.Helper()
	err := s.View(t.Context(), func(tx storage.Tx) error {
		return tx.Scan(bucket, prefix, func(k string, v []byte) error {
			keys = append(keys, k)
			values = append(values, v)
			return nil
		})
	})
	if err != nil {
		t.Fatalf("Scan(%s, %q) = %v", bucket, prefix, err)
	}
	return keys, values
}

// retry calls fn until it returns something other than storage.ErrConflict.
func retry(fn func() error) error {
	for {
		if err := fn(); !errors.Is(err, storage.ErrConflict) {
			return err
		}
	}
}

// recv waits for the next event on ch.
func recv(t *testing.T, ch <-chan storage.Event) storage.Event {
	t.Helper()
	select {
	case ev, ok := <-ch:
		if !ok {
			t.Fatalf("watch channel closed, want an event")
		}
		return ev
	case <-time.After(waitTimeout):
		t.Fatalf("no watch event within %s", waitTimeout)
	}
	return storage.Event{}
}

// expectEvents reads len(want) events and compares them in order.
func expectEvents(t *testing.T, ch <-chan storage.Event, want []storage.Event) {
	t.Helper()
	for i, w := range want {
		got := recv(t, ch)
		if !sameEvent(got, w) {
			t.Fatalf("event %d = %s, want %s", i, fmtEvent(got), fmtEvent(w))
		}
	}
}

func sameEvent(a, b storage.Event) bool {
	return a.Bucket == b.Bucket && a.Key == b.Key && a.Deleted == b.Deleted && bytes.Equal(a.Value, b.Value)
}

func fmtEvent(e storage.Event) string {
	if e.Deleted {
		return fmt.Sprintf("{%s/%s deleted}", e.Bucket, e.Key)
	}
	return fmt.Sprintf("{%s/%s=%q}", e.Bucket, e.Key, e.Value)
}

// expectClosed waits for ch to be closed, discarding events still queued.
func expectClosed(t *testing.T, ch <-chan storage.Event) {
	t.Helper()
	deadline := time.After(waitTimeout)
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return
			}
		case <-deadline:
			t.Fatalf("watch channel not closed within %s", waitTimeout)
		}
	}
}

func testGetEmpty(t *testing.T, s storage.Store) {
	mustNotFound(t, s, "b", "k")
	put(t, s, "b", "other", []byte("x"))
	mustNotFound(t, s, "b", "k")
}

func testRoundTrip(t *testing.T, s storage.Store) {
	put(t, s, "b", "k", []byte("v1"))
	mustGet(t, s, "b", "k", []byte("v1"))
	put(t, s, "b", "k", []byte("v2"))
	mustGet(t, s, "b", "k", []byte("v2"))
	mustNotFound(t, s, "other", "k") // buckets are separate namespaces

	// A transaction sees its own writes.
	err := s.Update(t.Context(), func(tx storage.Tx) error {
		if err := tx.Put("b", "k2", []byte("v3")); err != nil {
			return err
		}
		got, err := tx.Get("b", "k2")
		if err != nil || string(got) != "v3" {
			return fmt.Errorf("Get in tx = %q, %v, want v3", got, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	err = s.Update(t.Context(), func(tx storage.Tx) error { return tx.Delete("b", "k") })
	if err != nil {
		t.Fatalf("Update(Delete) = %v", err)
	}
	mustNotFound(t, s, "b", "k")
	mustGet(t, s, "b", "k2", []byte("v3"))
}

func testDeleteAbsent(t *testing.T, s storage.Store) {
	err := s.Update(t.Context(), func(tx storage.Tx) error {
		if err := tx.Delete("missing-bucket", "k"); err != nil {
			return fmt.Errorf("Delete on missing bucket: %w", err)
		}
		if err := tx.Put("b", "k", []byte("v")); err != nil {
			return err
		}
		if err := tx.Delete("b", "absent"); err != nil {
			return fmt.Errorf("Delete absent key: %w", err)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("Update = %v, want nil", err)
	}
	mustGet(t, s, "b", "k", []byte("v"))
}

func testScanPrefix(t *testing.T, s storage.Store) {
	// Written in scrambled order, in two buckets with overlapping keys, and
	// in a bucket whose name extends the first one's.
	in := []string{"p/\xff", "p/b", "o", "p/a/2", "p", "p/", "q", "p/a", "p/a/1", "pp"}
	err := s.Update(t.Context(), func(tx storage.Tx) error {
		for _, k := range in {
			for _, b := range []string{"b1", "b2", "b1x"} {
				if err := tx.Put(b, k, []byte(b+":"+k)); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		prefix string
		want   []string
	}{
		{"p/", []string{"p/", "p/a", "p/a/1", "p/a/2", "p/b", "p/\xff"}},
		{"p/a", []string{"p/a", "p/a/1", "p/a/2"}},
		{"p", []string{"p", "p/", "p/a", "p/a/1", "p/a/2", "p/b", "p/\xff", "pp"}},
		{"", []string{"o", "p", "p/", "p/a", "p/a/1", "p/a/2", "p/b", "p/\xff", "pp", "q"}},
		{"z", nil},
	}
	for _, tc := range tests {
		keys, values := scan(t, s, "b1", tc.prefix)
		if !slices.Equal(keys, tc.want) {
			t.Errorf("Scan(b1, %q) keys = %q, want %q", tc.prefix, keys, tc.want)
			continue
		}
		for i, k := range keys {
			if want := "b1:" + k; string(values[i]) != want {
				t.Errorf("Scan(b1, %q) value of %q = %q, want %q", tc.prefix, k, values[i], want)
			}
		}
	}
}

func testScanMissingBucket(t *testing.T, s storage.Store) {
	put(t, s, "other", "k", []byte("v"))
	keys, _ := scan(t, s, "missing", "")
	if len(keys) != 0 {
		t.Fatalf("Scan(missing) keys = %q, want none", keys)
	}
}

func testScanError(t *testing.T, s storage.Store) {
	for _, k := range []string{"a", "b", "c"} {
		put(t, s, "b", k, []byte(k))
	}
	var seen []string
	err := s.View(t.Context(), func(tx storage.Tx) error {
		return tx.Scan("b", "", func(k string, _ []byte) error {
			seen = append(seen, k)
			if k == "b" {
				return errTest
			}
			return nil
		})
	})
	if !errors.Is(err, errTest) {
		t.Fatalf("View(Scan returning error) = %v, want %v", err, errTest)
	}
	if want := []string{"a", "b"}; !slices.Equal(seen, want) {
		t.Fatalf("Scan visited %q, want %q (stop at the error)", seen, want)
	}
}

func testValuesOwned(t *testing.T, s storage.Store) {
	put(t, s, "b", "k", []byte("value"))
	var fromGet, fromScan []byte
	err := s.View(t.Context(), func(tx storage.Tx) error {
		var err error
		if fromGet, err = tx.Get("b", "k"); err != nil {
			return err
		}
		return tx.Scan("b", "", func(_ string, v []byte) error {
			fromScan = v
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	// Valid after the transaction, and writable without touching the store.
	if string(fromGet) != "value" || string(fromScan) != "value" {
		t.Fatalf("after View: Get = %q, Scan = %q, want value", fromGet, fromScan)
	}
	copy(fromGet, "XXXXX")
	copy(fromScan, "YYYYY")
	mustGet(t, s, "b", "k", []byte("value"))
}

func testUpdateErrorNoChange(t *testing.T, s storage.Store) {
	put(t, s, "b", "keep", []byte("old"))
	put(t, s, "b", "gone", []byte("old"))
	err := s.Update(t.Context(), func(tx storage.Tx) error {
		if err := tx.Put("b", "keep", []byte("new")); err != nil {
			return err
		}
		if err := tx.Put("b", "added", []byte("new")); err != nil {
			return err
		}
		if err := tx.Put("newbucket", "k", []byte("new")); err != nil {
			return err
		}
		if err := tx.Delete("b", "gone"); err != nil {
			return err
		}
		return fmt.Errorf("wrapped: %w", errTest)
	})
	if !errors.Is(err, errTest) {
		t.Fatalf("Update = %v, want %v", err, errTest)
	}
	mustGet(t, s, "b", "keep", []byte("old"))
	mustGet(t, s, "b", "gone", []byte("old"))
	mustNotFound(t, s, "b", "added")
	mustNotFound(t, s, "newbucket", "k")
}

func testViewError(t *testing.T, s storage.Store) {
	err := s.View(t.Context(), func(storage.Tx) error { return errTest })
	if !errors.Is(err, errTest) {
		t.Fatalf("View = %v, want %v", err, errTest)
	}
	// Writing in a View must fail.
	err = s.View(t.Context(), func(tx storage.Tx) error { return tx.Put("b", "k", []byte("v")) })
	if err == nil {
		t.Fatalf("View(Put) = nil, want an error")
	}
	mustNotFound(t, s, "b", "k")
}

func testCanceledContext(t *testing.T, s storage.Store) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	write := func(tx storage.Tx) error { return tx.Put("b", "k", []byte("v")) }
	if err := s.Update(ctx, write); !errors.Is(err, context.Canceled) {
		t.Errorf("Update(canceled) = %v, want context.Canceled", err)
	}
	if err := s.Batch(ctx, write); !errors.Is(err, context.Canceled) {
		t.Errorf("Batch(canceled) = %v, want context.Canceled", err)
	}
	if err := s.View(ctx, func(storage.Tx) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Errorf("View(canceled) = %v, want context.Canceled", err)
	}
	mustNotFound(t, s, "b", "k")

	// A deadline that passed before the call: the error says so
	// (ErrDeadlinePassed, beside the context's error), so that a refusal
	// does not blame the store for time spent elsewhere.
	late, cancelLate := context.WithDeadline(t.Context(), time.Now().Add(-time.Second))
	defer cancelLate()
	for name, err := range map[string]error{
		"Update": s.Update(late, write),
		"Batch":  s.Batch(late, write),
		"View":   s.View(late, func(storage.Tx) error { return nil }),
	} {
		if !errors.Is(err, storage.ErrDeadlinePassed) || !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("%s(deadline passed) = %v, want ErrDeadlinePassed and context.DeadlineExceeded", name, err)
		}
	}
	mustNotFound(t, s, "b", "k")
}

func testUseAfterClose(t *testing.T, s storage.Store) {
	put(t, s, "b", "k", []byte("v"))
	if err := s.Close(); err != nil {
		t.Fatalf("Close() = %v", err)
	}
	nop := func(storage.Tx) error { return nil }
	if err := s.View(t.Context(), nop); !errors.Is(err, storage.ErrClosed) {
		t.Errorf("View after Close = %v, want ErrClosed", err)
	}
	if err := s.Update(t.Context(), nop); !errors.Is(err, storage.ErrClosed) {
		t.Errorf("Update after Close = %v, want ErrClosed", err)
	}
	if err := s.Batch(t.Context(), nop); !errors.Is(err, storage.ErrClosed) {
		t.Errorf("Batch after Close = %v, want ErrClosed", err)
	}
	expectClosed(t, s.Watch(t.Context(), "b"))
	if err := s.Close(); !errors.Is(err, storage.ErrClosed) {
		t.Errorf("second Close = %v, want ErrClosed", err)
	}
}

func testBatchRoundTrip(t *testing.T, s storage.Store) {
	err := s.Batch(t.Context(), func(tx storage.Tx) error {
		if err := tx.Put("b", "k1", []byte("v1")); err != nil {
			return err
		}
		return tx.Put("b", "k2", []byte("v2"))
	})
	if err != nil {
		t.Fatalf("Batch = %v", err)
	}
	mustGet(t, s, "b", "k1", []byte("v1"))
	err = s.Batch(t.Context(), func(tx storage.Tx) error { return tx.Delete("b", "k1") })
	if err != nil {
		t.Fatalf("Batch(Delete) = %v", err)
	}
	mustNotFound(t, s, "b", "k1")
	mustGet(t, s, "b", "k2", []byte("v2"))
}

func testBatchErrorNoChange(t *testing.T, s storage.Store) {
	put(t, s, "b", "keep", []byte("old"))
	err := s.Batch(t.Context(), func(tx storage.Tx) error {
		if err := tx.Put("b", "keep", []byte("new")); err != nil {
			return err
		}
		if err := tx.Put("b", "added", []byte("new")); err != nil {
			return err
		}
		return errTest
	})
	if !errors.Is(err, errTest) {
		t.Fatalf("Batch = %v, want %v", err, errTest)
	}
	mustGet(t, s, "b", "keep", []byte("old"))
	mustNotFound(t, s, "b", "added")
}

// testUpdateConcurrent has 32 goroutines increment one counter; every
// increment must survive (a backend may make a caller retry on conflict).
func testUpdateConcurrent(t *testing.T, s storage.Store) {
	const workers, n = 32, 8
	incr := func(tx storage.Tx) error {
		var c int
		v, err := tx.Get("b", "counter")
		switch {
		case errors.Is(err, storage.ErrNotFound):
		case err != nil:
			return err
		default:
			if _, err := fmt.Sscan(string(v), &c); err != nil {
				return err
			}
		}
		return tx.Put("b", "counter", []byte(fmt.Sprint(c+1)))
	}
	errs := make(chan error, workers)
	for range workers {
		go func() {
			for range n {
				if err := retry(func() error { return s.Update(t.Context(), incr) }); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range workers {
		if err := <-errs; err != nil {
			t.Errorf("Update(increment) = %v", err)
		}
	}
	mustGet(t, s, "b", "counter", []byte(fmt.Sprint(workers*n)))
}

// testBatchConcurrent has 32 goroutines each Batch-write their own keys.
func testBatchConcurrent(t *testing.T, s storage.Store) {
	const workers, n = 32, 4
	errs := make(chan error, workers)
	for w := range workers {
		go func() {
			for i := range n {
				k := fmt.Sprintf("w%02d-%d", w, i)
				err := retry(func() error {
					return s.Batch(t.Context(), func(tx storage.Tx) error { return tx.Put("b", k, []byte(k)) })
				})
				if err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range workers {
		if err := <-errs; err != nil {
			t.Errorf("Batch(Put) = %v", err)
		}
	}
	keys, values := scan(t, s, "b", "")
	if len(keys) != workers*n {
		t.Fatalf("Scan found %d keys, want %d", len(keys), workers*n)
	}
	for i, k := range keys {
		if string(values[i]) != k {
			t.Errorf("value of %q = %q, want %q", k, values[i], k)
		}
	}
}

func testWatchOrder(t *testing.T, s storage.Store) {
	ch := s.Watch(t.Context(), "w")
	err := s.Update(t.Context(), func(tx storage.Tx) error {
		if err := tx.Put("w", "k1", []byte("v1")); err != nil {
			return err
		}
		if err := tx.Put("other", "k1", []byte("not watched")); err != nil {
			return err
		}
		return tx.Put("w", "k2", []byte("v2"))
	})
	if err != nil {
		t.Fatal(err)
	}
	err = s.Update(t.Context(), func(tx storage.Tx) error { return tx.Delete("w", "k1") })
	if err != nil {
		t.Fatal(err)
	}
	put(t, s, "other", "k9", []byte("not watched"))
	put(t, s, "w", "k1", []byte("v3"))
	put(t, s, "w", "k2", nil)
	expectEvents(t, ch, []storage.Event{
		{Bucket: "w", Key: "k1", Value: []byte("v1")},
		{Bucket: "w", Key: "k2", Value: []byte("v2")},
		{Bucket: "w", Key: "k1", Deleted: true},
		{Bucket: "w", Key: "k1", Value: []byte("v3")},
		{Bucket: "w", Key: "k2", Value: []byte{}},
	})
}

func testWatchRolledBack(t *testing.T, s storage.Store) {
	ch := s.Watch(t.Context(), "w")
	put(t, s, "w", "k", []byte("committed"))
	rollback := func(tx storage.Tx) error {
		if err := tx.Put("w", "k", []byte("rolled back")); err != nil {
			return err
		}
		if err := tx.Put("w", "k2", []byte("rolled back")); err != nil {
			return err
		}
		return errTest
	}
	if err := s.Update(t.Context(), rollback); !errors.Is(err, errTest) {
		t.Fatalf("Update = %v, want %v", err, errTest)
	}
	if err := s.Batch(t.Context(), rollback); !errors.Is(err, errTest) {
		t.Fatalf("Batch = %v, want %v", err, errTest)
	}
	put(t, s, "w", "end", []byte("end"))
	// Events are in commit order, so the rolled-back writes would have to
	// show up before "end".
	expectEvents(t, ch, []storage.Event{
		{Bucket: "w", Key: "k", Value: []byte("committed")},
		{Bucket: "w", Key: "end", Value: []byte("end")},
	})
}

func testWatchTwoWatchers(t *testing.T, s storage.Store) {
	ch1 := s.Watch(t.Context(), "w")
	ch2 := s.Watch(t.Context(), "w")
	var want []storage.Event
	for i := range 5 {
		k, v := fmt.Sprint("k", i), []byte(fmt.Sprint("v", i))
		put(t, s, "w", k, v)
		want = append(want, storage.Event{Bucket: "w", Key: k, Value: v})
	}
	expectEvents(t, ch1, want)
	expectEvents(t, ch2, want)
}

// testWatchSlowReader checks that writers do not wait for a watcher that
// is not reading, and that the watcher later gets everything in order.
func testWatchSlowReader(t *testing.T, s storage.Store) {
	const n = 50
	ch := s.Watch(t.Context(), "w")
	var want []storage.Event
	for i := range n {
		want = append(want, storage.Event{Bucket: "w", Key: fmt.Sprintf("k%02d", i), Value: []byte{byte(i)}})
	}
	done := make(chan error, 1)
	go func() {
		for _, ev := range want {
			err := retry(func() error {
				return s.Update(t.Context(), func(tx storage.Tx) error { return tx.Put(ev.Bucket, ev.Key, ev.Value) })
			})
			if err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(waitTimeout):
		t.Fatalf("%d Updates did not finish within %s while the watcher was not reading", n, waitTimeout)
	}
	expectEvents(t, ch, want)
}

// testWatchBatch checks that writes through concurrent Batch calls are each
// reported exactly once, including when some calls in a batch fail.
func testWatchBatch(t *testing.T, s storage.Store) {
	const n = 16
	ch := s.Watch(t.Context(), "w")
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			k := fmt.Sprintf("k%02d", i)
			err := retry(func() error {
				return s.Batch(t.Context(), func(tx storage.Tx) error { return tx.Put("w", k, []byte(k)) })
			})
			if err != nil {
				t.Errorf("Batch(Put %s) = %v", k, err)
			}
		})
		wg.Go(func() {
			err := s.Batch(t.Context(), func(tx storage.Tx) error {
				if err := tx.Put("w", fmt.Sprintf("bad%02d", i), []byte("rolled back")); err != nil {
					return err
				}
				return errTest
			})
			if !errors.Is(err, errTest) {
				t.Errorf("Batch(failing) = %v, want %v", err, errTest)
			}
		})
	}
	wg.Wait()
	put(t, s, "w", "end", nil)
	seen := map[string]bool{}
	for {
		ev := recv(t, ch)
		if ev.Key == "end" {
			break
		}
		if ev.Deleted || string(ev.Value) != ev.Key {
			t.Fatalf("unexpected event %s", fmtEvent(ev))
		}
		if seen[ev.Key] {
			t.Fatalf("event for %s reported twice", ev.Key)
		}
		seen[ev.Key] = true
	}
	if len(seen) != n {
		t.Fatalf("saw %d events before end, want %d", len(seen), n)
	}
}

func testWatchCancel(t *testing.T, s storage.Store) {
	ctx, cancel := context.WithCancel(t.Context())
	ch := s.Watch(ctx, "w")
	other := s.Watch(t.Context(), "w")
	put(t, s, "w", "k", []byte("v"))
	cancel()
	expectClosed(t, ch)
	// The store and other watchers carry on.
	put(t, s, "w", "k2", []byte("v2"))
	expectEvents(t, other, []storage.Event{
		{Bucket: "w", Key: "k", Value: []byte("v")},
		{Bucket: "w", Key: "k2", Value: []byte("v2")},
	})
}

func testWatchClose(t *testing.T, s storage.Store) {
	ch := s.Watch(t.Context(), "w")
	put(t, s, "w", "k", []byte("v"))
	if err := s.Close(); err != nil {
		t.Fatalf("Close() = %v", err)
	}
	expectClosed(t, ch)
}

// testWatchThenView checks the pattern every cache built on Watch uses:
// subscribe, then load with View. A change the load does not see must arrive
// on the watch, even when its transaction had already written when Watch was
// called and commits only after the load.
func testWatchThenView(t *testing.T, s storage.Store) {
	written, release := make(chan struct{}), make(chan struct{})
	updated := make(chan error, 1)
	go func() {
		var once sync.Once
		updated <- s.Update(t.Context(), func(tx storage.Tx) error {
			if err := tx.Put("w", "k", []byte("v")); err != nil {
				return err
			}
			once.Do(func() { close(written) })
			<-release
			return nil
		})
	}()
	<-written
	type subscribed struct {
		ch   <-chan storage.Event
		seen bool
		err  error
	}
	loaded := make(chan subscribed, 1)
	go func() {
		ch := s.Watch(t.Context(), "w")
		_, err := get(t, s, "w", "k")
		switch {
		case err == nil:
			loaded <- subscribed{ch: ch, seen: true}
		case errors.Is(err, storage.ErrNotFound):
			loaded <- subscribed{ch: ch}
		default:
			loaded <- subscribed{err: err}
		}
	}()
	// A backend may hold Watch until writes already under way are settled.
	// Give the subscriber a moment to finish first, so that a backend which
	// returns from Watch at once is tested against the commit that follows;
	// the outcome checked below does not depend on this wait.
	var sub subscribed
	got := false
	select {
	case sub = <-loaded:
		got = true
	case <-time.After(200 * time.Millisecond):
	}
	close(release)
	if err := <-updated; err != nil {
		t.Fatalf("Update = %v", err)
	}
	if !got {
		select {
		case sub = <-loaded:
		case <-time.After(waitTimeout):
			t.Fatalf("Watch and View did not return within %s of the commit", waitTimeout)
		}
	}
	if sub.err != nil {
		t.Fatalf("View after Watch = %v", sub.err)
	}
	if !sub.seen {
		// Not in the load: the watch must report it.
		expectEvents(t, sub.ch, []storage.Event{{Bucket: "w", Key: "k", Value: []byte("v")}})
	}
}

func testLargeValue(t *testing.T, s storage.Store) {
	v := make([]byte, 1<<20)
	rand.Read(v)
	put(t, s, "b", "big", v)
	mustGet(t, s, "b", "big", v)
	put(t, s, "b", "after", []byte("x"))
	mustGet(t, s, "b", "big", v)
}

func testEmptyValue(t *testing.T, s storage.Store) {
	put(t, s, "b", "empty", []byte{})
	put(t, s, "b", "nil", nil)
	for _, k := range []string{"empty", "nil"} {
		got, err := get(t, s, "b", k)
		if err != nil || len(got) != 0 {
			t.Errorf("Get(b, %s) = %q, %v, want empty value and nil error", k, got, err)
		}
	}
	mustNotFound(t, s, "b", "absent")
	keys, _ := scan(t, s, "b", "")
	if want := []string{"empty", "nil"}; !slices.Equal(keys, want) {
		t.Errorf("Scan keys = %q, want %q", keys, want)
	}
}

// testBucketNames checks that bucket and key names cannot collide, whatever
// separator or escape a backend uses to lay them out.
func testBucketNames(t *testing.T, s storage.Store) {
	records := []struct{ bucket, key string }{
		{"a/b", "c"}, {"a", "b/c"}, {"a%2Fb", "c"}, {"a", "b%2Fc"}, {"a%", "2Fb/c"}, {"%", "a"}, {"a", "%"},
	}
	ch := s.Watch(t.Context(), "a")
	err := s.Update(t.Context(), func(tx storage.Tx) error {
		for i, r := range records {
			if err := tx.Put(r.bucket, r.key, []byte(fmt.Sprint(i))); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range records {
		mustGet(t, s, r.bucket, r.key, []byte(fmt.Sprint(i)))
	}
	if keys, _ := scan(t, s, "a", ""); !slices.Equal(keys, []string{"%", "b%2Fc", "b/c"}) {
		t.Errorf("Scan(a) = %q, want [%% b%%2Fc b/c]", keys)
	}
	if keys, _ := scan(t, s, "a/b", ""); !slices.Equal(keys, []string{"c"}) {
		t.Errorf("Scan(a/b) = %q, want [c]", keys)
	}
	put(t, s, "a", "end", nil)
	expectEvents(t, ch, []storage.Event{
		{Bucket: "a", Key: "b/c", Value: []byte("1")},
		{Bucket: "a", Key: "b%2Fc", Value: []byte("3")},
		{Bucket: "a", Key: "%", Value: []byte("6")},
		{Bucket: "a", Key: "end", Value: []byte{}},
	})
}

// testScanMany scans more records than a remote backend returns in one
// response (etcd pages at 500), in order, across page boundaries.
func testScanMany(t *testing.T, s storage.Store) {
	const n, perUpdate = 1234, 100
	// Written backwards, a hundred per transaction.
	for hi := n; hi > 0; hi -= perUpdate {
		err := s.Update(t.Context(), func(tx storage.Tx) error {
			for i := hi - 1; i >= max(0, hi-perUpdate); i-- {
				if err := tx.Put("many", fmt.Sprintf("k%05d", i), []byte(fmt.Sprint(i))); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatalf("Update(puts below %d) = %v", hi, err)
		}
	}
	keys, values := scan(t, s, "many", "")
	if len(keys) != n {
		t.Fatalf("Scan found %d keys, want %d", len(keys), n)
	}
	for i, k := range keys {
		if want := fmt.Sprintf("k%05d", i); k != want || string(values[i]) != fmt.Sprint(i) {
			t.Fatalf("Scan record %d = %s=%q, want %s=%d", i, k, values[i], want, i)
		}
	}
	if keys, _ := scan(t, s, "many", "k006"); len(keys) != 100 || keys[0] != "k00600" || keys[99] != "k00699" {
		t.Errorf("Scan(k006) = %d keys from %q to %q, want 100 from k00600 to k00699", len(keys), keys[0], keys[len(keys)-1])
	}
	// Stopping in the second page.
	n2 := 0
	err := s.View(t.Context(), func(tx storage.Tx) error {
		return tx.Scan("many", "", func(string, []byte) error {
			if n2++; n2 == 700 {
				return errTest
			}
			return nil
		})
	})
	if !errors.Is(err, errTest) || n2 != 700 {
		t.Errorf("Scan stopped by fn: %v after %d records, want %v after 700", err, n2, errTest)
	}
}

// testScanOwnWrites: inside a transaction, Scan and Get see the
// transaction's own puts, overwrites and deletes, in key order.
func testScanOwnWrites(t *testing.T, s storage.Store) {
	for _, k := range []string{"a", "c", "e", "x"} {
		put(t, s, "b", k, []byte("old "+k))
	}
	want := []string{"a=old a", "b=new b", "e=new e", "g=new g", "x=old x"}
	check := func(tx storage.Tx) error {
		var got []string
		err := tx.Scan("b", "", func(k string, v []byte) error {
			got = append(got, k+"="+string(v))
			return nil
		})
		if err != nil {
			return err
		}
		if !slices.Equal(got, want) {
			return fmt.Errorf("Scan = %q, want %q", got, want)
		}
		if _, err := tx.Get("b", "c"); !errors.Is(err, storage.ErrNotFound) {
			return fmt.Errorf("Get(deleted c) = %v, want ErrNotFound", err)
		}
		return nil
	}
	err := s.Update(t.Context(), func(tx storage.Tx) error {
		for _, k := range []string{"g", "b", "e"} {
			if err := tx.Put("b", k, []byte("new "+k)); err != nil {
				return err
			}
		}
		if err := tx.Put("b", "c", []byte("short-lived")); err != nil {
			return err
		}
		if err := tx.Delete("b", "c"); err != nil {
			return err
		}
		if err := tx.Delete("b", "absent"); err != nil {
			return err
		}
		return check(tx)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.View(t.Context(), check); err != nil {
		t.Fatalf("after commit: %v", err)
	}
}

// racers runs n functions at once (after a common start) and waits for them.
func racers(n int, fn func(i int)) {
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			fn(i)
		})
	}
	close(start)
	wg.Wait()
}

// testUpdateScanInsertConflict: transactions that insert only into an empty
// bucket (as read by Scan) must not both commit: a key created in a scanned
// range since the scan is a conflict.
func testUpdateScanInsertConflict(t *testing.T, s storage.Store) {
	racers(8, func(i int) {
		err := retry(func() error {
			return s.Update(t.Context(), func(tx storage.Tx) error {
				empty := true
				if err := tx.Scan("slot", "", func(string, []byte) error { empty = false; return nil }); err != nil {
					return err
				}
				if !empty {
					return nil
				}
				return tx.Put("slot", fmt.Sprint("taken by ", i), nil)
			})
		})
		if err != nil {
			t.Errorf("Update = %v", err)
		}
	})
	if keys, _ := scan(t, s, "slot", ""); len(keys) != 1 {
		t.Fatalf("slot holds %q, want exactly one key", keys)
	}
}

// testUpdateScanDeleteConflict: transactions that delete one of two keys
// only while both exist (as read by Scan) must leave one: a key deleted in
// a scanned range since the scan is a conflict, though it is no longer
// there to compare.
func testUpdateScanDeleteConflict(t *testing.T, s storage.Store) {
	scanDeleteRace(t, []storage.Store{s})
}

func scanDeleteRace(t *testing.T, stores []storage.Store) {
	for _, k := range []string{"a", "b"} {
		put(t, stores[0], "pair", k, nil)
	}
	racers(8, func(i int) {
		err := retry(func() error {
			return stores[i%len(stores)].Update(t.Context(), func(tx storage.Tx) error {
				var keys []string
				if err := tx.Scan("pair", "", func(k string, _ []byte) error { keys = append(keys, k); return nil }); err != nil {
					return err
				}
				if len(keys) < 2 {
					return nil
				}
				return tx.Delete("pair", keys[i%2])
			})
		})
		if err != nil {
			t.Errorf("Update = %v", err)
		}
	})
	if keys, _ := scan(t, stores[0], "pair", ""); len(keys) != 1 {
		t.Fatalf("pair holds %q, want exactly one key", keys)
	}
}

// testBatchIncrement: concurrent Batch read-modify-writes of one counter
// all count, whether a backend shares one transaction among them (each
// function sees the writes of those before it) or not.
func testBatchIncrement(t *testing.T, s storage.Store) {
	const workers = 32
	racers(workers, func(int) {
		err := retry(func() error {
			return s.Batch(t.Context(), func(tx storage.Tx) error {
				c := 0
				if v, err := tx.Get("b", "counter"); err == nil {
					if _, err := fmt.Sscan(string(v), &c); err != nil {
						return err
					}
				} else if !errors.Is(err, storage.ErrNotFound) {
					return err
				}
				return tx.Put("b", "counter", []byte(fmt.Sprint(c+1)))
			})
		})
		if err != nil {
			t.Errorf("Batch(increment) = %v", err)
		}
	})
	mustGet(t, s, "b", "counter", []byte(fmt.Sprint(workers)))
}

// testBuckets: a backend that lists its buckets (storage.BucketLister, which
// backup needs) lists exactly the non-empty ones, sorted. A backend without
// it fails backups with storage.ErrNoBucketList, which this checks too.
func testBuckets(t *testing.T, s storage.Store) {
	put(t, s, "b2", "k", []byte("v"))
	put(t, s, "b1", "k", []byte("v"))
	put(t, s, "gone", "k", []byte("v"))
	err := s.Update(t.Context(), func(tx storage.Tx) error { return tx.Delete("gone", "k") })
	if err != nil {
		t.Fatal(err)
	}
	err = s.View(t.Context(), func(tx storage.Tx) error {
		got, err := storage.Buckets(tx)
		if _, ok := tx.(storage.BucketLister); !ok {
			if !errors.Is(err, storage.ErrNoBucketList) {
				t.Errorf("Buckets on a backend without BucketLister = %v", err)
			}
			return nil
		}
		if err != nil {
			return err
		}
		if !slices.Equal(got, []string{"b1", "b2"}) {
			t.Errorf("Buckets() = %q, want [b1 b2]", got)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// testDeleteUnchanged: only records whose value is still the one given are
// deleted; a changed or absent one is skipped without stopping the others,
// and watchers see each delete.
func testDeleteUnchanged(t *testing.T, s storage.Store) {
	for _, k := range []string{"a", "b", "c", "d"} {
		put(t, s, "p", k, []byte("v"+k))
	}
	put(t, s, "p", "e", []byte{})
	ch := s.Watch(t.Context(), "p")
	n, err := s.DeleteUnchanged(t.Context(), "p", []storage.Record{
		{Key: "a", Value: []byte("va")},
		{Key: "b", Value: []byte("changed since it was read")},
		{Key: "absent", Value: []byte("x")},
		{Key: "c", Value: []byte("vc")},
		{Key: "e", Value: []byte{}},
	})
	if err != nil || n != 3 {
		t.Fatalf("DeleteUnchanged = %d, %v; want 3 (a, c, e), nil", n, err)
	}
	if keys, _ := scan(t, s, "p", ""); !slices.Equal(keys, []string{"b", "d"}) {
		t.Errorf("left after DeleteUnchanged: %v, want [b d]", keys)
	}
	expectEvents(t, ch, []storage.Event{{Bucket: "p", Key: "a", Deleted: true}, {Bucket: "p", Key: "c", Deleted: true}, {Bucket: "p", Key: "e", Deleted: true}})
	if n, err := s.DeleteUnchanged(t.Context(), "p", nil); n != 0 || err != nil {
		t.Errorf("DeleteUnchanged(nothing) = %d, %v", n, err)
	}
}

// testDeleteUnchangedMany: more records than one transaction of a remote
// backend may carry (etcd's --max-txn-ops is 128 by default).
func testDeleteUnchangedMany(t *testing.T, s storage.Store) {
	const n = 1100
	var recs []storage.Record
	for lo := 0; lo < n; lo += 100 {
		err := s.Update(t.Context(), func(tx storage.Tx) error {
			for i := lo; i < lo+100; i++ {
				if err := tx.Put("many", fmt.Sprintf("k%05d", i), []byte(fmt.Sprint(i))); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		if i%10 != 0 { // every tenth stays: its value below is not what is stored
			recs = append(recs, storage.Record{Key: fmt.Sprintf("k%05d", i), Value: []byte(fmt.Sprint(i))})
		} else {
			recs = append(recs, storage.Record{Key: fmt.Sprintf("k%05d", i), Value: []byte("other")})
		}
	}
	got, err := s.DeleteUnchanged(t.Context(), "many", recs)
	if err != nil || got != n-n/10 {
		t.Fatalf("DeleteUnchanged = %d, %v; want %d", got, err, n-n/10)
	}
	if keys, _ := scan(t, s, "many", ""); len(keys) != n/10 {
		t.Errorf("%d records left, want %d", len(keys), n/10)
	}
}
