package authority

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/signet-auth/signet/storage"
)

// auditBucket holds one JSON AuditEvent per admin action. Keys are the
// event time in zero-padded Unix nanoseconds plus a sequence number among
// events of the same instant, so a scan returns events in the order they
// were recorded.
const auditBucket = "audit"

// AuditEvent is one admin action: who did what to which target, when, and
// how it ended.
type AuditEvent struct {
	Time      time.Time `json:"time"`
	Actor     string    `json:"actor"`            // client id of the admin token, or "cli" offline
	Action    string    `json:"action"`           // e.g. keys.rotate, clients.create
	Target    string    `json:"target,omitempty"` // kid or client id
	Outcome   string    `json:"outcome"`          // ok, error, denied
	Detail    string    `json:"detail,omitempty"`
	RequestID string    `json:"request_id,omitempty"`
}

// AuditLog appends to and reads the audit trail in storage.
type AuditLog struct {
	store storage.Store
	now   func() time.Time
}

// NewAuditLog returns the audit log kept in store; nil now means time.Now.
func NewAuditLog(store storage.Store, now func() time.Time) *AuditLog {
	if now == nil {
		now = time.Now
	}
	return &AuditLog{store: store, now: now}
}

// Record stores ev, stamping its time when zero.
func (a *AuditLog) Record(ctx context.Context, ev AuditEvent) error {
	if ev.Time.IsZero() {
		ev.Time = a.now()
	}
	ev.Time = ev.Time.UTC()
	val, err := json.Marshal(ev)
	if err != nil {
		return fmt.Errorf("encode audit event: %w", err)
	}
	prefix := fmt.Sprintf("%020d-", ev.Time.UnixNano())
	err = a.store.Update(ctx, func(tx storage.Tx) error {
		n := 0
		if err := tx.Scan(auditBucket, prefix, func(string, []byte) error { n++; return nil }); err != nil {
			return err
		}
		return tx.Put(auditBucket, fmt.Sprintf("%s%06d", prefix, n), val)
	})
	if err != nil {
		return fmt.Errorf("record audit event %s: %w", ev.Action, err)
	}
	return nil
}

// List returns the newest limit events, newest first.
func (a *AuditLog) List(ctx context.Context, limit int) ([]AuditEvent, error) {
	if limit <= 0 {
		return nil, nil
	}
	// The store scans forward only: keep a ring of the last limit values.
	ring := make([][]byte, 0, min(limit, 1024))
	next := 0
	err := a.store.View(ctx, func(tx storage.Tx) error {
		return tx.Scan(auditBucket, "", func(_ string, v []byte) error {
			if len(ring) < limit {
				ring = append(ring, v)
				return nil
			}
			ring[next] = v
			next = (next + 1) % limit
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list audit events: %w", err)
	}
	out := make([]AuditEvent, 0, len(ring))
	for i := len(ring) - 1; i >= 0; i-- {
		v := ring[(next+i)%len(ring)]
		var ev AuditEvent
		if err := json.Unmarshal(v, &ev); err != nil {
			return nil, fmt.Errorf("decode audit event: %w", err)
		}
		out = append(out, ev)
	}
	return out, nil
}
