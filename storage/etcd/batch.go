package etcd

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/signet-auth/signet/storage"
)

// Group commit for Batch.
//
// Batch calls queue up. One goroutine takes the queue while no batch is in
// flight, runs every function of it in one shared transaction (each sees
// the writes of those before it), and commits them with one etcd
// transaction: at low load a call commits at once, alone; under load, all
// calls that arrived during the previous commit share the next one. A
// function that fails has its writes taken back and gets its error; a
// function that would push the transaction past --max-txn-ops waits for
// the next batch. If the shared commit conflicts, every function of it runs
// again as its own Update (so a function may run more than once, as the
// Store contract allows).

// maxBatchCalls bounds the functions in one shared transaction.
const maxBatchCalls = 128

type batchCall struct {
	ctx  context.Context
	fn   func(storage.Tx) error
	done chan error // capacity 1
}

// Batch runs fn in a transaction shared with other Batch calls that arrive
// while a commit is in flight. Same contract as Update. A caller whose ctx
// ends while its function is queued gets the context's error; once its
// function has run, it waits for the commit (bounded by RequestTimeout).
func (s *Store) Batch(ctx context.Context, fn func(storage.Tx) error) error {
	if s.closed.Load() {
		return storage.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("etcd batch: %w", err)
	}
	c := &batchCall{ctx: ctx, fn: fn, done: make(chan error, 1)}
	s.mu.Lock()
	if s.closed.Load() {
		s.mu.Unlock()
		return storage.ErrClosed
	}
	s.batchQueue = append(s.batchQueue, c)
	if !s.batchRunning {
		s.batchRunning = true
		s.wg.Add(1)
		go s.batchLoop()
	}
	s.mu.Unlock()
	return <-c.done
}

// batchLoop commits queued calls, one shared transaction at a time, until
// the queue is empty.
func (s *Store) batchLoop() {
	defer s.wg.Done()
	for {
		s.mu.Lock()
		calls := s.batchQueue
		if len(calls) > maxBatchCalls {
			calls = calls[:maxBatchCalls]
		}
		s.batchQueue = s.batchQueue[len(calls):]
		if len(calls) == 0 {
			s.batchQueue = nil
			s.batchRunning = false
			s.mu.Unlock()
			return
		}
		s.mu.Unlock()
		s.runBatch(calls)
	}
}

func (s *Store) runBatch(calls []*batchCall) {
	// Reads and the commit are on behalf of many callers: none of their
	// contexts may cancel them for the others; RequestTimeout bounds them.
	t := s.newTx(context.Background(), true)
	var in, alone, later []*batchCall
	for _, c := range calls {
		if err := c.ctx.Err(); err != nil {
			c.done <- fmt.Errorf("etcd batch: %w", err)
			continue
		}
		m := t.mark()
		ct := &callTx{t: t}
		err := c.fn(ct)
		ct.done.Store(true)
		switch {
		case errors.Is(err, errStale):
			t.rollback(m)
			alone = append(alone, c)
		case err != nil:
			t.rollback(m)
			c.done <- err
		case t.opCount() > s.opts.MaxTxnOps && len(in) > 0:
			t.rollback(m)
			later = append(later, c)
		default:
			in = append(in, c)
		}
	}
	t.done.Store(true)
	if len(later) > 0 {
		s.mu.Lock()
		s.batchQueue = append(later, s.batchQueue...)
		s.mu.Unlock()
	}
	if len(in) > 0 {
		err := t.commit()
		switch {
		case err == nil:
			for _, c := range in {
				c.done <- nil
			}
		case errors.Is(err, errConflict):
			alone = append(alone, in...)
		default:
			err = fmt.Errorf("etcd batch: %w", s.mapErr(err))
			for _, c := range in {
				c.done <- err
			}
		}
	}
	var wg sync.WaitGroup
	for _, c := range alone {
		wg.Go(func() { c.done <- s.Update(c.ctx, c.fn) })
	}
	wg.Wait()
}

// opCount is len(t.ops()) without building them.
func (t *tx) opCount() int {
	n := len(t.order)
	guards := map[string]bool{}
	for _, k := range t.order {
		if w := t.writes[k]; w.deleted {
			guards[w.bucket] = true
		}
	}
	return n + len(guards)
}

// callTx is one function's view of a shared transaction: it ends when that
// function returns, not when the batch does.
type callTx struct {
	t    *tx
	done atomic.Bool
}

func (c *callTx) Get(bucket, key string) ([]byte, error) {
	if c.done.Load() {
		return nil, errTxDone
	}
	return c.t.Get(bucket, key)
}

func (c *callTx) Put(bucket, key string, value []byte) error {
	if c.done.Load() {
		return errTxDone
	}
	return c.t.Put(bucket, key, value)
}

func (c *callTx) Delete(bucket, key string) error {
	if c.done.Load() {
		return errTxDone
	}
	return c.t.Delete(bucket, key)
}

func (c *callTx) Scan(bucket, prefix string, fn func(key string, value []byte) error) error {
	if c.done.Load() {
		return errTxDone
	}
	return c.t.Scan(bucket, prefix, fn)
}
