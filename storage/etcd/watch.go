package etcd

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/signet-auth/signet/storage"
)

// Watch delivery, and why each watcher keeps a list of keys.
//
// An etcd watch resumes by itself after a disconnect, from the revision
// after the last event it delivered, unless that revision has been
// compacted meanwhile: then the events in between are gone. To report
// those changes anyway, each watcher keeps the key and ModRevision of every
// record in its bucket (no values). On compaction it reads the bucket
// again and emits the difference: a Put for every key whose ModRevision
// changed or that is new, a Deleted for every key that is gone, in key
// order, then watches on from the revision it read at. Several changes to
// one key collapse into its final state, which is all a reader can know
// once history is gone.
//
// Watch is registered before it returns: it reads the bucket's key list
// with a linearizable request and watches from the revision after that
// read, so every commit after Watch returns is reported.

// restartDelay spaces re-subscriptions after a watch fails (no leader,
// member gone); the client's own balancer meanwhile picks another member.
const restartDelay = 200 * time.Millisecond

type watcher struct {
	s      *Store
	bucket string
	bp     string // bucket prefix
	end    string
	out    chan storage.Event

	rev  int64            // every change up to rev has been delivered; 0: no baseline yet
	keys map[string]int64 // etcd key -> ModRevision, as of rev
}

// Watch reports every committed change to bucket, from any process, in
// revision order. If etcd cannot be read when Watch is called (within
// RequestTimeout or ctx), it logs an error and keeps trying; once it can,
// it reports every record of the bucket as a Put, since it cannot know what
// changed meanwhile.
func (s *Store) Watch(ctx context.Context, bucket string) <-chan storage.Event {
	w := &watcher{
		s:      s,
		bucket: bucket,
		bp:     s.bucketPrefix(bucket),
		out:    make(chan storage.Event),
		keys:   map[string]int64{},
	}
	w.end = clientv3.GetPrefixRangeEnd(w.bp)
	s.mu.Lock()
	if s.closed.Load() || ctx.Err() != nil {
		s.mu.Unlock()
		close(w.out)
		return w.out
	}
	s.wg.Add(1)
	s.mu.Unlock()
	if err := w.baseline(ctx); err != nil {
		s.log.Error("etcd watch: cannot read the bucket; changes until it can will be reported as a reload",
			"bucket", bucket, "err", err)
	}
	go w.run(ctx)
	return w.out
}

// baseline reads the keys of the bucket (no values) at one revision.
func (w *watcher) baseline(ctx context.Context) error {
	keys := map[string]int64{}
	rev, err := w.readBucket(ctx, true, func(key string, modRev int64, _ []byte) error {
		keys[key] = modRev
		return nil
	})
	if err != nil {
		return err
	}
	w.keys, w.rev = keys, rev
	return nil
}

