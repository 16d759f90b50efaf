// Package leader elects one replica of a fleet sharing an etcd store to run
// the scheduled jobs (key rotation, purges), with
// go.etcd.io/etcd/client/v3/concurrency.
//
// A replica campaigns in a loop, one session (lease) at a time. While it
// leads, Lead hands out a context fenced by the election key's creation
// revision (storage.WithFence), so every write of a job commits only if
// that key is still the leader's: a replica that lost its lease during a
// pause cannot overwrite what the next leader wrote. A job that finds its
// fence failed (storage.ErrFenced) calls StepDown. Close resigns, so the
// next leader takes over at once rather than after the lease TTL.
package leader

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/signet-auth/signet/storage"
)

// DefaultTTL is the session TTL when Options.TTL is 0: a dead leader's
// jobs move to another replica within about this long.
const DefaultTTL = 10 * time.Second

// Options configures Start.
type Options struct {
	Client *clientv3.Client
	// Prefix is the election's key prefix, such as "<store prefix>leader/".
	Prefix string
	// Name identifies this replica in the election value and in logs.
	Name string
	// TTL is the session (lease) TTL, rounded up to whole seconds; 0 means
	// DefaultTTL.
	TTL time.Duration
	// OnChange is called with true when this replica becomes leader and
	// false when it stops leading (from the election goroutine).
	OnChange func(leading bool)
	Logger   *slog.Logger
}

// Elector campaigns for leadership until Close.
type Elector struct {
	opts   Options
	log    *slog.Logger
	cancel context.CancelFunc
	done   chan struct{}

	mu       sync.Mutex
	term     *term  // nil while not leading
	observed string // the leader's name as last observed
}

// term is one period of leadership.
type term struct {
	ctx      context.Context // fenced, cancelled when the term ends
	cancel   context.CancelFunc
	stepDown chan struct{} // closed by StepDown
	once     sync.Once
}

// Start begins campaigning in the background.
func Start(ctx context.Context, opts Options) *Elector {
	if opts.TTL <= 0 {
		opts.TTL = DefaultTTL
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	ctx, cancel := context.WithCancel(ctx)
	e := &Elector{opts: opts, log: opts.Logger, cancel: cancel, done: make(chan struct{})}
	go e.run(ctx)
	return e
}

// Lead returns a context for one run of a scheduled job, derived from ctx,
// fenced by the current term and cancelled when the term ends, and true;
// or false when this replica is not the leader. Call cancel when the job
// is done.
func (e *Elector) Lead(ctx context.Context) (context.Context, context.CancelFunc, bool) {
	e.mu.Lock()
	t := e.term
	e.mu.Unlock()
	if t == nil || t.ctx.Err() != nil {
		return nil, nil, false
	}
	f, _ := storage.FenceFrom(t.ctx)
	jctx, cancel := context.WithCancel(storage.WithFence(ctx, f))
	stop := context.AfterFunc(t.ctx, cancel)
	return jctx, func() { stop(); cancel() }, true
}

// Leading reports whether this replica leads now.
func (e *Elector) Leading() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.term != nil && e.term.ctx.Err() == nil
}

// Leader returns the name of the leader: this replica's own while it
// leads (it knows without waiting for the watch), else the leader as last
// observed ("" if none yet).
func (e *Elector) Leader() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.term != nil && e.term.ctx.Err() == nil {
		return e.opts.Name
	}
	return e.observed
}

// StepDown ends the current term (a job's write was fenced out): the
// replica resigns and campaigns again in a new session.
func (e *Elector) StepDown(reason error) {
	e.mu.Lock()
	t := e.term
	e.mu.Unlock()
	if t == nil {
		return
	}
	t.once.Do(func() {
		e.log.Warn("leader: stepping down", "replica", e.opts.Name, "reason", reason.Error())
		close(t.stepDown)
	})
}

// Close resigns if leading and stops campaigning.
func (e *Elector) Close() {
	e.cancel()
	<-e.done
}

func (e *Elector) run(ctx context.Context) {
	defer close(e.done)
	for attempt := 0; ctx.Err() == nil; attempt++ {
		if err := e.session(ctx); err != nil && ctx.Err() == nil {
			e.log.Warn("leader: election session ended", "replica", e.opts.Name, "err", err.Error())
			// Back off a little so a cluster without quorum is not hammered.
			sleep(ctx, time.Duration(100+rand.IntN(400))*time.Millisecond)
		}
	}
}

// session runs one etcd session: campaign, lead until the session ends,
// StepDown or Close, then resign.
func (e *Elector) session(ctx context.Context) error {
	ttl := int((e.opts.TTL + time.Second - 1) / time.Second)
	sess, err := concurrency.NewSession(e.opts.Client, concurrency.WithTTL(ttl), concurrency.WithContext(ctx))
	if err != nil {
		return fmt.Errorf("new session: %w", err)
	}
	defer sess.Close() // revokes the lease: our key goes at once
	el := concurrency.NewElection(sess, e.opts.Prefix)

	// The campaign and the observer end with the session.
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(ctx, cancel)
	defer stop()
	go func() {
		select {
		case <-sess.Done():
			cancel()
		case <-sctx.Done():
		}
	}()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); e.observe(sctx, el) }()
	defer func() { cancel(); wg.Wait() }() // the observer ends with the session

	if err := el.Campaign(sctx, e.opts.Name); err != nil {
		if sctx.Err() != nil && ctx.Err() == nil {
			return errors.New("session expired while campaigning")
		}
		return fmt.Errorf("campaign: %w", err)
	}
	t := &term{stepDown: make(chan struct{})}
	t.ctx, t.cancel = context.WithCancel(storage.WithFence(sctx, storage.Fence{Key: el.Key(), Rev: el.Rev()}))
	e.setTerm(t)
	e.log.Info("leader: this replica leads", "replica", e.opts.Name, "key", el.Key(), "rev", el.Rev())

	var why error
	select {
	case <-sess.Done():
		why = errors.New("session expired (lease lost)")
	case <-t.stepDown:
		why = errors.New("stepped down")
	case <-ctx.Done():
		why = errors.New("shutting down")
	}
	e.setTerm(nil)
	t.cancel()
	e.log.Info("leader: this replica no longer leads", "replica", e.opts.Name, "reason", why.Error())
	rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer rcancel()
	if err := el.Resign(rctx); err != nil {
		e.log.Debug("leader: resign", "err", err.Error())
	}
	if errors.Is(ctx.Err(), context.Canceled) {
		return nil
	}
	return why
}

func (e *Elector) setTerm(t *term) {
	e.mu.Lock()
	e.term = t
	e.mu.Unlock()
	if e.opts.OnChange != nil {
		e.opts.OnChange(t != nil)
	}
}

// observe logs leadership changes seen by this replica, re-subscribing when
// the Observe channel closes (etcd closes it on errors) until ctx ends.
func (e *Elector) observe(ctx context.Context, el *concurrency.Election) {
	for ctx.Err() == nil {
		for resp := range el.Observe(ctx) {
			if len(resp.Kvs) == 0 {
				continue
			}
			name := string(resp.Kvs[0].Value)
			e.mu.Lock()
			changed := e.observed != name
			e.observed = name
			e.mu.Unlock()
			if changed {
				e.log.Info("leader: leader changed", "replica", e.opts.Name, "leader", name)
			}
		}
		sleep(ctx, 100*time.Millisecond)
	}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
