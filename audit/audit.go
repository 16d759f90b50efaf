// Package audit is Signet's audit trail: one record per change to keys,
// clients, users or sessions, kept in the store beside the data it describes.
// Writers that change the store record the event in the same transaction
// (Put); others append it in its own transaction (Log.Record). Readers page
// through it newest first with a cursor (Log.Query).
package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/signet-auth/signet/storage"
)

// Bucket holds one JSON Event per action. A key is the event time in
// zero-padded Unix nanoseconds, a dash, and a six-digit sequence number among
// events of the same nanosecond, so keys sort in the order events happened.
const Bucket = "audit"

// Actors that are not admin clients.
const (
	ActorCLI    = "cli"    // an offline command on the data directory
	ActorCron   = "cron"   // a scheduled job of a running server
	ActorSystem = "system" // the server itself, e.g. creating missing keys at start
)

// UserActor is the actor of a change made with a user's token: the user,
// not the client that holds the token (that one goes in Event.Client).
// Client ids cannot contain a colon, so the two never look alike.
func UserActor(userID string) string { return "user:" + userID }

// Outcomes.
const (
	OutcomeOK     = "ok"
	OutcomeError  = "error"
	OutcomeDenied = "denied"
)

// Event is one action: who did what to which target, when, and how it ended.
// New fields are optional (omitempty), so records written before they
// existed still decode, and old readers ignore them.
type Event struct {
	Time  time.Time `json:"time"`
	Actor string    `json:"actor"` // admin client id, user:ID, or cli, cron, system
	// Client is the client whose token a user (actor user:ID) acted
	// through; empty when the actor is the client itself or not a token.
	Client  string `json:"client,omitempty"`
	OSUser  string `json:"os_user,omitempty"` // actor cli: the operating-system user
	Replica string `json:"replica,omitempty"` // the server that acted (default its hostname)
	Action  string `json:"action"`            // e.g. keys.rotate, clients.create
	Target  string `json:"target,omitempty"`  // kid, client id, user id
	Outcome string `json:"outcome"`           // ok, error, denied
	Detail  string `json:"detail,omitempty"`
	// RequestID ties an online action to the server's request log.
	RequestID string `json:"request_id,omitempty"`
}

// Actor is who a change made through a context is attributed to: Put fills
// an event's empty actor fields from it.
type Actor struct {
	Name      string
	Client    string // actor user:ID: the client its token came from
	OSUser    string
	Replica   string
	RequestID string
}

type actorKey struct{}

// WithActor returns ctx carrying a. Fields a leaves empty keep the values of
// an actor already in ctx (a server sets its replica once; a request adds the
// client id).
func WithActor(ctx context.Context, a Actor) context.Context {
	prev := ActorFrom(ctx)
	if a.Name == "" {
		a.Name = prev.Name
	}
	if a.OSUser == "" {
		a.OSUser = prev.OSUser
	}
	if a.Client == "" {
		a.Client = prev.Client
	}
	if a.Replica == "" {
		a.Replica = prev.Replica
	}
	if a.RequestID == "" {
		a.RequestID = prev.RequestID
	}
	return context.WithValue(ctx, actorKey{}, a)
}

// ActorFrom returns the actor in ctx; its Name is ActorSystem when ctx has none.
func ActorFrom(ctx context.Context) Actor {
	a, _ := ctx.Value(actorKey{}).(Actor)
	if a.Name == "" {
		a.Name = ActorSystem
	}
	return a
}

// Attribute fills ev's empty actor fields from the actor in ctx.
func Attribute(ctx context.Context, ev Event) Event {
	a := ActorFrom(ctx)
	if ev.Actor == "" {
		ev.Actor = a.Name
	}
	if ev.OSUser == "" {
		ev.OSUser = a.OSUser
	}
	if ev.Client == "" {
		ev.Client = a.Client
	}
	if ev.Replica == "" {
		ev.Replica = a.Replica
	}
	if ev.RequestID == "" {
		ev.RequestID = a.RequestID
	}
	return ev
}

