package backchannel

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"sync"
	"time"

	"github.com/signet-auth/signet/clients"
	"github.com/signet-auth/signet/outbound"
	"github.com/signet-auth/signet/storage"
)

// EventType is the events member of every logout token (§2.4).
const EventType = "http://schemas.openid.net/event/backchannel-logout"

// Defaults of Config.
const (
	DefaultMinBackoff  = time.Second
	DefaultMaxBackoff  = 5 * time.Minute
	DefaultGiveUpAfter = 24 * time.Hour
	DefaultTokenTTL    = 2 * time.Minute
	DefaultPoll        = 5 * time.Second
	DefaultClaimFor    = time.Minute
	DefaultParallel    = 8
)

// Metrics counts what the worker does (metrics.Backchannel).
type Metrics interface {
	Pending(n int) // entries in the outbox at the last pass
	Sent()         // a logout token answered with 2xx
	Failed()       // an attempt that failed (retried later)
	GaveUp()       // an entry dropped after GiveUpAfter
}

// Config configures Run. Store, Clients, Sign, Fetcher, Issuer and Lead
// are required.
type Config struct {
	Store storage.Store
	// Clients finds a client's backchannel_logout_uri (*clients.Registry).
	Clients interface {
		Lookup(ctx context.Context, id string) (*clients.Entry, error)
	}
	// Sign signs the token's claims for a client as its ID tokens are
	// signed, with header typ logout+jwt (authority.Server.SignLogoutToken).
	Sign func(ctx context.Context, clientID string, claims []byte) (string, error)
	// Fetcher is the hardened outbound client: URL and address checks,
	// no redirects, time limits.
	Fetcher *outbound.Fetcher
	Issuer  string
	// Lead returns the context to work in and true on the replica that
	// leads the scheduled jobs (fenced on etcd: a claim written after the
	// lead was lost fails); false elsewhere.
	Lead func(ctx context.Context) (context.Context, context.CancelFunc, bool)
	// StepDown is called when a write was refused as fenced (optional).
	StepDown func(error)
	Metrics  Metrics // optional
	Logger   *slog.Logger
	Now      func() time.Time

	// MinBackoff doubles per failed attempt up to MaxBackoff; an entry
	// still undelivered GiveUpAfter after it was written is dropped.
	MinBackoff, MaxBackoff, GiveUpAfter time.Duration
	// TokenTTL is the logout token's lifetime (exp - iat).
	TokenTTL time.Duration
	// Poll is how often the outbox is read without a change to wake it.
	Poll time.Duration
	// ClaimFor is how long a claim holds; longer than a delivery can take.
	ClaimFor time.Duration
	// Parallel bounds the deliveries in flight.
	Parallel int
}

func (c *Config) defaults() {
	set := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	set(&c.MinBackoff, DefaultMinBackoff)
	set(&c.MaxBackoff, DefaultMaxBackoff)
	set(&c.GiveUpAfter, DefaultGiveUpAfter)
	set(&c.TokenTTL, DefaultTokenTTL)
	set(&c.Poll, DefaultPoll)
	set(&c.ClaimFor, DefaultClaimFor)
	if c.Parallel <= 0 {
		c.Parallel = DefaultParallel
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Metrics == nil {
		c.Metrics = noMetrics{}
	}
}

type noMetrics struct{}

func (noMetrics) Pending(int) {}
func (noMetrics) Sent()       {}
func (noMetrics) Failed()     {}
func (noMetrics) GaveUp()     {}

// Run delivers the outbox until ctx ends: a pass on every change to the
// outbox (this or another replica's) and every Poll, on the leader only.
func Run(ctx context.Context, cfg Config) {
	cfg.defaults()
	w := &worker{cfg: cfg}
	events := cfg.Store.Watch(ctx, Bucket)
	tick := time.NewTicker(cfg.Poll)
	defer tick.Stop()
	for {
		w.pass(ctx)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case _, ok := <-events:
			if !ok {
				events = nil // the ticker carries on
			}
			events = drain(events)
		}
	}
}

