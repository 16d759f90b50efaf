package audit_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/signet-auth/signet/audit"
	"github.com/signet-auth/signet/storage"
	"github.com/signet-auth/signet/storage/bolt"
)

func openStore(t *testing.T) storage.Store {
	t.Helper()
	st, err := bolt.Open(filepath.Join(t.TempDir(), "signet.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

var t0 = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

// record writes n events one second apart from t0, alternating two actions;
// every third shares the previous one's instant, to exercise the sequence.
func record(t *testing.T, l *audit.Log, n int) {
	t.Helper()
	for i := range n {
		at := t0.Add(time.Duration(i) * time.Second)
		if i%3 == 2 {
			at = at.Add(-time.Second)
		}
		action := "keys.rotate"
		if i%2 == 1 {
			action = "clients.create"
		}
		if err := l.Record(t.Context(), audit.Event{Time: at, Actor: "cron", Action: action, Target: fmt.Sprint(i), Outcome: audit.OutcomeOK}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestQuery_Paging: pages of 7 over 50 events, following next_cursor, return
// every event exactly once, newest first, and the last page has no cursor.
func TestQuery_Paging(t *testing.T) {
	l := audit.New(openStore(t), nil)
	record(t, l, 50)
	var got []string
	q := audit.Query{Limit: 7}
	pages := 0
	for {
		p, err := l.Query(t.Context(), q)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		if len(p.Events) > 7 {
			t.Fatalf("page %d has %d events", pages, len(p.Events))
		}
		for _, ev := range p.Events {
			got = append(got, ev.Target)
		}
		if p.NextCursor == "" {
			break
		}
		if pages > 10 {
			t.Fatal("paging does not end")
		}
		q.Cursor = p.NextCursor
	}
	if pages != 8 || len(got) != 50 {
		t.Fatalf("%d pages, %d events; want 8 pages, 50 events", pages, len(got))
	}
	all, err := l.Query(t.Context(), audit.Query{})
	if err != nil {
		t.Fatal(err)
	}
	for i, ev := range all.Events {
		if got[i] != ev.Target {
			t.Fatalf("event %d: paged %s, unpaged %s", i, got[i], ev.Target)
		}
		if i > 0 && ev.Time.After(all.Events[i-1].Time) {
			t.Fatalf("event %d is newer than the one before it", i)
		}
	}
	// Events sharing an instant keep their order (the key sequence number).
	if all.Events[len(all.Events)-1].Target != "0" {
		t.Errorf("oldest event = %s, want 0", all.Events[len(all.Events)-1].Target)
	}
}

func TestQuery_Filters(t *testing.T) {
	l := audit.New(openStore(t), nil)
	record(t, l, 20)
	p, err := l.Query(t.Context(), audit.Query{Since: t0.Add(5 * time.Second), Until: t0.Add(10 * time.Second), Action: "keys.*", Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range p.Events {
		if ev.Action != "keys.rotate" || ev.Time.Before(t0.Add(5*time.Second)) || !ev.Time.Before(t0.Add(10*time.Second)) {
			t.Errorf("event outside the query: %+v", ev)
		}
	}
	if len(p.Events) == 0 || p.NextCursor != "" {
		t.Errorf("got %d events, cursor %q", len(p.Events), p.NextCursor)
	}
	p, _ = l.Query(t.Context(), audit.Query{Action: "clients.create"})
	if len(p.Events) != 10 {
		t.Errorf("clients.create: %d events, want 10", len(p.Events))
	}
	if _, err := l.Query(t.Context(), audit.Query{Cursor: "../x"}); !errors.Is(err, audit.ErrBadCursor) {
		t.Errorf("bad cursor: %v", err)
	}
}

// TestPurge deletes exactly the events older than the cutoff, across more
// than one purge transaction.
func TestPurge(t *testing.T) {
	st := openStore(t)
	l := audit.New(st, nil)
	err := st.Update(t.Context(), func(tx storage.Tx) error {
		for i := range 2500 {
			if err := audit.Put(tx, audit.Event{Time: t0.Add(time.Duration(i) * time.Millisecond), Action: "x", Outcome: "ok"}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	r := l.Purge(t.Context(), t0.Add(2100*time.Millisecond))
	if r.Err != nil || r.Deleted != 2100 || !r.Oldest.Equal(t0) {
		t.Fatalf("purge = %d, oldest %v, %v; want 2100, %v", r.Deleted, r.Oldest, r.Err, t0)
	}
	p, _ := l.Query(t.Context(), audit.Query{})
	if len(p.Events) != 400 || p.Events[len(p.Events)-1].Time.Before(t0.Add(2100*time.Millisecond)) {
		t.Errorf("after purge: %d events, oldest %v", len(p.Events), p.Events[len(p.Events)-1].Time)
	}
}

// TestOldRecords: records written by the authority package before the audit
// package existed decode unchanged.
func TestOldRecords(t *testing.T) {
	st := openStore(t)
	old := `{"time":"2026-01-02T03:04:05Z","actor":"admin","action":"keys.rotate","outcome":"ok","detail":"force=true","request_id":"r1"}`
	err := st.Update(context.Background(), func(tx storage.Tx) error {
		return tx.Put(audit.Bucket, fmt.Sprintf("%020d-%06d", time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).UnixNano(), 0), []byte(old))
	})
	if err != nil {
		t.Fatal(err)
	}
	evs, err := audit.New(st, nil).List(t.Context(), 10)
	if err != nil || len(evs) != 1 || evs[0].Actor != "admin" || evs[0].RequestID != "r1" || evs[0].Detail != "force=true" {
		t.Fatalf("old record = %+v, %v", evs, err)
	}
}

func TestAttribute(t *testing.T) {
	ctx := audit.WithActor(t.Context(), audit.Actor{Replica: "node-1"})
	ctx = audit.WithActor(ctx, audit.Actor{Name: "admin", RequestID: "r9"})
	ev := audit.Attribute(ctx, audit.Event{Action: "keys.rotate"})
	if ev.Actor != "admin" || ev.Replica != "node-1" || ev.RequestID != "r9" {
		t.Errorf("attributed = %+v", ev)
	}
	if ev := audit.Attribute(t.Context(), audit.Event{}); ev.Actor != audit.ActorSystem {
		t.Errorf("no actor in context: %q", ev.Actor)
	}
}
