package etcd

import (
	"bytes"
	"context"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/signet-auth/signet/storage"
)

// send commits a transaction, through the test hook when one is set.
func (s *Store) send(commit func() (*clientv3.TxnResponse, error)) (*clientv3.TxnResponse, error) {
	if s.commitHook != nil {
		return s.commitHook(commit)
	}
	return commit()
}

// resolve finds out what became of t's commit, which failed without an
// answer (a timeout, a lost leader): etcd may have applied it, may apply
// it later, or never. One transaction, in a context of its own (the
// caller's may have expired), checks that t's checks still hold and that
// none of the keys t writes changed since t read: then t has not been
// applied, and the transaction writes back, unchanged, a key t read, so
// that t's checks can never pass later; resolve reports storage
// ErrUnavailable, nothing committed. Otherwise it reads the keys t writes:
// when they hold t's writes, t was committed and resolve returns nil (the
// caller answers what happened). Anything else, including no answer
// again, or a t that read no existing key (nothing to write back), is
// storage.ErrUnavailable with the outcome unknown.
func (s *Store) resolve(t *tx, commitErr error) error {
	unknown := fmt.Errorf("%w: commit outcome unknown: %w", storage.ErrUnavailable, commitErr)
	var pin string
	for _, k := range sortedKeys(t.reads) {
		if t.reads[k].modRev != 0 {
			pin = k
			break
		}
	}
	cmps := t.compares()
	var puts, dels []string
	for _, k := range t.order {
		if t.isGuard(k) {
			continue
		}
		if _, read := t.reads[k]; !read {
			cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(k), "<", t.rev+1))
		}
		if t.writes[k].deleted {
			dels = append(dels, k)
		} else {
			puts = append(puts, k)
		}
	}
	if pin == "" || len(cmps) > s.opts.MaxTxnOps || len(puts)+len(dels) > s.opts.MaxTxnOps {
		return unknown
	}
	var gets []clientv3.Op
	for _, k := range append(puts, dels...) {
		gets = append(gets, clientv3.OpGet(k))
	}
	ctx, cancel := s.reqCtx(context.WithoutCancel(t.ctx))
	defer cancel()
	resp, err := s.cl.Txn(ctx).If(cmps...).Then(clientv3.OpPut(pin, string(t.reads[pin].value))).Else(gets...).Commit()
	if err != nil {
		return unknown
	}
	if resp.Succeeded {
		return fmt.Errorf("%w: not committed (checked): %w", storage.ErrUnavailable, commitErr)
	}
	for i, r := range resp.Responses {
		kvs := r.GetResponseRange().GetKvs()
		if i < len(puts) {
			if len(kvs) != 1 || kvs[0].ModRevision <= t.rev || !bytes.Equal(kvs[0].Value, t.writes[puts[i]].value) {
				return unknown
			}
		} else if len(kvs) != 0 {
			return unknown
		}
	}
	s.log.Debug("etcd: a commit without an answer was applied", "err", commitErr)
	return nil
}
