// Package bolt implements storage.Store on one bbolt file.
//
// Every write is fsync'd before Update or Batch returns (NoSync is never
// set), so a nil error means the change is durable. Watch is fed in-process
// from commit hooks: it sees changes made through this Store only, which is
// everything, because the file lock keeps other processes out.
package bolt

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	bbolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/signet-auth/signet/storage"
)

// ErrLocked is returned (wrapped) by Open when another process holds the
// database file lock for longer than Options.Timeout.
var ErrLocked = errors.New("bolt: database file is locked")

// ErrCorrupt is returned (wrapped, together with bbolt's own error when it
// has one) by Open and Check when the file is not a consistent bbolt database.
// Signet refuses to start rather than recreate it: a fresh file would mean a
// fresh key ring.
var ErrCorrupt = errors.New("bolt: corrupt database")

// errTxDone is returned by Tx methods called after their transaction ended;
// bbolt would dereference freed state instead.
var errTxDone = errors.New("bolt: transaction has ended")

// defaultTimeout bounds the wait for the file lock when Options.Timeout is 0.
// bbolt's own zero means "wait forever", which turns a second instance into a
// silent hang.
const defaultTimeout = time.Second

// Options configures Open.
type Options struct {
	// Timeout is how long Open waits for the file lock held by another
	// process; 0 means 1s.
	Timeout time.Duration
	// Logger receives debug messages; nil discards them.
	Logger *slog.Logger
}

// Store is a storage.Store backed by a bbolt file. It is safe for concurrent
// use.
type Store struct {
	db   *bbolt.DB
	path string
	log  *slog.Logger

	closed atomic.Bool   // fast path for ErrClosed; set under mu
	done   chan struct{} // closed by Close to stop watcher goroutines
	wg     sync.WaitGroup

	mu       sync.Mutex // guards everything below
	watchers map[string]map[*watcher]struct{}
	pending  []*ticket // write transactions that recorded a change, in lock order
	cur      *ticket   // ticket of the newest write transaction
	nextSeq  uint64
	settled  *sync.Cond // on mu; broadcast when the head of pending is settled
}

var _ storage.Store = (*Store)(nil)

// Open opens (creating with mode 0600 if needed) the bbolt database at path.
// It fails with ErrLocked if another process holds the file, and with
// ErrCorrupt if the file is not a valid database; it never recreates a
// database it cannot read.
func Open(path string, opts Options) (*Store, error) {
	if opts.Timeout == 0 {
		opts.Timeout = defaultTimeout
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	// bbolt initialises an empty file as a new database. An existing empty
	// file is a truncated one (bbolt writes and syncs its first pages when it
	// creates a file): starting on it would mean a fresh, empty key ring.
	if info, err := os.Stat(path); err == nil && info.Mode().IsRegular() && info.Size() == 0 {
		return nil, fmt.Errorf("open bolt %s: %w: the file is empty (truncated?); if this is a new installation that was interrupted, delete it", path, ErrCorrupt)
	}
	db, err := openDB(path, opts.Timeout)
	switch {
	case errors.Is(err, berrors.ErrTimeout):
		return nil, fmt.Errorf("open bolt %s: another signet process holds it (waited %s): %w", path, opts.Timeout, ErrLocked)
	case errors.Is(err, ErrCorrupt), isSystem(err):
		return nil, fmt.Errorf("open bolt %s: %w", path, err)
	case err != nil:
		// ErrInvalid, ErrChecksum, ErrVersionMismatch, "file size too
		// small", an invalid page size...: the file, not the system, is bad.
		return nil, fmt.Errorf("open bolt %s: %w: %w", path, ErrCorrupt, err)
	}
	// bbolt does not compare the file size with the meta page's high-water
	// mark; a truncated file would fault on first access to a missing page.
	if err := checkSize(db); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open bolt %s: %w", path, err)
	}
	s := &Store{
		db:       db,
		path:     path,
		log:      opts.Logger,
		done:     make(chan struct{}),
		watchers: make(map[string]map[*watcher]struct{}),
	}
	s.settled = sync.NewCond(&s.mu)
	s.log.Debug("bolt: opened", "path", path)
	return s, nil
}

// openDB calls bbolt.Open, turning a panic or memory fault on a damaged file
// into ErrCorrupt. On a panic bbolt cannot close the file, so the OpenFile
// hook keeps it to release the lock.
func openDB(path string, timeout time.Duration) (db *bbolt.DB, err error) {
	var f *os.File
	bo := *bbolt.DefaultOptions
	bo.Timeout = timeout
	bo.NoSync = false
	bo.NoGrowSync = false
	bo.OpenFile = func(name string, flag int, mode os.FileMode) (*os.File, error) {
		var err error
		f, err = os.OpenFile(name, flag, mode)
		return f, err
	}
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if p := recover(); p != nil {
			if f != nil {
				unlock(f)
				_ = f.Close()
			}
			// The mapping of the file leaks; the process is about to
			// exit on this error anyway.
			db, err = nil, fmt.Errorf("%w: bbolt panicked reading the file: %v", ErrCorrupt, p)
		}
	}()
	return bbolt.Open(path, 0o600, &bo)
}