// drain takes the events already queued, so that one pass answers them
// all (the pass's own claims and deletes come back as events too); it
// returns nil once the channel is closed.
func drain(events <-chan storage.Event) <-chan storage.Event {
	for {
		select {
		case _, ok := <-events:
			if !ok {
				return nil
			}
		default:
			return events
		}
	}
}

type worker struct{ cfg Config }

// pass delivers every due entry once, if this replica leads.
func (w *worker) pass(root context.Context) {
	ctx, done, ok := w.cfg.Lead(root)
	if !ok {
		return
	}
	defer done()
	now := w.cfg.Now()
	var due []string
	n := 0
	err := w.cfg.Store.View(ctx, func(tx storage.Tx) error {
		due, n = due[:0], 0
		return tx.Scan(Bucket, "", func(k string, b []byte) error {
			n++
			var e Entry
			if json.Unmarshal(b, &e) != nil {
				due = append(due, k) // dropped by deliver
				return nil
			}
			if e.NextAt <= now.UnixNano() && e.ClaimedUntil <= now.UnixNano() {
				due = append(due, k)
			}
			return nil
		})
	})
	if err != nil {
		w.cfg.Logger.LogAttrs(ctx, slog.LevelWarn, "back-channel logout: read outbox", slog.String("err", err.Error()))
		return
	}
	w.cfg.Metrics.Pending(n)
	sem := make(chan struct{}, w.cfg.Parallel)
	var wg sync.WaitGroup
	for _, k := range due {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			w.deliver(ctx, k)
		}()
	}
	wg.Wait()
}

// deliver claims the entry under k, sends it and records the outcome.
func (w *worker) deliver(ctx context.Context, k string) {
	e, ok := w.claim(ctx, k)
	if !ok {
		return
	}
	err := w.send(ctx, &e)
	switch {
	case err == nil:
		w.cfg.Metrics.Sent()
		w.finish(ctx, k, &e, func(storage.Tx) (bool, error) { return true, nil })
	case errors.Is(err, errNoEndpoint):
		w.finish(ctx, k, &e, func(storage.Tx) (bool, error) { return true, nil })
	default:
		w.cfg.Metrics.Failed()
		now := w.cfg.Now()
		if now.Sub(time.Unix(0, e.CreatedAt)) >= w.cfg.GiveUpAfter {
			w.cfg.Metrics.GaveUp()
			w.cfg.Logger.LogAttrs(ctx, slog.LevelWarn, "back-channel logout given up", slog.String("client_id", e.ClientID),
				slog.Int("attempts", e.Attempts), slog.String("err", err.Error()))
			w.finish(ctx, k, &e, func(storage.Tx) (bool, error) { return true, nil })
			return
		}
		w.cfg.Logger.LogAttrs(ctx, slog.LevelInfo, "back-channel logout failed, will retry", slog.String("client_id", e.ClientID),
			slog.Int("attempts", e.Attempts), slog.String("err", err.Error()))
		next, why := now.Add(w.backoff(e.Attempts)).UnixNano(), err.Error()
		w.finish(ctx, k, &e, func(tx storage.Tx) (bool, error) {
			cur, err := getEntry(tx, k)
			if err != nil {
				return false, err
			}
			cur.NextAt, cur.ClaimedUntil, cur.LastError = next, 0, why
			return false, putEntry(tx, k, &cur)
		})
	}
}

// backoff is MinBackoff doubled per earlier failure, at most MaxBackoff.
func (w *worker) backoff(attempts int) time.Duration {
	d := w.cfg.MinBackoff
	for i := 1; i < attempts && d < w.cfg.MaxBackoff; i++ {
		d *= 2
	}
	return min(d, w.cfg.MaxBackoff)
}

