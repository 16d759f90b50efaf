package bolt

import (
	"context"
	"fmt"
	"io"
	"sort"

	bbolt "go.etcd.io/bbolt"

	"github.com/signet-auth/signet/storage"
)

// Buckets implements storage.BucketLister: the buckets with at least one key.
func (t *tx) Buckets() ([]string, error) {
	if t.done.Load() {
		return nil, errTxDone
	}
	var names []string
	err := t.btx.ForEach(func(name []byte, b *bbolt.Bucket) error {
		if k, _ := b.Cursor().First(); k != nil {
			names = append(names, string(name))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("bolt buckets: %w", err)
	}
	sort.Strings(names)
	return names, nil
}

// Snapshot runs fn in a read transaction with the size of the database file
// as of that transaction and a function that writes the file (bbolt
// Tx.WriteTo): a consistent copy, taken while writers go on.
func (s *Store) Snapshot(ctx context.Context, fn func(size int64, writeTo func(io.Writer) (int64, error)) error) error {
	if s.closed.Load() {
		return storage.ErrClosed
	}
	if err := storage.Started(ctx, "bolt snapshot"); err != nil {
		return err
	}
	err := s.db.View(func(btx *bbolt.Tx) error {
		return fn(btx.Size(), btx.WriteTo)
	})
	if err != nil {
		return fmt.Errorf("bolt snapshot %s: %w", s.path, s.mapErr(err))
	}
	return nil
}