// isSystem reports whether err came from the operating system (permissions,
// missing directory, mmap failure) rather than from the file's contents.
func isSystem(err error) bool {
	var pe *fs.PathError
	var errno syscall.Errno
	return errors.As(err, &pe) || errors.As(err, &errno)
}

// checkSize reports ErrCorrupt if the file is shorter than the pages its
// meta page claims.
func checkSize(db *bbolt.DB) error {
	fi, err := os.Stat(db.Path())
	if err != nil {
		return err
	}
	return db.View(func(btx *bbolt.Tx) error {
		if hwm := btx.Size(); hwm > fi.Size() {
			return fmt.Errorf("%w: file has %d bytes, meta page needs %d (truncated?)", ErrCorrupt, fi.Size(), hwm)
		}
		return nil
	})
}

// Path returns the database file path.
func (s *Store) Path() string { return s.path }

// Check walks the whole file (bbolt tx.Check) and returns every
// inconsistency found, wrapped in ErrCorrupt.
func (s *Store) Check(ctx context.Context) error {
	if s.closed.Load() {
		return storage.ErrClosed
	}
	if err := storage.Started(ctx, "check bolt "+s.path); err != nil {
		return err
	}
	err := s.db.View(func(btx *bbolt.Tx) error {
		var errs []error
		for err := range btx.Check() { // drain fully: the checker goroutine holds the tx
			errs = append(errs, err)
		}
		if len(errs) > 0 {
			return fmt.Errorf("%w: %w", ErrCorrupt, errors.Join(errs...))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("check bolt %s: %w", s.path, s.mapErr(err))
	}
	return nil
}

// View runs fn in a read-only bbolt transaction.
func (s *Store) View(ctx context.Context, fn func(storage.Tx) error) error {
	if s.closed.Load() {
		return storage.ErrClosed
	}
	if err := storage.Started(ctx, "bolt view"); err != nil {
		return err
	}
	c := &call{fn: fn}
	err := s.db.View(func(btx *bbolt.Tx) error { return s.run(c, btx) })
	return s.result(c, "bolt view", err)
}

// Update runs fn in bbolt's single read-write transaction; the commit is
// fsync'd before Update returns. fn runs exactly once.
func (s *Store) Update(ctx context.Context, fn func(storage.Tx) error) error {
	if s.closed.Load() {
		return storage.ErrClosed
	}
	if err := storage.Started(ctx, "bolt update"); err != nil {
		return err
	}
	c := &call{fn: fn}
	defer s.finish(c)
	err := s.db.Update(func(btx *bbolt.Tx) error { return s.run(c, btx) })
	return s.result(c, "bolt update", err)
}

// Batch runs fn through bbolt's db.Batch: calls arriving within a few
// milliseconds share one transaction and one fsync. fn may run more than
// once: if any function in a shared transaction fails, the transaction is
// rolled back, the others are re-run together and the failing one is re-run
// alone.
func (s *Store) Batch(ctx context.Context, fn func(storage.Tx) error) error {
	if s.closed.Load() {
		return storage.ErrClosed
	}
	if err := storage.Started(ctx, "bolt batch"); err != nil {
		return err
	}
	c := &call{fn: fn}
	defer s.finish(c)
	err := s.db.Batch(func(btx *bbolt.Tx) error { return s.run(c, btx) })
	return s.result(c, "bolt batch", err)
}

// pruneChunk bounds the deletes of one DeleteUnchanged transaction, so a
// large purge does not hold bbolt's write lock for long.
const pruneChunk = 1000

// DeleteUnchanged deletes the records of recs whose value is unchanged, in
// write transactions of at most pruneChunk records.
func (s *Store) DeleteUnchanged(ctx context.Context, bucket string, recs []storage.Record) (int, error) {
	n := 0
	for len(recs) > 0 {
		chunk := recs[:min(len(recs), pruneChunk)]
		recs = recs[len(chunk):]
		m := 0
		err := s.Update(ctx, func(t storage.Tx) error {
			m = 0
			for _, r := range chunk {
				v, err := t.Get(bucket, r.Key)
				if errors.Is(err, storage.ErrNotFound) || (err == nil && !bytes.Equal(v, r.Value)) {
					continue
				}
				if err != nil {
					return err
				}
				if err := t.Delete(bucket, r.Key); err != nil {
					return err
				}
				m++
			}
			return nil
		})
		if err != nil {
			return n, fmt.Errorf("bolt delete unchanged in %s: %w", bucket, err)
		}
		n += m
	}
	return n, nil
}

// call is one View, Update or Batch invocation; its fn may run in several
// bbolt transactions (Batch).
type call struct {
	fn    func(storage.Tx) error
	fnErr error   // error of the last run of fn
	last  *ticket // ticket of the last write transaction fn changed something in
}

// run executes c.fn once in btx.
func (s *Store) run(c *call, btx *bbolt.Tx) error {
	if c.last != nil {
		s.abortIfEnded(c.last, btx)
	}
	t := &tx{s: s, btx: btx, c: c}
	defer t.done.Store(true)
	c.fnErr = c.fn(t)
	return c.fnErr
}

// finish runs when Update or Batch returns (or panics). If fn's last write
// transaction committed, its commit hook already resolved the ticket, so this
// only marks a rolled-back or failed commit.
func (s *Store) finish(c *call) {
	if c.last != nil {
		s.resolve(c.last, false)
	}
}

// result returns fn's own error unchanged and wraps anything from bbolt.
func (s *Store) result(c *call, op string, err error) error {
	if err == nil || (c.fnErr != nil && err == c.fnErr) {
		return err
	}
	return fmt.Errorf("%s %s: %w", op, s.path, s.mapErr(err))
}

// mapErr translates bbolt's closed-database error into storage.ErrClosed,
// for calls that raced with Close.
func (s *Store) mapErr(err error) error {
	if errors.Is(err, berrors.ErrDatabaseNotOpen) {
		return storage.ErrClosed
	}
	return err
}

// Close stops every watcher, waits for their goroutines and closes the file.
// It waits for transactions in progress.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed.Load() {
		s.mu.Unlock()
		return storage.ErrClosed
	}
	s.closed.Store(true)
	close(s.done)
	s.mu.Unlock()
	s.wg.Wait()
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close bolt %s: %w", s.path, err)
	}
	s.log.Debug("bolt: closed", "path", s.path)
	return nil
}

