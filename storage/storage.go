// Package storage defines the transactional key-value store that every
// Signet backend implements. Records are encoded by the package that owns
// them (keys, authority); a backend moves bytes and nothing else, so a new
// backend is a few hundred lines plus one line that runs storagetest.Run.
package storage

import (
	"context"
	"errors"
	"fmt"
)

var (
	// ErrNotFound is returned by Tx.Get when the key (or its bucket) is absent.
	ErrNotFound = errors.New("storage: not found")
	// ErrConflict is returned by Update when a backend that uses optimistic
	// concurrency (etcd) gave up retrying a transaction whose reads changed.
	ErrConflict = errors.New("storage: conflict")
	// ErrClosed is returned by every call on a store after Close.
	ErrClosed = errors.New("storage: closed")
	// ErrUnavailable is wrapped by the errors of a shared backend that did
	// not answer in time or had no leader (etcd: a request timeout, a lost
	// leader, no quorum). It passes: callers answer "retry later". A write
	// that fails with it may or may not have been committed.
	ErrUnavailable = errors.New("storage: unavailable")
	// ErrDeadlinePassed is wrapped, with the context's error, by a call
	// whose context was already done when it was made: the request ran out
	// of time before the store was asked (a CPU-bound server, say, busy
	// hashing passwords), which is not the store failing to answer.
	ErrDeadlinePassed = errors.New("storage: the request's deadline passed before the store was asked")
)

// Started is what a store call returns when its context is already done
// (nil otherwise): op's error wrapping ErrDeadlinePassed and the
// context's error, so that a refusal names the request's deadline rather
// than the store (package refusal).
func Started(ctx context.Context, op string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: %w: %w", op, ErrDeadlinePassed, err)
	}
	return nil
}

// Store is a transactional key-value store organised in buckets.
//
// Contract for fn in Update and Batch: it may run more than once (a backend
// retries on conflict, and Batch may re-run a function alone after a failed
// shared commit), so it must be idempotent and must not have effects outside
// the transaction; it must not call the store again (bbolt's write lock is not
// reentrant). If fn returns an error nothing it wrote is committed and that
// error is returned unchanged (wrapped at most).
type Store interface {
	// View runs fn in a consistent read-only snapshot.
	View(ctx context.Context, fn func(Tx) error) error
	// Update runs fn in a serializable read-write transaction and commits it.
	// When Update returns nil the change is durable.
	Update(ctx context.Context, fn func(Tx) error) error
	// Batch is Update for many small concurrent writers: calls arriving
	// together may share one commit (one fsync). Same contract as Update.
	Batch(ctx context.Context, fn func(Tx) error) error
	// Watch reports every committed change to bucket, from this process or
	// (for shared backends) from any other, in commit order and without loss,
	// until ctx is done or the store is closed; then the channel is closed.
	// The subscription is in place when Watch returns, and a View started
	// after that sees every change the channel does not report, so a cache
	// that subscribes and then loads misses nothing (storagetest checks it).
	// Call Watch synchronously, before the load, never from a goroutine.
	Watch(ctx context.Context, bucket string) <-chan Event
	// DeleteUnchanged deletes each record of recs from bucket whose value is
	// still recs[i].Value, each on a check of its own key only: a record
	// that changed or vanished since the caller read it is left alone and
	// does not stop the others. It returns how many it deleted. It is what
	// the purge jobs use: an Update that scanned a bucket to delete from it
	// conflicts with every write to that bucket, so on a shared backend
	// under load it never commits; this commits whatever it can, in as few
	// round trips as the backend allows (it splits recs itself). Honours a
	// Fence in ctx like Update. Watchers see each delete.
	DeleteUnchanged(ctx context.Context, bucket string, recs []Record) (int, error)
	// Close releases the store. Watch channels are closed.
	Close() error
}

// Record is a key and the value a caller read for it (DeleteUnchanged).
type Record struct {
	Key   string
	Value []byte
}

// Tx is a transaction. Values returned by Get and passed to Scan's fn are
// copies the caller owns; they stay valid after the transaction ends.
type Tx interface {
	// Get returns the value of key in bucket, or ErrNotFound.
	Get(bucket, key string) ([]byte, error)
	// Put sets key in bucket, creating the bucket if needed.
	Put(bucket, key string, value []byte) error
	// Delete removes key from bucket; deleting an absent key is not an error.
	Delete(bucket, key string) error
	// Scan calls fn for each key in bucket that starts with prefix, in
	// ascending byte order of keys. An error from fn stops the scan and is
	// returned.
	Scan(bucket, prefix string, fn func(key string, value []byte) error) error
}

// Event is one committed change seen by Watch.
type Event struct {
	Bucket  string
	Key     string
	Value   []byte // nil when Deleted
	Deleted bool
}

// BucketLister is implemented by the Tx of backends that can name their
// buckets; backup and schema detection need it. Every backend should.
type BucketLister interface {
	// Buckets returns the names of the buckets that hold at least one key,
	// in ascending byte order.
	Buckets() ([]string, error)
}

// ErrNoBucketList is returned by Buckets for a backend whose Tx does not
// implement BucketLister.
var ErrNoBucketList = errors.New("storage: backend cannot list its buckets")

// Buckets lists the non-empty buckets visible in tx.
func Buckets(tx Tx) ([]string, error) {
	bl, ok := tx.(BucketLister)
	if !ok {
		return nil, ErrNoBucketList
	}
	return bl.Buckets()
}