// readBucket reads the whole bucket in pages at one revision, which it
// returns; keysOnly leaves values out.
func (w *watcher) readBucket(ctx context.Context, keysOnly bool, fn func(key string, modRev int64, value []byte) error) (int64, error) {
	var rev int64
	cursor := w.bp
	for {
		opts := []clientv3.OpOption{clientv3.WithRange(w.end), clientv3.WithLimit(scanPage)}
		if keysOnly {
			opts = append(opts, clientv3.WithKeysOnly())
		}
		if rev != 0 {
			opts = append(opts, clientv3.WithRev(rev))
		}
		rctx, cancel := w.s.reqCtx(ctx)
		resp, err := w.s.cl.Get(rctx, cursor, opts...)
		cancel()
		if err != nil {
			return 0, fmt.Errorf("read bucket %s: %w", w.bucket, err)
		}
		if rev == 0 {
			rev = resp.Header.Revision
		}
		for _, kv := range resp.Kvs {
			if err := fn(string(kv.Key), kv.ModRevision, kv.Value); err != nil {
				return 0, err
			}
		}
		if !resp.More || len(resp.Kvs) == 0 {
			return rev, nil
		}
		cursor = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
}

// run watches until ctx is done or the store closes, then closes out.
func (w *watcher) run(ctx context.Context) {
	defer w.s.wg.Done()
	defer close(w.out)
	for {
		if w.rev == 0 || errors.Is(w.follow(ctx), rpctypes.ErrCompacted) {
			if err := w.reload(ctx); err != nil && !w.stopped(ctx) {
				w.s.log.Warn("etcd watch: reload failed, retrying", "bucket", w.bucket, "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-w.s.done:
			return
		case <-time.After(restartDelay):
		}
	}
}

func (w *watcher) stopped(ctx context.Context) bool {
	select {
	case <-ctx.Done():
		return true
	case <-w.s.done:
		return true
	default:
		return false
	}
}

// follow delivers events from an etcd watch starting after w.rev until the
// watch ends; it returns why (wrapping rpctypes.ErrCompacted when history
// is gone).
func (w *watcher) follow(ctx context.Context) error {
	// WithRequireLeader: a member cut off from the quorum ends the watch
	// (and we subscribe again, possibly elsewhere) rather than go quiet.
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	go func() {
		select {
		case <-w.s.done:
			cancel()
		case <-wctx.Done():
		}
	}()
	ch := w.s.cl.Watch(wctx, w.bp, clientv3.WithRange(w.end), clientv3.WithRev(w.rev+1), clientv3.WithProgressNotify())
	for resp := range ch {
		if err := resp.Err(); err != nil {
			if resp.CompactRevision != 0 {
				w.s.log.Warn("etcd watch: history compacted, reloading the bucket",
					"bucket", w.bucket, "from_revision", w.rev+1, "compacted_to", resp.CompactRevision)
				return fmt.Errorf("watch %s from %d: %w", w.bucket, w.rev+1, rpctypes.ErrCompacted)
			}
			if !w.stopped(ctx) {
				w.s.log.Warn("etcd watch: ended, subscribing again", "bucket", w.bucket, "revision", w.rev, "err", err)
			}
			return err
		}
		if resp.IsProgressNotify() {
			// Every event up to the header revision has been sent.
			w.rev = max(w.rev, resp.Header.Revision)
			continue
		}
		for _, ev := range resp.Events {
			key := string(ev.Kv.Key)
			e := storage.Event{Bucket: w.bucket, Key: key[len(w.bp):]}
			if ev.Type == mvccpb.DELETE {
				e.Deleted = true
				delete(w.keys, key)
			} else {
				e.Value = clone(ev.Kv.Value)
				w.keys[key] = ev.Kv.ModRevision
			}
			if !w.send(ctx, e) {
				return ctx.Err()
			}
			w.rev = ev.Kv.ModRevision
		}
	}
	return errors.New("watch channel closed")
}

// reload reads the bucket and emits what differs from w.keys.
func (w *watcher) reload(ctx context.Context) error {
	var events []storage.Event
	seen := map[string]int64{}
	rev, err := w.readBucket(ctx, false, func(key string, modRev int64, value []byte) error {
		seen[key] = modRev
		if old, ok := w.keys[key]; !ok || old != modRev {
			events = append(events, storage.Event{Bucket: w.bucket, Key: key[len(w.bp):], Value: clone(value)})
		}
		return nil
	})
	if err != nil {
		return err
	}
	for key := range w.keys {
		if _, ok := seen[key]; !ok {
			events = append(events, storage.Event{Bucket: w.bucket, Key: key[len(w.bp):], Deleted: true})
		}
	}
	slices.SortFunc(events, func(a, b storage.Event) int {
		switch {
		case a.Key < b.Key:
			return -1
		case a.Key > b.Key:
			return 1
		}
		return 0
	})
	w.s.log.Warn("etcd watch: bucket reloaded", "bucket", w.bucket, "revision", rev, "changes", len(events))
	for _, e := range events {
		if !w.send(ctx, e) {
			return ctx.Err()
		}
	}
	w.keys, w.rev = seen, rev
	return nil
}

// send delivers e unless ctx is done or the store closes.
func (w *watcher) send(ctx context.Context, e storage.Event) bool {
	select {
	case w.out <- e:
		return true
	case <-ctx.Done():
		return false
	case <-w.s.done:
		return false
	}
}