// tx adapts *bbolt.Tx to storage.Tx.
type tx struct {
	s    *Store
	btx  *bbolt.Tx
	c    *call
	done atomic.Bool // set when fn returns; bbolt's Tx is unusable afterwards
}

func (t *tx) Get(bucket, key string) ([]byte, error) {
	if t.done.Load() {
		return nil, errTxDone
	}
	b := t.btx.Bucket([]byte(bucket))
	if b == nil {
		return nil, storage.ErrNotFound
	}
	// Seek rather than Get: Get returns nil for both absent and some empty
	// values, and an empty value must stay distinct from an absent key.
	k, v := b.Cursor().Seek([]byte(key))
	if k == nil || !bytes.Equal(k, []byte(key)) {
		return nil, storage.ErrNotFound
	}
	return clone(v), nil
}

func (t *tx) Put(bucket, key string, value []byte) error {
	if t.done.Load() {
		return errTxDone
	}
	b, err := t.btx.CreateBucketIfNotExists([]byte(bucket))
	if err != nil {
		return fmt.Errorf("bolt put %s/%s: %w", bucket, key, err)
	}
	// bbolt keeps the slice until commit; copy so callers may reuse buffers.
	v := clone(value)
	if err := b.Put([]byte(key), v); err != nil {
		return fmt.Errorf("bolt put %s/%s: %w", bucket, key, err)
	}
	t.s.record(t, storage.Event{Bucket: bucket, Key: key, Value: v})
	return nil
}

func (t *tx) Delete(bucket, key string) error {
	if t.done.Load() {
		return errTxDone
	}
	if !t.btx.Writable() {
		return fmt.Errorf("bolt delete %s/%s: %w", bucket, key, berrors.ErrTxNotWritable)
	}
	b := t.btx.Bucket([]byte(bucket))
	if b == nil {
		return nil
	}
	// Deleting an absent key changes nothing, so it is not an event (etcd
	// would not report one either).
	if k, _ := b.Cursor().Seek([]byte(key)); k == nil || !bytes.Equal(k, []byte(key)) {
		return nil
	}
	if err := b.Delete([]byte(key)); err != nil {
		return fmt.Errorf("bolt delete %s/%s: %w", bucket, key, err)
	}
	t.s.record(t, storage.Event{Bucket: bucket, Key: key, Deleted: true})
	return nil
}

func (t *tx) Scan(bucket, prefix string, fn func(key string, value []byte) error) error {
	if t.done.Load() {
		return errTxDone
	}
	b := t.btx.Bucket([]byte(bucket))
	if b == nil {
		return nil
	}
	p := []byte(prefix)
	c := b.Cursor()
	for k, v := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, v = c.Next() {
		if err := fn(string(k), clone(v)); err != nil {
			return err
		}
	}
	return nil
}

// clone copies b into a new non-nil slice (bbolt values live in the mmap and
// die with the transaction).
func clone(b []byte) []byte {
	c := make([]byte, len(b))
	copy(c, b)
	return c
}
