package etcd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/signet-auth/signet/storage"
)

var (
	// errConflict is a commit whose checks failed; Update retries it.
	errConflict = errors.New("etcd: transaction reads changed")
	// errStale is a read whose revision was compacted while the transaction
	// ran; Update starts over.
	errStale = errors.New("etcd: read revision compacted")
	// errTxDone is returned by Tx methods called after their transaction ended.
	errTxDone = errors.New("etcd: transaction has ended")
	// errReadOnly is returned by Put and Delete in a View.
	errReadOnly = errors.New("etcd: write in a read-only transaction")
)

// tx is one run of a View or Update function. Writes are buffered and sent
// in one etcd transaction at commit; reads see them.
type tx struct {
	s        *Store
	ctx      context.Context
	writable bool
	done     atomic.Bool // set when fn returns

	stale  bool            // the first read may be served by any member (see get)
	rev    int64           // revision every read is taken at; 0 before the first read
	reads  map[string]read // etcd key -> what Get saw
	scans  []scanned
	writes map[string]*write // etcd key -> last write
	order  []string          // etcd keys in first-write order (etcd reports a txn's events in op order)
}

type read struct {
	bucket string
	modRev int64  // 0: absent
	value  []byte // as read (resolve re-puts it)
}

type scanned struct {
	bucket     string
	start, end string // etcd key range
}

type write struct {
	bucket, key string
	value       []byte
	deleted     bool
}

func (s *Store) newTx(ctx context.Context, writable bool) *tx {
	return &tx{s: s, ctx: ctx, writable: writable, reads: map[string]read{}, writes: map[string]*write{}}
}

// get reads from etcd at the transaction's revision, fixing it on the
// first read.
//
// Which reads need the leader (linearizable, a read-index round): the
// first read of a View, so a View sees every commit that finished before
// it started. Reads at a fixed revision do not: any member that has
// applied that revision answers them alone (one that has not yet says
// ErrFutureRev, and the read is repeated linearizably). Nor does the first
// read of an Update's first attempt (t.stale): a stale snapshot only makes
// the commit's checks fail, and the next attempt reads linearizably.
func (t *tx) get(key string, opts ...clientv3.OpOption) (*clientv3.GetResponse, error) {
	if t.rev != 0 {
		opts = append(opts, clientv3.WithRev(t.rev))
	}
	ctx, cancel := t.s.reqCtx(t.ctx)
	defer cancel()
	var resp *clientv3.GetResponse
	var err error
	if t.rev != 0 || t.stale {
		resp, err = t.s.cl.Get(ctx, key, append(opts, clientv3.WithSerializable())...)
	}
	if resp == nil && (err == nil || errors.Is(err, rpctypes.ErrFutureRev)) {
		resp, err = t.s.cl.Get(ctx, key, opts...)
	}
	if errors.Is(err, rpctypes.ErrCompacted) {
		return nil, fmt.Errorf("%w: %w", errStale, err)
	}
	if err != nil {
		return nil, t.s.mapErr(err)
	}
	if t.rev == 0 {
		t.rev = resp.Header.Revision
	}
	return resp, nil
}

func (t *tx) Get(bucket, key string) ([]byte, error) {
	if t.done.Load() {
		return nil, errTxDone
	}
	k := t.s.bucketPrefix(bucket) + key
	if w, ok := t.writes[k]; ok {
		if w.deleted {
			return nil, storage.ErrNotFound
		}
		return bytes.Clone(w.value), nil
	}
	resp, err := t.get(k)
	if err != nil {
		return nil, fmt.Errorf("etcd get %s/%s: %w", bucket, key, err)
	}
	if len(resp.Kvs) == 0 {
		t.reads[k] = read{bucket: bucket}
		return nil, storage.ErrNotFound
	}
	kv := resp.Kvs[0]
	t.reads[k] = read{bucket: bucket, modRev: kv.ModRevision, value: kv.Value}
	return clone(kv.Value), nil
}

func (t *tx) Put(bucket, key string, value []byte) error {
	if t.done.Load() {
		return errTxDone
	}
	if !t.writable {
		return fmt.Errorf("etcd put %s/%s: %w", bucket, key, errReadOnly)
	}
	t.record(&write{bucket: bucket, key: key, value: clone(value)})
	return nil
}

func (t *tx) Delete(bucket, key string) error {
	if t.done.Load() {
		return errTxDone
	}
	if !t.writable {
		return fmt.Errorf("etcd delete %s/%s: %w", bucket, key, errReadOnly)
	}
	t.record(&write{bucket: bucket, key: key, deleted: true})
	return nil
}

func (t *tx) record(w *write) {
	k := t.s.bucketPrefix(w.bucket) + w.key
	if _, ok := t.writes[k]; !ok {
		t.order = append(t.order, k)
	}
	t.writes[k] = w
}

