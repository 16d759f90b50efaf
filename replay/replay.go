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

// Purge deletes the records that have expired (storage.PurgeBucket: each
// delete checks its record's value, so it never conflicts with a Remember)
// and reports them under kind, the metrics label. An unreadable record is
// kept: Remember treats it as seen, and forgetting it would allow a replay.
// Run it on a schedule (signet serve runs it with the other purges).
func (c *Cache) Purge(ctx context.Context, kind string) storage.Purged {
	now := c.now()
	return storage.PurgeBucket(ctx, c.store, kind, c.bucket, func(_ string, v []byte) (time.Time, bool) {
		until, err := strconv.ParseInt(string(v), 10, 64)
		if err != nil || until >= now.Unix() {
			return time.Time{}, false
		}
		return time.Unix(until, 0), true
	})
}