// Put writes ev in tx: the caller's change and its audit event commit or
// fail together. ev.Time must be set. Put is idempotent per transaction run,
// as storage.Store requires of Update functions.
func Put(tx storage.Tx, ev Event) error {
	if ev.Time.IsZero() {
		return errors.New("audit: event has no time")
	}
	ev.Time = ev.Time.UTC()
	val, err := json.Marshal(ev)
	if err != nil {
		return fmt.Errorf("encode audit event %s: %w", ev.Action, err)
	}
	prefix := fmt.Sprintf("%020d-", ev.Time.UnixNano())
	n := 0
	if err := tx.Scan(Bucket, prefix, func(string, []byte) error { n++; return nil }); err != nil {
		return fmt.Errorf("audit event %s: %w", ev.Action, err)
	}
	if err := tx.Put(Bucket, fmt.Sprintf("%s%06d", prefix, n), val); err != nil {
		return fmt.Errorf("audit event %s: %w", ev.Action, err)
	}
	return nil
}

// Log appends to and reads the audit trail in a store.
type Log struct {
	store storage.Store
	now   func() time.Time
}

// New returns the audit log kept in store; nil now means time.Now.
func New(store storage.Store, now func() time.Time) *Log {
	if now == nil {
		now = time.Now
	}
	return &Log{store: store, now: now}
}

// Record stores ev in its own transaction, stamping its time when zero and
// filling its empty actor fields from ctx (Attribute).
func (l *Log) Record(ctx context.Context, ev Event) error {
	if ev.Time.IsZero() {
		ev.Time = l.now()
	}
	ev = Attribute(ctx, ev)
	err := l.store.Update(ctx, func(tx storage.Tx) error { return Put(tx, ev) })
	if err != nil {
		return fmt.Errorf("record audit event %s: %w", ev.Action, err)
	}
	return nil
}

// List returns the newest limit events, newest first.
func (l *Log) List(ctx context.Context, limit int) ([]Event, error) {
	p, err := l.Query(ctx, Query{Limit: limit})
	return p.Events, err
}

// Query selects events. Zero fields select everything.
type Query struct {
	Since time.Time // events at or after
	Until time.Time // events before
	// Action is an exact action name, or a prefix ending in ".*" (keys.*).
	Action string
	// Limit is the page size; 0 means everything.
	Limit int
	// Cursor is a previous page's NextCursor: the page continues with the
	// events older than the last one returned.
	Cursor string
}

// Page is one page of events, newest first. NextCursor is empty on the last page.
type Page struct {
	Events     []Event `json:"events"`
	NextCursor string  `json:"next_cursor,omitempty"`
}

// ErrBadCursor is returned by Query for a cursor it did not make.
var ErrBadCursor = errors.New("audit: invalid cursor")

var cursorRE = regexp.MustCompile(`^[0-9]{20}-[0-9]{6}$`)

// keyTime is the time encoded in an event key.
func keyTime(k string) (time.Time, bool) {
	ns, err := strconv.ParseInt(strings.SplitN(k, "-", 2)[0], 10, 64)
	if err != nil {
		return time.Time{}, false
	}
	return time.Unix(0, ns), true
}

