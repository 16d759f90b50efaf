package etcd

import (
	"context"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/signet-auth/signet/storage"
)

// Fenced writes (storage.WithFence). The check travels in the transaction
// that commits the writes, as etcd's documentation says a lease alone
// cannot: a leader whose session expired during a pause still holds a
// lease-less belief, but etcd compares the election key's creation
// revision at commit time. When the transaction fails, its Else branch
// reads the election key, so one round trip tells a lost fence from an
// ordinary conflict.

// fencedTxn returns the etcd transaction committing cmps and ops within ctx,
// fenced when tctx (the caller's context) carries a fence.
func (s *Store) fencedTxn(ctx, tctx context.Context, cmps []clientv3.Cmp, ops []clientv3.Op) (clientv3.Txn, *storage.Fence) {
	f, ok := storage.FenceFrom(tctx)
	if !ok {
		return s.cl.Txn(ctx).If(cmps...).Then(ops...), nil
	}
	cmps = append(cmps[:len(cmps):len(cmps)], clientv3.Compare(clientv3.CreateRevision(f.Key), "=", f.Rev))
	return s.cl.Txn(ctx).If(cmps...).Then(ops...).Else(clientv3.OpGet(f.Key)), &f
}

// fenceError reports a failed transaction whose fence no longer holds as
// storage.ErrFenced; nil when the fence holds (an ordinary conflict).
func fenceError(resp *clientv3.TxnResponse, f *storage.Fence) error {
	if f == nil || len(resp.Responses) == 0 {
		return nil
	}
	got := resp.Responses[0].GetResponseRange()
	if got != nil && len(got.Kvs) == 1 && got.Kvs[0].CreateRevision == f.Rev {
		return nil
	}
	return fmt.Errorf("leader key %s created at revision %d is gone or replaced: %w", f.Key, f.Rev, storage.ErrFenced)
}
