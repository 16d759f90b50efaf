package storage

import (
	"context"
	"errors"
)

// ErrFenced is returned by Update and Batch of a shared backend when the
// context carries a Fence that no longer holds: the process that wrote is
// not the leader any more, and nothing was written.
var ErrFenced = errors.New("storage: fenced: this process is no longer the leader")

// Fence makes a write conditional on leadership. A shared backend (etcd)
// adds to the transaction of every Update and Batch whose context carries a
// Fence the check "CreateRevision(Key) == Rev", in the same transaction as
// the writes, so a leader that lost its lease without knowing it (a long GC
// pause, a partition) cannot overwrite what the new leader wrote. A
// single-process backend (bolt) ignores it: its one process is the leader.
type Fence struct {
	Key string // the leader's election key, as the backend names it
	Rev int64  // the revision at which that key was created
}

type fenceKey struct{}

// WithFence returns a context whose writes are fenced by f.
func WithFence(ctx context.Context, f Fence) context.Context {
	return context.WithValue(ctx, fenceKey{}, f)
}

// FenceFrom returns the fence of ctx, if it has one.
func FenceFrom(ctx context.Context) (Fence, bool) {
	f, ok := ctx.Value(fenceKey{}).(Fence)
	return f, ok
}
