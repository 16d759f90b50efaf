package main

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/signet-auth/signet/storage"
)

// freshness tracks when a shared store last answered. A replica cut off
// from etcd for longer than maxStaleness may be signing with a key the
// rest of the fleet has revoked, so it stops issuing (and reports not
// ready) until etcd answers again; it recovers by itself.
type freshness struct {
	st           storage.Store
	maxStaleness time.Duration
	now          func() time.Time
	lastOK       atomic.Int64 // unix nanoseconds of the last answered probe
}

// startFreshness probes st every maxStaleness/5 until ctx ends. The probe
// is an empty View: on etcd it reads the revision with a linearizable
// request, which only a member in contact with a quorum answers.
func startFreshness(ctx context.Context, st storage.Store, maxStaleness time.Duration) *freshness {
	f := &freshness{st: st, maxStaleness: maxStaleness, now: time.Now}
	f.lastOK.Store(f.now().UnixNano())
	go f.run(ctx)
	return f
}

func (f *freshness) run(ctx context.Context) {
	tick := time.NewTicker(f.maxStaleness / 5)
	defer tick.Stop()
	for {
		pctx, cancel := context.WithTimeout(ctx, f.maxStaleness/2)
		if err := f.st.View(pctx, func(storage.Tx) error { return nil }); err == nil {
			f.lastOK.Store(f.now().UnixNano())
		}
		cancel()
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// Check returns an error when the store has not answered for longer than
// maxStaleness.
func (f *freshness) Check() error {
	last := time.Unix(0, f.lastOK.Load())
	if age := f.now().Sub(last); age > f.maxStaleness {
		return fmt.Errorf("store unreachable for %s (storage.etcd.max_staleness %s)", age.Round(time.Millisecond), f.maxStaleness)
	}
	return nil
}
