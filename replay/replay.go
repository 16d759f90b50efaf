// Package replay remembers single-use identifiers in the store until they
// expire, so that an identifier one replica has accepted is refused by
// every replica. Signet spends DPoP proof jtis here (the jwks module's
// DPoPReplayCache, shared through the store instead of memory) and the jtis
// of private_key_jwt client assertions (package clientauth).
package replay

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/signet-auth/signet/storage"
)

// DPoPBucket holds the DPoP proofs the token endpoint accepted: the
// checker's id of the proof (a hash of key and jti) → the time it may be
// forgotten, unix seconds in decimal.
const DPoPBucket = "dpop_jtis"

// Cache is a store-backed set of identifiers with expiry. It is safe for
// concurrent use, and for use by several replicas on one shared store.
type Cache struct {
	store  storage.Store
	bucket string
	now    func() time.Time
}

// New returns a cache in bucket of store, on the clock now (nil: time.Now).
func New(store storage.Store, bucket string, now func() time.Time) *Cache {
	if now == nil {
		now = time.Now
	}
	return &Cache{store: store, bucket: bucket, now: now}
}

// Remember records id until expires and reports whether it was new. One
// store transaction reads and writes (Batch: concurrent requests share a
// commit), so of two replicas racing with the same id exactly one wins. An
// expired record of the same id is overwritten.
func (c *Cache) Remember(ctx context.Context, id string, expires time.Time) (bool, error) {
	val := strconv.AppendInt(nil, expires.Unix()+1, 10) // rounded up: never forgotten early
	now := c.now().Unix()
	var fresh bool
	err := c.store.Batch(ctx, func(tx storage.Tx) error {
		fresh = false
		b, err := tx.Get(c.bucket, id)
		switch {
		case err == nil:
			if until, perr := strconv.ParseInt(string(b), 10, 64); perr != nil || until >= now {
				return nil // seen, and not yet forgettable (or unreadable: fail closed)
			}
		case !errors.Is(err, storage.ErrNotFound):
			return err
		}
		fresh = true
		return tx.Put(c.bucket, id, val)
	})
	if err != nil {
		return false, fmt.Errorf("replay: remember in %s: %w", c.bucket, err)
	}
	return fresh, nil
}

// purgeChunk bounds the deletes of one transaction, below etcd's default
// --max-txn-ops (128).
const purgeChunk = 100

// Purge deletes the records that have expired and returns how many. Run it
// on a schedule (signet serve runs it with the other purges); each delete
// re-checks its record in the deleting transaction.
func (c *Cache) Purge(ctx context.Context) (int, error) {
	now := c.now().Unix()
	dead := func(v []byte) bool {
		until, err := strconv.ParseInt(string(v), 10, 64)
		return err == nil && until < now
	}
	var keys []string
	err := c.store.View(ctx, func(tx storage.Tx) error {
		keys = keys[:0]
		return tx.Scan(c.bucket, "", func(k string, v []byte) error {
			if dead(v) {
				keys = append(keys, k)
			}
			return nil
		})
	})
	if err != nil {
		return 0, fmt.Errorf("replay: purge %s: %w", c.bucket, err)
	}
	n := 0
	for chunk := range slices.Chunk(keys, purgeChunk) {
		m := 0
		err := c.store.Update(ctx, func(tx storage.Tx) error {
			m = 0
			for _, k := range chunk {
				v, err := tx.Get(c.bucket, k)
				if errors.Is(err, storage.ErrNotFound) {
					continue
				}
				if err != nil {
					return err
				}
				if !dead(v) {
					continue
				}
				if err := tx.Delete(c.bucket, k); err != nil {
					return err
				}
				m++
			}
			return nil
		})
		if err != nil {
			return n, fmt.Errorf("replay: purge %s: %w", c.bucket, err)
		}
		n += m
	}
	return n, nil
}
