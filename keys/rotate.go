package keys

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/signet-auth/signet/audit"
	"github.com/signet-auth/signet/storage"
)

// ErrPendingTooYoung is returned by a non-forced Rotate when the pending key
// has been published for less than the JWKS cache lifetime: activating it
// now could reach verifiers whose cached JWKS does not have it yet.
var ErrPendingTooYoung = errors.New("pending key published for less than the JWKS cache lifetime")

// errStale aborts a transaction whose input changed since the keys for it
// were generated; the caller generates again.
var errStale = errors.New("keys: key set changed during the operation")

// errAlreadyRotated aborts a rotation that another caller (a replica, cron
// and an operator) completed first.
var errAlreadyRotated = errors.New("keys: already rotated")

// keySet is the stored records of one transaction, indexed for the lifecycle
// operations below.
type keySet struct {
	recs map[string]record
	// next is the stored time of the next scheduled rotation (zero: none
	// stored yet), which every rotation moves on (Options.Schedule). A
	// pointer, so that the functions given a keySet by value can set it.
	next *time.Time
}

func readSet(tx storage.Tx) (keySet, error) {
	recs, next, err := loadRecords(tx)
	if err != nil {
		return keySet{}, err
	}
	ks := keySet{recs: make(map[string]record, len(recs)), next: &next}
	for _, r := range recs {
		ks.recs[r.KID] = r
	}
	return ks, nil
}

func (m *Manager) viewSet(ctx context.Context) (keySet, error) {
	var ks keySet
	err := m.opts.Store.View(ctx, func(tx storage.Tx) error {
		var err error
		ks, err = readSet(tx)
		return err
	})
	return ks, err
}

// find returns the key of alg in state, if any.
func (ks keySet) find(alg string, state State) (record, bool) {
	for _, r := range ks.recs {
		if r.Alg == alg && r.State == state {
			return r, true
		}
	}
	return record{}, false
}

func (ks keySet) activate(r record, now time.Time) {
	r.State = StateActive
	r.ActivatedAt = now
	ks.recs[r.KID] = r
}

func (ks keySet) addPending(r record) {
	r.State = StatePending
	ks.recs[r.KID] = r
}

// retire ends a key's signing life. Its private half is destroyed: a key that
// will never sign again has no reason to exist.
func (m *Manager) retire(ks keySet, r record, now time.Time) {
	r.State = StateRetired
	r.RetiredAt = now
	r.ExpiresAt = now.Add(m.opts.MaxTokenTTL + m.opts.PurgeLeeway)
	r.Private = nil
	ks.recs[r.KID] = r
}

// writeSet puts every record of ks whose stored bytes differ and reports
// whether anything changed.
func writeSet(tx storage.Tx, before, after keySet) (bool, error) {
	changed := false
	for kid, r := range after.recs {
		if old, ok := before.recs[kid]; ok && sameRecord(old, r) {
			continue
		}
		b, err := encodeRecord(r)
		if err != nil {
			return false, err
		}
		if err := tx.Put(Bucket, kid, b); err != nil {
			return false, fmt.Errorf("put key %s: %w", kid, err)
		}
		changed = true
	}
	for kid := range before.recs {
		if _, ok := after.recs[kid]; !ok {
			if err := tx.Delete(Bucket, kid); err != nil {
				return false, fmt.Errorf("delete key %s: %w", kid, err)
			}
			changed = true
		}
	}
	if !after.next.Equal(*before.next) {
		if err := tx.Put(Bucket, scheduleKey, encodeSchedule(*after.next)); err != nil {
			return false, fmt.Errorf("put the rotation schedule: %w", err)
		}
		changed = true
	}
	return changed, nil
}

// activeKIDs names the active keys as alg:kid, sorted, for audit details.
func (ks keySet) activeKIDs() string {
	var out []string
	for _, r := range ks.recs {
		if r.State == StateActive {
			out = append(out, r.Alg+":"+r.KID)
		}
	}
	slices.Sort(out)
	return strings.Join(out, ",")
}

