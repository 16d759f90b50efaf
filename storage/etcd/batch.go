package etcd

import (
	"context"
	"errors"
	"fmt"
	"sync"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/signet-auth/signet/storage"
)

// Group commit for Batch.
//
// Each Batch call runs its function in its own transaction, in the
// caller's goroutine, so reads of concurrent calls proceed in parallel.
// Its checks and writes then go to a committer goroutine, which sends the
// transactions queued while the previous commit was in flight as one etcd
// transaction (at low load a call commits at once, alone). Up to
// committers commits are in flight at once: a commit waits mostly for the
// members' fsync, and etcd shares one fsync among the commits that arrive
// together. Two
// transactions share a commit only if neither writes a key the other read,
// scanned or wrote: then the combined checks and writes mean the same as
// committing one after the other. If a shared commit fails a check, each
// of its transactions is committed on its own, and one whose own checks
// fail runs its function again, as Update does.

// commitReq is one transaction waiting for the committer.
type commitReq struct {
	t    *tx
	cmps []clientv3.Cmp
	ops  []clientv3.Op
	done chan error // capacity 1
}

// Batch runs fn like Update, but commits it together with other Batch
// calls that are ready at the same time. Same contract as Update; ctx
// bounds fn's reads, and the shared commit is bounded by RequestTimeout.
func (s *Store) Batch(ctx context.Context, fn func(storage.Tx) error) error {
	if _, fenced := storage.FenceFrom(ctx); fenced {
		return s.Update(ctx, fn) // a fenced write commits alone, with its check
	}
	return s.run(ctx, "etcd batch", fn, s.groupCommit)
}

// groupCommit hands t to the committer and waits for the outcome.
func (s *Store) groupCommit(t *tx) error {
	cmps, ops, err := t.prepare()
	if err != nil {
		return err
	}
	r := &commitReq{t: t, cmps: cmps, ops: ops, done: make(chan error, 1)}
	s.mu.Lock()
	if s.closed.Load() {
		s.mu.Unlock()
		return storage.ErrClosed
	}
	s.batchQueue = append(s.batchQueue, r)
	if s.batchRunning < s.committers {
		s.batchRunning++
		s.wg.Add(1)
		go s.commitLoop()
	}
	s.mu.Unlock()
	select {
	case err := <-r.done:
		return err
	case <-t.ctx.Done():
		// The caller's deadline comes first: it stops waiting, and run
		// resolves the commit still in flight (resolve), so it neither
		// waits past its deadline nor reports a commit that happens.
		return fmt.Errorf("commit: %w", t.ctx.Err())
	}
}

// commitLoop commits queued transactions until the queue is empty.
func (s *Store) commitLoop() {
	defer s.wg.Done()
	for {
		s.mu.Lock()
		queue := s.batchQueue
		s.batchQueue = nil
		if len(queue) == 0 {
			s.batchRunning--
			s.mu.Unlock()
			return
		}
		s.mu.Unlock()
		group, rest := s.group(queue)
		if len(rest) > 0 {
			s.mu.Lock()
			s.batchQueue = append(rest, s.batchQueue...)
			s.mu.Unlock()
		}
		if s.beforeGroupCommit != nil {
			s.beforeGroupCommit()
		}
		s.commitGroup(group)
	}
}

// group takes from queue, in order, the transactions that can share one
// etcd transaction; the rest wait for the next.
func (s *Store) group(queue []*commitReq) (group, rest []*commitReq) {
	var ncmps, nops int
	guards := map[string]bool{}
	for _, r := range queue {
		newGuards := 0
		for _, op := range r.ops {
			if k := string(op.KeyBytes()); r.t.isGuard(k) && !guards[k] {
				newGuards++
			}
		}
		fits := len(group) == 0 ||
			(ncmps+len(r.cmps) <= s.opts.MaxTxnOps && nops+len(r.t.order)+newGuards <= s.opts.MaxTxnOps && independent(group, r.t))
		if !fits {
			rest = append(rest, r)
			continue
		}
		group = append(group, r)
		ncmps += len(r.cmps)
		nops += len(r.t.order) + newGuards
		for _, op := range r.ops {
			if k := string(op.KeyBytes()); r.t.isGuard(k) {
				guards[k] = true
			}
		}
	}
	return group, rest
}

// independent reports whether t neither writes what a transaction of group
// read, scanned or wrote, nor reads or scans what one of them wrote.
func independent(group []*commitReq, t *tx) bool {
	for _, r := range group {
		if touches(t, r.t) || touches(r.t, t) {
			return false
		}
	}
	return true
}

// touches reports whether a writes a key b read, scanned or wrote.
func touches(a, b *tx) bool {
	for _, k := range a.order {
		if _, ok := b.reads[k]; ok {
			return true
		}
		if _, ok := b.writes[k]; ok {
			return true
		}
		for _, sc := range b.scans {
			if k >= sc.start && (sc.end == "\x00" || k < sc.end) {
				return true
			}
		}
	}
	return false
}

// commitGroup commits group as one etcd transaction, or each on its own
// if that fails a check.
func (s *Store) commitGroup(group []*commitReq) {
	if len(group) == 1 {
		r := group[0]
		r.done <- s.commitOne(r.cmps, r.ops)
		return
	}
	var cmps []clientv3.Cmp
	var ops []clientv3.Op
	guards := map[string]bool{}
	for _, r := range group {
		cmps = append(cmps, r.cmps...)
		for _, op := range r.ops {
			if k := string(op.KeyBytes()); r.t.isGuard(k) {
				if guards[k] {
					continue // etcd refuses a key written twice in one transaction
				}
				guards[k] = true
			}
			ops = append(ops, op)
		}
	}
	err := s.commitOne(cmps, ops)
	if !errors.Is(err, errConflict) {
		for _, r := range group {
			r.done <- err
		}
		return
	}
	// Find out whose checks failed: each on its own, at once.
	var wg sync.WaitGroup
	for _, r := range group {
		wg.Go(func() { r.done <- s.commitOne(r.cmps, r.ops) })
	}
	wg.Wait()
}

// commitOne sends one etcd transaction; errConflict if a check failed.
func (s *Store) commitOne(cmps []clientv3.Cmp, ops []clientv3.Op) error {
	ctx, cancel := s.reqCtx(context.Background())
	defer cancel()
	resp, err := s.send(s.cl.Txn(ctx).If(cmps...).Then(ops...).Commit)
	if err != nil {
		return fmt.Errorf("commit %d writes: %w", len(ops), err)
	}
	if !resp.Succeeded {
		return errConflict
	}
	return nil
}
