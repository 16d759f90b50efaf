package etcd

import (
	"context"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// OpenWithRecvLimit is Open with a client that refuses responses larger
// than limit bytes: a test that Scan and Watch read in pages.
func OpenWithRecvLimit(ctx context.Context, opts Options, limit int) (*Store, error) {
	opts = opts.withDefaults()
	cfg, err := clientConfig(opts)
	if err != nil {
		return nil, err
	}
	cfg.MaxCallRecvMsgSize = limit
	return open(ctx, opts, cfg)
}

// BatchQueueLen is how many Batch calls wait for the next shared commit.
func BatchQueueLen(s *Store) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.batchQueue)
}

// SetBeforeGroupCommit installs fn to run before each commit of the Batch
// committer. Call it before any Batch.
// It also makes one commit at a time, so the others queue behind the hook.
func SetBeforeGroupCommit(s *Store, fn func()) {
	s.beforeGroupCommit = fn
	s.committers = 1
}

// SetCommitHook makes every commit of Update and Batch go through hook,
// which may call send (or not, or later) and return any outcome.
func SetCommitHook(s *Store, hook func(send func() (*clientv3.TxnResponse, error)) (*clientv3.TxnResponse, error)) {
	s.commitHook = hook
}