func sameRecord(a, b record) bool {
	return a.Info == b.Info && string(a.Public) == string(b.Public) && string(a.Private) == string(b.Private) &&
		string(a.Handle) == string(b.Handle)
}

func (ks keySet) clone() keySet {
	next := *ks.next
	c := keySet{recs: make(map[string]record, len(ks.recs)), next: &next}
	for k, v := range ks.recs {
		c.recs[k] = v
	}
	return c
}

// update runs fn on a copy of the stored set inside one transaction, writes
// what fn changed and, when something changed, the audit event of action in
// the same transaction: a key change and its record commit together. The
// event is attributed to the actor in ctx (audit.WithActor); its detail is
// fn's detail and the active keys before and after, when they differ.
func (m *Manager) update(ctx context.Context, action, target string, fn func(ks keySet, now time.Time) (detail string, err error)) error {
	return m.opts.Store.Update(ctx, func(tx storage.Tx) error {
		before, err := readSet(tx)
		if err != nil {
			return err
		}
		after := before.clone()
		now := m.opts.Now().UTC()
		detail, err := fn(after, now)
		if err != nil {
			return err
		}
		changed, err := writeSet(tx, before, after)
		if err != nil || !changed {
			return err
		}
		if a, b := before.activeKIDs(), after.activeKIDs(); a != b {
			detail = strings.TrimSpace(detail + " active_before=" + a + " active_after=" + b)
		}
		return audit.Put(tx, audit.Attribute(ctx, audit.Event{Time: now, Action: action, Target: target, Outcome: audit.OutcomeOK, Detail: detail}))
	})
}

// record writes an audit event for a request that changed nothing (it had
// already happened), in its own transaction. A failure is logged: the
// outcome the caller reports does not depend on it.
func (m *Manager) record(ctx context.Context, action, target, detail string) {
	ev := audit.Attribute(ctx, audit.Event{Time: m.opts.Now().UTC(), Action: action, Target: target, Outcome: audit.OutcomeOK, Detail: detail})
	if err := m.opts.Store.Update(ctx, func(tx storage.Tx) error { return audit.Put(tx, ev) }); err != nil {
		m.log.LogAttrs(ctx, slog.LevelError, "audit", slog.String("action", action), slog.String("err", err.Error()))
	}
}

// kidList names keys for audit details.
func kidList(infos []Info) string {
	var out []string
	for _, i := range infos {
		out = append(out, i.Alg+":"+i.KID)
	}
	slices.Sort(out)
	return strings.Join(out, ",")
}

// generateN makes n keys of alg.
func (m *Manager) generateN(ctx context.Context, alg string, n int) ([]generated, error) {
	out := make([]generated, 0, n)
	for range n {
		g, err := generate(ctx, m.custodyFor(alg), alg, m.opts.RSABits, m.opts.Now())
		if err != nil {
			return nil, err
		}
		out = append(out, g)
	}
	return out, nil
}

// ensure gives every live algorithm one active and one pending key and
// retires the keys of algorithms no longer configured. On an empty store it
// makes the first key set; there, and only there, a key signs without having
// been published beforehand, because nothing could have cached a JWKS yet.
func (m *Manager) ensure(ctx context.Context) error {
	for attempt := 0; ; attempt++ {
		ks, err := m.viewSet(ctx)
		if err != nil {
			return fmt.Errorf("ensure keys: %w", err)
		}
		need := m.missing(ks)
		live := make(map[string]bool)
		for _, a := range m.opts.Algorithms {
			live[a] = true
		}
		stale := false
		for _, r := range ks.recs {
			if !live[r.Alg] && (r.State == StateActive || r.State == StatePending) {
				stale = true
			}
		}
		if len(need) == 0 && !stale {
			return nil
		}
		fresh := make(map[string][]generated)
		for alg, n := range need {
			if fresh[alg], err = m.generateN(ctx, alg, n); err != nil {
				return fmt.Errorf("ensure keys: %w", err)
			}
		}
		var made []Info
		err = m.update(ctx, "keys.ensure", "", func(ks keySet, now time.Time) (string, error) {
			made = made[:0]
			if !equalNeeds(m.missing(ks), need) {
				return "", errStale
			}
			var retired []Info
			for _, r := range ks.recs {
				if !live[r.Alg] && (r.State == StateActive || r.State == StatePending) {
					m.retire(ks, r, now)
					retired = append(retired, r.Info)
				}
			}
			for alg, gens := range fresh {
				for _, g := range gens {
					r := g.rec
					r.CreatedAt = now
					if _, ok := ks.find(alg, StateActive); !ok {
						ks.activate(r, now)
					} else {
						ks.addPending(r)
					}
					made = append(made, ks.recs[r.KID].Info)
				}
			}
			detail := "created=" + kidList(made)
			if len(retired) > 0 {
				detail += " retired_unconfigured=" + kidList(retired)
			}
			return detail, nil
		})
		m.discardUnused(ctx, err, flatten(fresh))
		if errors.Is(err, errStale) && attempt < 3 {
			continue
		}
		if err != nil {
			return fmt.Errorf("ensure keys: %w", err)
		}
		for _, info := range made {
			m.log.LogAttrs(ctx, slog.LevelInfo, "key created", slog.Any("key", info))
		}
		return m.reload(ctx)
	}
}

