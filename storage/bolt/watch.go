package bolt

import (
	"context"

	bbolt "go.etcd.io/bbolt"

	"github.com/signet-auth/signet/storage"
)

// Watch delivery, and why it needs tickets.
//
// bbolt runs commit hooks (tx.OnCommit) after it has released the writer
// lock, so hooks of consecutive transactions may run out of order, and there
// is no hook for rollback. So the first change made in a write transaction
// takes a ticket while the writer lock is held; tickets therefore queue in
// commit order. A ticket is resolved as committed by its commit hook, or as
// aborted once the transaction is known to be over without a commit (fn is
// re-run by Batch, or Update/Batch returns). Events are handed to watchers
// only from the head of the queue, and only for committed tickets, so they
// arrive in commit order and never from a rolled-back transaction.
//
// Every Put and Delete (of an existing key) is one event, in the order fn
// made them; several writes to one key in one transaction are all reported.

// ticket collects the changes of one write transaction.
type ticket struct {
	seq    uint64
	btx    *bbolt.Tx // nil once resolved
	events []storage.Event
	state  ticketState
}

type ticketState int

const (
	ticketPending ticketState = iota
	ticketCommitted
	ticketAborted
)

// watcher is one Watch call: an unbounded queue filled under Store.mu and
// drained into out by its own goroutine, so a slow reader never blocks a
// writer.
type watcher struct {
	bucket string
	start  uint64 // first ticket seq this watcher sees
	out    chan storage.Event
	queue  []storage.Event
	wake   chan struct{} // capacity 1: "queue is not empty"
}

// record notes a change made in t's transaction.
func (s *Store) record(t *tx, ev storage.Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	tk := s.cur
	if tk == nil || tk.btx != t.btx {
		tk = &ticket{seq: s.nextSeq, btx: t.btx}
		s.nextSeq++
		s.cur = tk
		s.pending = append(s.pending, tk)
		t.btx.OnCommit(func() { s.resolve(tk, true) })
	}
	t.c.last = tk
	// Watchers registered later start after this ticket, so the copy is
	// only needed if someone already listens.
	if len(s.watchers[ev.Bucket]) > 0 {
		tk.events = append(tk.events, ev)
	}
}

// resolve settles tk (the first resolution wins) and delivers every settled
// ticket at the head of the queue.
func (s *Store) resolve(tk *ticket, committed bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.resolveLocked(tk, committed)
}

// abortIfEnded resolves tk as aborted if it belongs to a transaction other
// than btx: the caller's fn is running again, so tk's transaction is over
// and, had it committed, fn would not be re-run.
func (s *Store) abortIfEnded(tk *ticket, btx *bbolt.Tx) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if tk.btx != btx {
		s.resolveLocked(tk, false)
	}
}

func (s *Store) resolveLocked(tk *ticket, committed bool) {
	if tk.state != ticketPending {
		return
	}
	tk.state = ticketAborted
	if committed {
		tk.state = ticketCommitted
	}
	tk.btx = nil
	n := 0
	for _, head := range s.pending {
		if head.state == ticketPending {
			break
		}
		if head.state == ticketCommitted {
			s.deliver(head)
		}
		head.events = nil
		n++
	}
	if n > 0 {
		s.pending = append(s.pending[:0], s.pending[n:]...)
		s.settled.Broadcast()
	}
}

// deliver queues tk's events for the watchers of their buckets. s.mu is held.
func (s *Store) deliver(tk *ticket) {
	for _, ev := range tk.events {
		for w := range s.watchers[ev.Bucket] {
			if tk.seq < w.start {
				continue
			}
			e := ev
			if !e.Deleted {
				e.Value = clone(ev.Value) // each watcher owns its copy
			}
			w.queue = append(w.queue, e)
			select {
			case w.wake <- struct{}{}:
			default:
			}
		}
	}
}

// Watch reports changes to bucket made by write transactions that start
// changing data after Watch is called, in commit order, until ctx is done or
// the store is closed. Events are buffered without bound, so a reader that
// stops reading costs memory, not writer latency.
//
// The watcher is registered before Watch returns, and Watch returns only once
// every write transaction that had already changed data is settled (committed
// or rolled back). So a View started after Watch returns sees every change
// that Watch does not report: subscribe-then-load leaves no gap. The wait is
// bounded by those transactions, and ctx does not cut it short.
func (s *Store) Watch(ctx context.Context, bucket string) <-chan storage.Event {
	w := &watcher{
		bucket: bucket,
		out:    make(chan storage.Event),
		wake:   make(chan struct{}, 1),
	}
	s.mu.Lock()
	if s.closed.Load() {
		s.mu.Unlock()
		close(w.out)
		return w.out
	}
	w.start = s.nextSeq
	if s.watchers[bucket] == nil {
		s.watchers[bucket] = make(map[*watcher]struct{})
	}
	s.watchers[bucket][w] = struct{}{}
	s.wg.Add(1)
	// pending is in ticket order and only loses settled heads, so its head
	// is the oldest unsettled transaction.
	for len(s.pending) > 0 && s.pending[0].seq < w.start {
		s.settled.Wait()
	}
	s.mu.Unlock()
	go s.pump(ctx, w)
	return w.out
}

// pump moves w's queue to w.out. It exits when ctx is done or the store
// closes, and then closes w.out.
func (s *Store) pump(ctx context.Context, w *watcher) {
	defer s.wg.Done()
	defer close(w.out)
	defer s.unwatch(w)
	for {
		s.mu.Lock()
		batch := w.queue
		w.queue = nil
		s.mu.Unlock()
		for _, ev := range batch {
			select {
			case w.out <- ev:
			case <-ctx.Done():
				return
			case <-s.done:
				return
			}
		}
		select {
		case <-w.wake:
		case <-ctx.Done():
			return
		case <-s.done:
			return
		}
	}
}

func (s *Store) unwatch(w *watcher) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.watchers[w.bucket], w)
	if len(s.watchers[w.bucket]) == 0 {
		delete(s.watchers, w.bucket)
	}
}
