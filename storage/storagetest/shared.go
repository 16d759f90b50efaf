package storagetest

import (
	"fmt"
	"testing"

	"github.com/signet-auth/signet/storage"
)

// sharedTests need two stores on the same data (see WithSecondStore).
func sharedTests() []struct {
	name string
	fn   func(t *testing.T, a, b storage.Store)
} {
	return []struct {
		name string
		fn   func(t *testing.T, a, b storage.Store)
	}{
		{"Shared_RoundTrip", testSharedRoundTrip},
		{"Shared_Watch", testSharedWatch},
		{"Shared_UpdateConcurrent", testSharedUpdateConcurrent},
		{"Shared_ScanDeleteConflict", testSharedScanDeleteConflict},
	}
}

func testSharedRoundTrip(t *testing.T, a, b storage.Store) {
	put(t, a, "b", "k", []byte("from a"))
	mustGet(t, b, "b", "k", []byte("from a"))
	if err := b.Update(t.Context(), func(tx storage.Tx) error { return tx.Delete("b", "k") }); err != nil {
		t.Fatal(err)
	}
	mustNotFound(t, a, "b", "k")
}

// testSharedWatch: each store's watcher sees the other's commits, in commit
// order, as well as its own.
func testSharedWatch(t *testing.T, a, b storage.Store) {
	chA := a.Watch(t.Context(), "w")
	chB := b.Watch(t.Context(), "w")
	put(t, a, "w", "k1", []byte("from a"))
	put(t, b, "w", "k2", []byte("from b"))
	if err := a.Update(t.Context(), func(tx storage.Tx) error { return tx.Delete("w", "k1") }); err != nil {
		t.Fatal(err)
	}
	put(t, b, "w", "k1", []byte("again from b"))
	want := []storage.Event{
		{Bucket: "w", Key: "k1", Value: []byte("from a")},
		{Bucket: "w", Key: "k2", Value: []byte("from b")},
		{Bucket: "w", Key: "k1", Deleted: true},
		{Bucket: "w", Key: "k1", Value: []byte("again from b")},
	}
	expectEvents(t, chA, want)
	expectEvents(t, chB, want)
}

// testSharedUpdateConcurrent: increments of one counter through two stores
// at once all survive.
func testSharedUpdateConcurrent(t *testing.T, a, b storage.Store) {
	const workers, n = 16, 8
	racers(workers, func(i int) {
		s := []storage.Store{a, b}[i%2]
		for range n {
			err := retry(func() error {
				return s.Update(t.Context(), func(tx storage.Tx) error {
					c := 0
					if v, err := tx.Get("b", "counter"); err == nil {
						if _, err := fmt.Sscan(string(v), &c); err != nil {
							return err
						}
					}
					return tx.Put("b", "counter", []byte(fmt.Sprint(c+1)))
				})
			})
			if err != nil {
				t.Errorf("Update(increment) = %v", err)
				return
			}
		}
	})
	mustGet(t, a, "b", "counter", []byte(fmt.Sprint(workers*n)))
}

func testSharedScanDeleteConflict(t *testing.T, a, b storage.Store) {
	scanDeleteRace(t, []storage.Store{a, b})
}
