// Package schema records the version of the store's layout and upgrades an
// older store in one transaction. A store without a version record was
// written before versions were recorded: it is version 1.
package schema

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/signet-auth/signet/audit"
	"github.com/signet-auth/signet/storage"
)

// Bucket holds the store's metadata; VersionKey its schema version (decimal).
const (
	Bucket     = "meta"
	VersionKey = "schema_version"
)

// Migration upgrades a store from version To-1 to To. Apply runs inside the
// migration's transaction, possibly more than once (storage.Store contract),
// and must not touch anything outside it.
type Migration struct {
	To    int
	Name  string
	Apply func(tx storage.Tx) error
}

// Plan is the schema a binary supports: its version and the migrations that
// lead to it from version 1.
type Plan struct {
	Current    int
	Migrations []Migration
}

// Default is this binary's plan. Version 1 is the layout of Signet before
// schema versions were recorded; add a Migration here with every change to
// a stored record that older code could not read.
func Default() Plan { return Plan{Current: 1} }

// TooNewError is a store written by a newer binary.
type TooNewError struct{ Store, Binary int }

func (e *TooNewError) Error() string {
	return fmt.Sprintf("the store was written by Signet schema v%d, this binary supports v%d: upgrade the binary (never downgrade a store)", e.Store, e.Binary)
}

// State is what a store records.
type State struct {
	Version  int
	Recorded bool // false: no version record (a store from before versions, or a new one)
	Empty    bool // no data at all
}

// Read returns the store's schema state.
func Read(ctx context.Context, st storage.Store) (State, error) {
	var s State
	err := st.View(ctx, func(tx storage.Tx) error {
		var err error
		s, err = read(tx)
		return err
	})
	if err != nil {
		return State{}, fmt.Errorf("read schema version: %w", err)
	}
	return s, nil
}

func read(tx storage.Tx) (State, error) {
	v, err := tx.Get(Bucket, VersionKey)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		buckets, err := storage.Buckets(tx)
		if errors.Is(err, storage.ErrNoBucketList) {
			return State{Version: 1}, nil // cannot tell: assume data
		}
		if err != nil {
			return State{}, err
		}
		return State{Version: 1, Empty: len(buckets) == 0}, nil
	case err != nil:
		return State{}, err
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(v)))
	if err != nil || n < 1 {
		return State{}, fmt.Errorf("schema version record %q is not a version", v)
	}
	return State{Version: n, Recorded: true}, nil
}

// Check refuses a store newer than p and reports whether it needs Migrate.
func (p Plan) Check(s State) (needsMigration bool, err error) {
	if s.Version > p.Current {
		return false, &TooNewError{Store: s.Version, Binary: p.Current}
	}
	return s.Version < p.Current && !s.Empty, nil
}

// Result says what Migrate did.
type Result struct {
	From, To int
	Applied  []string
}

// Migrate brings st to p.Current. A new, empty store is stamped with
// p.Current; an older one is migrated in one transaction, after before(from)
// returned nil (the caller's backup); a newer one is refused (*TooNewError).
// The migration writes an audit event (store.migrate) in its transaction.
func (p Plan) Migrate(ctx context.Context, st storage.Store, now time.Time, before func(from int) error) (Result, error) {
	s, err := Read(ctx, st)
	if err != nil {
		return Result{}, err
	}
	needs, err := p.Check(s)
	if err != nil {
		return Result{}, err
	}
	res := Result{From: s.Version, To: p.Current}
	if !needs {
		if s.Recorded && s.Version == p.Current {
			return res, nil
		}
		// A new store, or a version-1 store from before records: stamp it.
		return res, p.stamp(ctx, st)
	}
	var steps []Migration
	for v := s.Version + 1; v <= p.Current; v++ {
		m, ok := p.find(v)
		if !ok {
			return Result{}, fmt.Errorf("schema: no migration to v%d: this binary cannot upgrade a v%d store", v, s.Version)
		}
		steps = append(steps, m)
	}
	if before != nil {
		if err := before(s.Version); err != nil {
			return Result{}, fmt.Errorf("before migrating from v%d: %w", s.Version, err)
		}
	}
	for _, m := range steps {
		res.Applied = append(res.Applied, fmt.Sprintf("v%d:%s", m.To, m.Name))
	}
	err = st.Update(ctx, func(tx storage.Tx) error {
		cur, err := read(tx)
		if err != nil {
			return err
		}
		if cur.Version != s.Version {
			return fmt.Errorf("schema version changed to v%d during the migration", cur.Version)
		}
		for _, m := range steps {
			if err := m.Apply(tx); err != nil {
				return fmt.Errorf("migration to v%d (%s): %w", m.To, m.Name, err)
			}
		}
		if err := tx.Put(Bucket, VersionKey, []byte(strconv.Itoa(p.Current))); err != nil {
			return err
		}
		return audit.Put(tx, audit.Attribute(ctx, audit.Event{Time: now, Action: "store.migrate", Outcome: audit.OutcomeOK,
			Detail: fmt.Sprintf("from=v%d to=v%d migrations=%s", s.Version, p.Current, strings.Join(res.Applied, ","))}))
	})
	if err != nil {
		return Result{}, fmt.Errorf("migrate store from v%d to v%d (nothing was changed): %w", s.Version, p.Current, err)
	}
	return res, nil
}

func (p Plan) stamp(ctx context.Context, st storage.Store) error {
	err := st.Update(ctx, func(tx storage.Tx) error {
		cur, err := read(tx)
		if err != nil {
			return err
		}
		if cur.Recorded {
			return nil
		}
		return tx.Put(Bucket, VersionKey, []byte(strconv.Itoa(p.Current)))
	})
	if err != nil {
		return fmt.Errorf("record schema version: %w", err)
	}
	return nil
}

func (p Plan) find(to int) (Migration, bool) {
	for _, m := range p.Migrations {
		if m.To == to {
			return m, true
		}
	}
	return Migration{}, false
}
