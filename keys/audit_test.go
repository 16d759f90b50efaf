package keys_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/signet-auth/signet/audit"
	"github.com/signet-auth/signet/keys"
	"github.com/signet-auth/signet/storage"
)

// noAuditStore refuses writes to the audit bucket.
type noAuditStore struct{ storage.Store }

type noAuditTx struct{ storage.Tx }

var errAuditFull = errors.New("injected: audit write failed")

func (t noAuditTx) Put(bucket, key string, v []byte) error {
	if bucket == audit.Bucket {
		return errAuditFull
	}
	return t.Tx.Put(bucket, key, v)
}

func (s noAuditStore) Update(ctx context.Context, fn func(storage.Tx) error) error {
	return s.Store.Update(ctx, func(tx storage.Tx) error { return fn(noAuditTx{tx}) })
}

// TestManager_AuditInTransaction: every key change writes its audit event in
// its own transaction, attributed to the actor in the context, at the
// manager's clock; a change whose event cannot be written does not happen.
func TestManager_AuditInTransaction(t *testing.T) {
	st, _ := openStore(t)
	now := time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)
	m := openManager(t, st, keys.Options{Algorithms: []string{"ES256"}, Now: func() time.Time { return now }, MaxTokenTTL: time.Minute, PurgeLeeway: time.Minute})
	old, _ := m.SigningKey("ES256")
	ctx := audit.WithActor(t.Context(), audit.Actor{Name: "ops-admin", RequestID: "req-1"})
	if err := m.Rotate(ctx, true); err != nil {
		t.Fatal(err)
	}
	cur, _ := m.SigningKey("ES256")
	if err := m.Revoke(audit.WithActor(t.Context(), audit.Actor{Name: audit.ActorCLI, OSUser: "alice"}), old.KeyID()); err != nil {
		t.Fatal(err)
	}
	now = now.Add(time.Hour)
	if n, err := m.Purge(audit.WithActor(t.Context(), audit.Actor{Name: audit.ActorCron, Replica: "r1"})); err != nil || n != 1 {
		t.Fatalf("purge = %d, %v", n, err)
	}
	evs, err := audit.New(st, nil).List(t.Context(), 10)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, ev := range evs {
		got = append(got, ev.Action+" "+ev.Actor)
	}
	if want := "keys.purge cron,keys.revoke cli,keys.rotate ops-admin,keys.ensure system"; strings.Join(got, ",") != want {
		t.Fatalf("events = %s, want %s", strings.Join(got, ","), want)
	}
	rot := evs[2]
	if rot.RequestID != "req-1" || !rot.Time.Equal(time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)) ||
		rot.Detail != "force=true active_before=ES256:"+old.KeyID()+" active_after=ES256:"+cur.KeyID() {
		t.Errorf("rotation event = %+v", rot)
	}
	if rev := evs[1]; rev.OSUser != "alice" || rev.Target != old.KeyID() || rev.Detail != "alg=ES256 was=retired" {
		t.Errorf("revocation event = %+v", rev)
	}
	if p := evs[0]; p.Replica != "r1" || !strings.Contains(p.Detail, old.KeyID()) {
		t.Errorf("purge event = %+v", p)
	}

	// Without its audit event, a change does not commit.
	m2 := openManager(t, noAuditStore{st}, keys.Options{Algorithms: []string{"ES256"}})
	before, _ := keys.List(t.Context(), st)
	if err := m2.Rotate(t.Context(), true); !errors.Is(err, errAuditFull) {
		t.Fatalf("rotate with a failing audit write = %v", err)
	}
	after, _ := keys.List(t.Context(), st)
	if len(after) != len(before) || after[0] != before[0] {
		t.Error("the rotation committed without its audit event")
	}
}
