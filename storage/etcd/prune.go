package etcd

import (
	"context"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/signet-auth/signet/storage"
)

// pruneBytes bounds the values one DeleteUnchanged transaction compares,
// well below etcd's --max-request-bytes (1.5 MiB by default).
const pruneBytes = 512 << 10

// DeleteUnchanged deletes the records of recs whose value is unchanged. One
// etcd transaction carries up to MaxTxnOps-2 deletes (etcd allows a nested
// transaction the ops its parent leaves: the outer one holds the deletes
// and the guard, each nested one one check and one delete), each in a nested
// transaction of its own that compares that key's value only, so one
// record changed by a live request fails alone; the outer transaction
// writes the bucket's delete guard (as every delete does, for the scans
// of concurrent Updates) and carries the fence of ctx, if any.
func (s *Store) DeleteUnchanged(ctx context.Context, bucket string, recs []storage.Record) (int, error) {
	if s.closed.Load() {
		return 0, storage.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("etcd delete unchanged in %s: %w", bucket, err)
	}
	bp := s.bucketPrefix(bucket)
	n := 0
	for len(recs) > 0 {
		ops := make([]clientv3.Op, 0, min(len(recs), s.opts.MaxTxnOps))
		size := 0
		i := 0
		for ; i < len(recs) && len(ops) < max(1, s.opts.MaxTxnOps-2) && (i == 0 || size+len(recs[i].Value) <= pruneBytes); i++ {
			k := bp + recs[i].Key
			ops = append(ops, clientv3.OpTxn(
				[]clientv3.Cmp{clientv3.Compare(clientv3.Value(k), "=", string(recs[i].Value))},
				[]clientv3.Op{clientv3.OpDelete(k)}, nil))
			size += len(k) + len(recs[i].Value)
		}
		recs = recs[i:]
		ops = append(ops, clientv3.OpPut(s.guardKey(bucket), ""))
		m, err := s.commitPrune(ctx, ops)
		if err != nil {
			return n, fmt.Errorf("etcd delete unchanged in %s: %w", bucket, s.mapErr(err))
		}
		n += m
	}
	return n, nil
}

// commitPrune commits one transaction of DeleteUnchanged and counts the
// nested deletes that found their key unchanged.
func (s *Store) commitPrune(ctx context.Context, ops []clientv3.Op) (int, error) {
	rctx, cancel := s.reqCtx(ctx)
	defer cancel()
	txn, fence := s.fencedTxn(rctx, ctx, nil, ops)
	resp, err := txn.Commit()
	if err != nil {
		return 0, err
	}
	if !resp.Succeeded {
		if err := fenceError(resp, fence); err != nil {
			return 0, err
		}
		return 0, fmt.Errorf("transaction without checks failed")
	}
	n := 0
	for _, r := range resp.Responses {
		if t := r.GetResponseTxn(); t != nil && t.Succeeded {
			n++
		}
	}
	return n, nil
}