// claim takes the entry for one attempt with a conditional write: it must
// still be due and unclaimed in the transaction that claims it, so of two
// replicas (an old leader and a new one) one sends.
func (w *worker) claim(ctx context.Context, k string) (Entry, bool) {
	var e Entry
	now := w.cfg.Now()
	claimed := false
	err := w.cfg.Store.Update(ctx, func(tx storage.Tx) error {
		claimed = false
		var err error
		if e, err = getEntry(tx, k); err != nil {
			if errors.Is(err, storage.ErrNotFound) {
				return nil
			}
			if errors.Is(err, errBroken) {
				// Undecodable: nothing can be sent for it.
				w.cfg.Logger.LogAttrs(ctx, slog.LevelWarn, "back-channel logout: dropping a broken outbox entry", slog.String("err", err.Error()))
				return tx.Delete(Bucket, k)
			}
			return err
		}
		if e.NextAt > now.UnixNano() || e.ClaimedUntil > now.UnixNano() {
			return nil
		}
		e.Attempts++
		e.ClaimedUntil = now.Add(w.cfg.ClaimFor).UnixNano()
		claimed = true
		return putEntry(tx, k, &e)
	})
	if err != nil {
		w.storeError(ctx, "claim", err)
		return Entry{}, false
	}
	return e, claimed
}

// finish applies fn to the entry this worker claimed (same jti and
// attempt), deleting it when fn says so; an entry claimed since by
// another attempt is left to it.
func (w *worker) finish(ctx context.Context, k string, mine *Entry, fn func(storage.Tx) (bool, error)) {
	err := w.cfg.Store.Update(ctx, func(tx storage.Tx) error {
		cur, err := getEntry(tx, k)
		if errors.Is(err, storage.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if cur.JTI != mine.JTI || cur.Attempts != mine.Attempts {
			return nil
		}
		del, err := fn(tx)
		if err != nil || !del {
			return err
		}
		return tx.Delete(Bucket, k)
	})
	if err != nil {
		w.storeError(ctx, "record the outcome", err)
	}
}

func (w *worker) storeError(ctx context.Context, what string, err error) {
	if errors.Is(err, context.Canceled) {
		return
	}
	w.cfg.Logger.LogAttrs(ctx, slog.LevelWarn, "back-channel logout: "+what, slog.String("err", err.Error()))
	if errors.Is(err, storage.ErrFenced) && w.cfg.StepDown != nil {
		w.cfg.StepDown(err)
	}
}

// errNoEndpoint: the client no longer exists, is disabled or has no
// backchannel_logout_uri; the entry is dropped unsent.
var errNoEndpoint = errors.New("backchannel: client has no back-channel logout endpoint")

// send signs and POSTs the logout token of e.
func (w *worker) send(ctx context.Context, e *Entry) error {
	ent, err := w.cfg.Clients.Lookup(ctx, e.ClientID)
	if errors.Is(err, storage.ErrNotFound) {
		return errNoEndpoint
	}
	if err != nil {
		return err
	}
	cl := ent.Record.Client
	if cl.BackchannelLogoutURI == "" || cl.Disabled {
		return errNoEndpoint
	}
	claims, err := json.Marshal(Claims(w.cfg.Issuer, e, w.cfg.Now(), w.cfg.TokenTTL))
	if err != nil {
		return err
	}
	tok, err := w.cfg.Sign(ctx, e.ClientID, claims)
	if err != nil {
		return fmt.Errorf("sign logout token: %w", err)
	}
	status, _, err := w.cfg.Fetcher.PostForm(ctx, cl.BackchannelLogoutURI, url.Values{"logout_token": {tok}}, nil)
	if err == nil && (status < 200 || status > 299) {
		// OpenID Connect Back-Channel Logout 1.0 §2.8: 200 (or 204) is
		// success; anything else is tried again.
		err = fmt.Errorf("post logout token to %s: %w %d", cl.BackchannelLogoutURI, outbound.ErrStatus, status)
	}
	return err
}
