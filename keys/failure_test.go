package keys_test

import (
	"context"
	"errors"
	"reflect"
	"sync/atomic"
	"testing"

	"github.com/signet-auth/signet/keys"
	"github.com/signet-auth/signet/storage"
)

// failingStore is a real store whose writes can be made to fail after the
// transaction function ran, as a full disk or a failed fsync would: the
// function sees its writes, the commit does not happen.
type failingStore struct {
	storage.Store
	fail atomic.Bool
}

var errDiskFull = errors.New("injected: no space left on device")

func (s *failingStore) Update(ctx context.Context, fn func(storage.Tx) error) error {
	return s.Store.Update(ctx, func(tx storage.Tx) error {
		if err := fn(tx); err != nil {
			return err
		}
		if s.fail.Load() {
			return errDiskFull // rolls the real transaction back
		}
		return nil
	})
}

func (s *failingStore) Batch(ctx context.Context, fn func(storage.Tx) error) error {
	return s.Update(ctx, fn)
}

// TestManager_StorageFailure (SECURITY.md M7): a rotation or revocation
// whose commit fails returns the error and changes nothing: not the store,
// not the signer, not the published set. The next attempt after the disk
// recovers works.
func TestManager_StorageFailure(t *testing.T) {
	st, _ := openStore(t)
	fs := &failingStore{Store: st}
	m := openManager(t, fs, keys.Options{Algorithms: []string{"ES256"}})
	before := m.Current()
	pub := publishedKIDs(m)
	signer, err := m.SigningKey("ES256")
	if err != nil {
		t.Fatal(err)
	}

	fs.fail.Store(true)
	if err := m.Rotate(t.Context(), true); !errors.Is(err, errDiskFull) {
		t.Fatalf("Rotate on a failing store = %v, want the storage error", err)
	}
	if err := m.Revoke(t.Context(), before[0].KID); !errors.Is(err, errDiskFull) {
		t.Fatalf("Revoke on a failing store = %v, want the storage error", err)
	}
	check := func(when string) {
		t.Helper()
		if got := m.Current(); !reflect.DeepEqual(got, before) {
			t.Errorf("%s: in-memory keys changed:\n got %v\nwant %v", when, got, before)
		}
		if got := publishedKIDs(m); !reflect.DeepEqual(got, pub) {
			t.Errorf("%s: published set changed: %v, want %v", when, got, pub)
		}
		if k, err := m.SigningKey("ES256"); err != nil || k.KeyID() != signer.KeyID() {
			t.Errorf("%s: signer = %v, %v; want %s", when, k, err, signer.KeyID())
		}
		stored, err := keys.List(t.Context(), st)
		if err != nil || len(stored) != len(before) {
			t.Errorf("%s: store holds %d keys (%v), want %d", when, len(stored), err, len(before))
		}
	}
	check("after failed writes")

	fs.fail.Store(false)
	if err := m.Rotate(t.Context(), true); err != nil {
		t.Fatalf("Rotate after recovery: %v", err)
	}
	if k, _ := m.SigningKey("ES256"); k.KeyID() == signer.KeyID() {
		t.Error("rotation after recovery did not change the signer")
	}
}