// missing counts, per live algorithm, how many keys it lacks (active, pending).
func (m *Manager) missing(ks keySet) map[string]int {
	need := make(map[string]int)
	for _, alg := range m.opts.Algorithms {
		n := 0
		if _, ok := ks.find(alg, StateActive); !ok {
			n++
		}
		if _, ok := ks.find(alg, StatePending); !ok {
			n++
		}
		if n > 0 {
			need[alg] = n
		}
	}
	return need
}

func equalNeeds(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// Rotate moves every live algorithm one step in one transaction: its pending
// key becomes active, its active key retires, and a new pending key is made.
//
// Rotations that race (two replicas, cron and an operator) produce exactly
// one new active key: the transaction checks that the active keys are still
// the ones read before generating, and a caller that finds them changed
// returns nil, because the rotation it asked for has happened.
//
// Unless force is set, Rotate refuses with ErrPendingTooYoung when a pending
// key has been published for less than Options.MinPublishAge.
func (m *Manager) Rotate(ctx context.Context, force bool) error {
	return m.rotate(ctx, force, ReasonManual)
}

// RotateScheduled is Rotate(ctx, false) run by the rotation schedule; it is
// counted under ReasonSchedule instead of ReasonManual.
func (m *Manager) RotateScheduled(ctx context.Context) error {
	return m.rotate(ctx, false, ReasonSchedule)
}

func (m *Manager) rotate(ctx context.Context, force bool, reason Reason) error {
	ks, err := m.viewSet(ctx)
	if err != nil {
		return fmt.Errorf("rotate: %w", err)
	}
	expected := make(map[string]string) // alg → active kid read now
	fresh := make(map[string][]generated)
	for _, alg := range m.opts.Algorithms {
		if a, ok := ks.find(alg, StateActive); ok {
			expected[alg] = a.KID
		}
		n := 1
		if _, ok := ks.find(alg, StatePending); !ok {
			n = 2 // the new key activates at once and another waits
		}
		if fresh[alg], err = m.generateN(ctx, alg, n); err != nil {
			return fmt.Errorf("rotate: %w", err)
		}
	}
	var activated []Info
	err = m.update(ctx, "keys.rotate", "", func(ks keySet, now time.Time) (string, error) {
		activated = activated[:0]
		// A scheduled rotation happens once per due time: one whose stored
		// time has not come was done already (by another leader, or by an
		// earlier attempt of this one whose answer the store lost), and a
		// retry must not rotate again.
		if reason == ReasonSchedule && now.Before(*ks.next) {
			return "", errAlreadyRotated
		}
		for _, alg := range m.opts.Algorithms {
			a, ok := ks.find(alg, StateActive)
			if !ok || a.KID != expected[alg] {
				return "", errAlreadyRotated
			}
			if p, ok := ks.find(alg, StatePending); ok && !force && p.CreatedAt.Add(m.opts.MinPublishAge).After(now) {
				return "", fmt.Errorf("%w: %s key %s published %s ago, needs %s",
					ErrPendingTooYoung, alg, p.KID, now.Sub(p.CreatedAt).Round(time.Second), m.opts.MinPublishAge)
			}
		}
		for _, alg := range m.opts.Algorithms {
			gens := fresh[alg]
			a, _ := ks.find(alg, StateActive)
			p, ok := ks.find(alg, StatePending)
			if !ok {
				p, gens = gens[0].rec, gens[1:]
				p.CreatedAt = now
			}
			m.retire(ks, a, now)
			ks.activate(p, now)
			n := gens[0].rec
			n.CreatedAt = now
			ks.addPending(n)
			activated = append(activated, ks.recs[p.KID].Info)
		}
		if m.opts.Schedule != nil {
			*ks.next = m.opts.Schedule(now)
			return fmt.Sprintf("force=%t next_rotation=%s", force, ks.next.UTC().Format(time.RFC3339)), nil
		}
		return fmt.Sprintf("force=%t", force), nil
	})
	m.discardUnused(ctx, err, flatten(fresh))
	if errors.Is(err, errAlreadyRotated) {
		m.log.LogAttrs(ctx, slog.LevelInfo, "rotation skipped: another caller rotated first")
		m.record(ctx, "keys.rotate", "", fmt.Sprintf("force=%t skipped: another caller rotated first", force))
		return m.reload(ctx)
	}
	if err != nil {
		return fmt.Errorf("rotate: %w", err)
	}
	m.rotations.Add(1)
	for _, info := range activated {
		m.countRotation(info.Alg, reason)
		m.log.LogAttrs(ctx, slog.LevelInfo, "key rotated", slog.Any("active", info), slog.String("reason", string(reason)))
	}
	return m.reload(ctx)
}

// Revoke takes a compromised key out of the JWKS at once and destroys its
// private half. If it was active, the pending key of its algorithm is
// promoted (an emergency rotation) and a new pending key is made; if it was
// pending, a new pending key replaces it. Revoking a revoked key is a no-op;
// an unknown kid is an error wrapping storage.ErrNotFound.
func (m *Manager) Revoke(ctx context.Context, kid string) error {
	ks, err := m.viewSet(ctx)
	if err != nil {
		return fmt.Errorf("revoke %s: %w", kid, err)
	}
	r, ok := ks.recs[kid]
	if !ok {
		return fmt.Errorf("revoke %s: %w", kid, storage.ErrNotFound)
	}
	if r.State == StateRevoked {
		m.record(ctx, "keys.revoke", kid, "already revoked")
		return nil
	}
	var fresh []generated
	if r.State == StateActive || r.State == StatePending {
		if fresh, err = m.generateN(ctx, r.Alg, 1); err != nil {
			return fmt.Errorf("revoke %s: %w", kid, err)
		}
	}
	var promoted Info
	err = m.update(ctx, "keys.revoke", kid, func(ks keySet, now time.Time) (string, error) {
		promoted = Info{}
		cur, ok := ks.recs[kid]
		if !ok {
			return "", fmt.Errorf("revoke %s: %w", kid, storage.ErrNotFound)
		}
		if cur.State != r.State {
			return "", errStale
		}
		switch cur.State {
		case StateActive:
			n := fresh[0].rec
			n.CreatedAt = now
			if p, ok := ks.find(cur.Alg, StatePending); ok {
				ks.activate(p, now)
				ks.addPending(n)
				promoted = ks.recs[p.KID].Info
			} else {
				ks.activate(n, now)
				promoted = ks.recs[n.KID].Info
			}
		case StatePending:
			n := fresh[0].rec
			n.CreatedAt = now
			ks.addPending(n)
		}
		cur.State = StateRevoked
		cur.RevokedAt = now
		cur.ExpiresAt = now.Add(m.opts.MaxTokenTTL + m.opts.PurgeLeeway)
		cur.Private = nil
		ks.recs[kid] = cur
		return fmt.Sprintf("alg=%s was=%s", cur.Alg, r.State), nil
	})
	m.discardUnused(ctx, err, fresh)
	if errors.Is(err, errStale) {
		return m.Revoke(ctx, kid) // its state moved (a rotation): decide again
	}
	if err != nil {
		return fmt.Errorf("revoke %s: %w", kid, err)
	}
	m.log.LogAttrs(ctx, slog.LevelWarn, "key revoked", slog.String("kid", kid), slog.String("alg", r.Alg),
		slog.String("was", string(r.State)))
	if promoted.KID != "" {
		m.countRotation(promoted.Alg, ReasonRevoke)
		m.log.LogAttrs(ctx, slog.LevelWarn, "emergency rotation", slog.Any("active", promoted))
	}
	if err := m.reload(ctx); err != nil {
		return err
	}
	return m.ensure(ctx)
}

// Purge deletes retired and revoked keys whose ExpiresAt has passed: every
// token they could have signed has expired. It returns how many it deleted.
func (m *Manager) Purge(ctx context.Context) (int, error) {
	var purged []Info
	var purgedRecs []record
	err := m.update(ctx, "keys.purge", "", func(ks keySet, now time.Time) (string, error) {
		purged, purgedRecs = purged[:0], purgedRecs[:0]
		for kid, r := range ks.recs {
			if (r.State == StateRetired || r.State == StateRevoked) && !r.ExpiresAt.After(now) {
				delete(ks.recs, kid)
				purged = append(purged, r.Info)
				purgedRecs = append(purgedRecs, r)
			}
		}
		return "purged=" + kidList(purged), nil
	})
	if err != nil {
		return 0, fmt.Errorf("purge keys: %w", err)
	}
	if len(purged) == 0 {
		return 0, nil
	}
	for _, info := range purged {
		m.log.LogAttrs(ctx, slog.LevelInfo, "key purged", slog.Any("key", info))
	}
	m.destroyPurged(ctx, purgedRecs)
	return len(purged), m.reload(ctx)
}

// destroyPurged destroys the private halves that external custodies still
// hold for keys whose records a purge deleted. It runs after the commit, so
// no record ever names a destroyed object; a crash before it leaves an
// orphan that Orphans reports and DestroyOrphans removes.
func (m *Manager) destroyPurged(ctx context.Context, recs []record) {
	for _, r := range recs {
		if len(r.Handle) == 0 {
			continue
		}
		c, err := m.custodyOf(r)
		if err == nil {
			err = c.Destroy(ctx, r.KID, r.Handle)
		}
		if err != nil {
			m.log.LogAttrs(ctx, slog.LevelError, "destroy purged key (left as an orphan: signet keys orphans)",
				slog.String("kid", r.KID), slog.String("custody", r.Custody), slog.String("err", err.Error()))
			continue
		}
		m.log.LogAttrs(ctx, slog.LevelInfo, "key destroyed in custody", slog.String("kid", r.KID), slog.String("custody", r.Custody))
	}
}

// discardUnused destroys keys generated for a transaction that certainly
// did not commit them: one its own function refused (another caller rotated
// first, the set changed, the pending key is too young). A storage error
// proves nothing (a commit may have happened before a timeout), so those
// keys are left alone: orphans at worst, which Orphans reports and
// DestroyOrphans removes after checking the store. In-store keys need
// nothing: they were never anywhere else.
func (m *Manager) discardUnused(ctx context.Context, err error, gens []generated) {
	if !errors.Is(err, errAlreadyRotated) && !errors.Is(err, errStale) && !errors.Is(err, ErrPendingTooYoung) {
		return
	}
	for _, g := range gens {
		if len(g.rec.Handle) == 0 {
			continue
		}
		c, cerr := m.custodyOf(g.rec)
		if cerr == nil {
			cerr = c.Destroy(ctx, g.rec.KID, g.rec.Handle)
		}
		if cerr != nil {
			m.log.LogAttrs(ctx, slog.LevelWarn, "destroy an unused generated key (left as an orphan)",
				slog.String("kid", g.rec.KID), slog.String("err", cerr.Error()))
		}
	}
}

func flatten(byAlg map[string][]generated) []generated {
	var out []generated
	for _, gs := range byAlg {
		out = append(out, gs...)
	}
	return out
}