// Query returns one page of matching events, newest first.
//
// The store scans forward only, so a page costs a scan of the events older
// than the cursor: fine for an audit trail bounded by audit.retention.
func (l *Log) Query(ctx context.Context, q Query) (Page, error) {
	if q.Cursor != "" && !cursorRE.MatchString(q.Cursor) {
		return Page{}, ErrBadCursor
	}
	if q.Limit < 0 {
		return Page{}, fmt.Errorf("audit: negative limit %d", q.Limit)
	}
	match := func(action string) bool {
		if strings.HasSuffix(q.Action, ".*") {
			return strings.HasPrefix(action, strings.TrimSuffix(q.Action, "*"))
		}
		return action == q.Action
	}
	actionNeedle := []byte(`"action":"` + strings.TrimSuffix(q.Action, "*"))
	if !strings.HasSuffix(q.Action, ".*") {
		actionNeedle = append(actionNeedle, '"')
	}
	// Only the kept events are decoded in full.
	type item struct {
		key string
		raw []byte
	}
	// Keep the newest Limit+1 matches below the cursor: the extra one says
	// whether another page follows.
	var ring []item
	next := 0
	keep := q.Limit + 1
	errStop := errors.New("stop")
	err := l.store.View(ctx, func(tx storage.Tx) error {
		return tx.Scan(Bucket, "", func(k string, v []byte) error {
			if q.Cursor != "" && k >= q.Cursor {
				return errStop
			}
			if t, ok := keyTime(k); ok {
				if !q.Until.IsZero() && !t.Before(q.Until) {
					return errStop
				}
				if !q.Since.IsZero() && t.Before(q.Since) {
					return nil
				}
			}
			if q.Action != "" {
				// Cheap pre-filter on the encoded form, then the exact test.
				if !bytes.Contains(v, actionNeedle) {
					return nil
				}
				var a struct {
					Action string `json:"action"`
				}
				if err := json.Unmarshal(v, &a); err != nil {
					return fmt.Errorf("decode audit event %s: %w", k, err)
				}
				if !match(a.Action) {
					return nil
				}
			}
			if q.Limit == 0 || len(ring) < keep {
				ring = append(ring, item{k, v})
				return nil
			}
			ring[next] = item{k, v}
			next = (next + 1) % keep
			return nil
		})
	})
	if err != nil && !errors.Is(err, errStop) {
		return Page{}, fmt.Errorf("query audit events: %w", err)
	}
	// Oldest first in ring order starting at next.
	ordered := make([]item, 0, len(ring))
	for i := range ring {
		ordered = append(ordered, ring[(next+i)%len(ring)])
	}
	var p Page
	if q.Limit > 0 && len(ordered) > q.Limit {
		ordered = ordered[1:] // the extra, oldest one: another page follows
		p.NextCursor = ordered[0].key
	}
	p.Events = make([]Event, 0, len(ordered))
	for i := len(ordered) - 1; i >= 0; i-- {
		var ev Event
		if err := json.Unmarshal(ordered[i].raw, &ev); err != nil {
			return Page{}, fmt.Errorf("decode audit event %s: %w", ordered[i].key, err)
		}
		p.Events = append(p.Events, ev)
	}
	return p, nil
}

// Purge deletes the events older than before and reports it as the purge
// kind "audit"; Oldest is the time of the oldest such event (the caller
// knows the retention that made it expire). It reads them in one snapshot
// and deletes each on a check of its own (storage.PurgeExpired), so events
// appended meanwhile do not make it conflict.
func (l *Log) Purge(ctx context.Context, before time.Time) storage.Purged {
	limit := fmt.Sprintf("%020d-", before.UnixNano())
	old := storage.Expired{Bucket: Bucket}
	errStop := errors.New("stop")
	err := l.store.View(ctx, func(tx storage.Tx) error {
		old = storage.Expired{Bucket: Bucket}
		err := tx.Scan(Bucket, "", func(k string, v []byte) error {
			if k >= limit {
				return errStop // keys are in time order
			}
			t, ok := keyTime(k)
			if !ok {
				t = before
			}
			old.Add(k, v, t)
			return nil
		})
		if errors.Is(err, errStop) {
			return nil
		}
		return err
	})
	if err != nil {
		return storage.Purged{Kind: "audit", Err: fmt.Errorf("purge audit events before %s: %w", before.UTC().Format(time.RFC3339), err)}
	}
	return storage.PurgeExpired(ctx, l.store, "audit", &old)
}