// Scan reads the range in pages of scanPage records at the transaction's
// revision and merges the transaction's own writes into it.
func (t *tx) Scan(bucket, prefix string, fn func(key string, value []byte) error) error {
	if t.done.Load() {
		return errTxDone
	}
	bp := t.s.bucketPrefix(bucket)
	start := bp + prefix
	end := clientv3.GetPrefixRangeEnd(start)
	// This transaction's writes in the range, in key order, as they are
	// now: writes fn makes during the scan do not change what it visits.
	var own []string
	for k := range t.writes {
		if strings.HasPrefix(k, start) {
			own = append(own, k)
		}
	}
	slices.Sort(own)
	ownVals := make([]write, len(own))
	for i, k := range own {
		ownVals[i] = *t.writes[k]
	}
	emitOwn := func(i int) error {
		if w := ownVals[i]; !w.deleted {
			return fn(w.key, clone(w.value))
		}
		return nil
	}
	t.scans = append(t.scans, scanned{bucket: bucket, start: start, end: end})

	next := 0 // first of own not yet visited
	cursor := start
	for {
		resp, err := t.get(cursor, clientv3.WithRange(end), clientv3.WithLimit(scanPage))
		if err != nil {
			return fmt.Errorf("etcd scan %s/%q: %w", bucket, prefix, err)
		}
		for _, kv := range resp.Kvs {
			k := string(kv.Key)
			for next < len(own) && own[next] < k {
				if err := emitOwn(next); err != nil {
					return err
				}
				next++
			}
			if next < len(own) && own[next] == k {
				if err := emitOwn(next); err != nil {
					return err
				}
				next++
				continue
			}
			if err := fn(k[len(bp):], clone(kv.Value)); err != nil {
				return err
			}
		}
		if !resp.More || len(resp.Kvs) == 0 {
			break
		}
		cursor = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
	for ; next < len(own); next++ {
		if err := emitOwn(next); err != nil {
			return err
		}
	}
	return nil
}

// prepare returns the checks and writes of the etcd transaction that
// commits t, as described in the package documentation.
func (t *tx) prepare() ([]clientv3.Cmp, []clientv3.Op, error) {
	max := t.s.opts.MaxTxnOps
	ops := t.ops()
	if len(ops) > max {
		return nil, nil, fmt.Errorf("%d writes in one transaction (deletes count their bucket's guard too): more than the %d etcd accepts (--max-txn-ops); split the work", len(ops), max)
	}
	cmps := t.compares()
	if len(cmps) > max {
		cmps = t.bucketCompares()
	}
	if len(cmps) > max {
		return nil, nil, fmt.Errorf("transaction read %d buckets: more checks than the %d etcd accepts (--max-txn-ops)", len(cmps), max)
	}
	return cmps, ops, nil
}

// commit sends t's writes in one etcd transaction within t's context. It
// returns errConflict when a check failed.
func (t *tx) commit() error {
	cmps, ops, err := t.prepare()
	if err != nil {
		return err
	}
	ctx, cancel := t.s.reqCtx(t.ctx)
	defer cancel()
	txn, fence := t.s.fencedTxn(ctx, t.ctx, cmps, ops)
	resp, err := t.s.send(txn.Commit)
	if err != nil {
		return fmt.Errorf("commit %d writes: %w", len(ops), err)
	}
	if !resp.Succeeded {
		if err := fenceError(resp, fence); err != nil {
			return err
		}
		return errConflict
	}
	return nil
}

// isGuard reports whether the etcd key k is a bucket's delete guard.
func (t *tx) isGuard(k string) bool { return strings.HasPrefix(k, t.s.prefix+"g/") }

// ops are the writes, then the guard key of every bucket with a delete.
func (t *tx) ops() []clientv3.Op {
	var ops []clientv3.Op
	guards := map[string]bool{}
	for _, k := range t.order {
		w := t.writes[k]
		if w.deleted {
			ops = append(ops, clientv3.OpDelete(k))
			guards[w.bucket] = true
		} else {
			ops = append(ops, clientv3.OpPut(k, string(w.value)))
		}
	}
	for _, b := range sortedKeys(guards) {
		ops = append(ops, clientv3.OpPut(t.s.guardKey(b), ""))
	}
	return ops
}

// compares checks every key Get read and every range Scan read.
func (t *tx) compares() []clientv3.Cmp {
	var cmps []clientv3.Cmp
	for _, k := range sortedKeys(t.reads) {
		cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(k), "=", t.reads[k].modRev))
	}
	guarded := map[string]bool{}
	for _, sc := range t.scans {
		cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(sc.start), "<", t.rev+1).WithRange(sc.end))
		if !guarded[sc.bucket] {
			guarded[sc.bucket] = true
			cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(t.s.guardKey(sc.bucket)), "<", t.rev+1))
		}
	}
	return cmps
}

// bucketCompares is the coarse form of compares when there are too many
// checks for one etcd transaction: every bucket read from is checked whole
// (nothing created, changed or deleted in it since the read revision). It
// may report conflicts compares would not, never the reverse.
func (t *tx) bucketCompares() []clientv3.Cmp {
	buckets := map[string]bool{}
	for _, r := range t.reads {
		buckets[r.bucket] = true
	}
	for _, sc := range t.scans {
		buckets[sc.bucket] = true
	}
	var cmps []clientv3.Cmp
	for _, b := range sortedKeys(buckets) {
		bp := t.s.bucketPrefix(b)
		cmps = append(cmps,
			clientv3.Compare(clientv3.ModRevision(bp), "<", t.rev+1).WithRange(clientv3.GetPrefixRangeEnd(bp)),
			clientv3.Compare(clientv3.ModRevision(t.s.guardKey(b)), "<", t.rev+1))
	}
	return cmps
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// clone copies b into a new non-nil slice: an empty value stays distinct
// from an absent one, and the caller owns it.
func clone(b []byte) []byte {
	c := make([]byte, len(b))
	copy(c, b)
	return c
}
