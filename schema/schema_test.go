package schema_test

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/signet-auth/signet/audit"
	"github.com/signet-auth/signet/schema"
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

func put(t *testing.T, st storage.Store, b, k, v string) {
	t.Helper()
	if err := st.Update(t.Context(), func(tx storage.Tx) error { return tx.Put(b, k, []byte(v)) }); err != nil {
		t.Fatal(err)
	}
}

func get(t *testing.T, st storage.Store, b, k string) string {
	t.Helper()
	var v []byte
	err := st.View(t.Context(), func(tx storage.Tx) error {
		var err error
		v, err = tx.Get(b, k)
		return err
	})
	if errors.Is(err, storage.ErrNotFound) {
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(v)
}

// v2 is a test schema change: v2 stores every value of "things" in upper case.
func v2(fail bool) schema.Plan {
	return schema.Plan{Current: 2, Migrations: []schema.Migration{{To: 2, Name: "upper-things", Apply: func(tx storage.Tx) error {
		var ks, vs []string
		if err := tx.Scan("things", "", func(k string, v []byte) error { ks, vs = append(ks, k), append(vs, string(v)); return nil }); err != nil {
			return err
		}
		for i, k := range ks {
			if err := tx.Put("things", k, []byte(strings.ToUpper(vs[i]))); err != nil {
				return err
			}
		}
		if fail {
			return errors.New("deliberate")
		}
		return nil
	}}}}
}

var now = time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)

func TestMigrate_FromUnversioned(t *testing.T) {
	st := openStore(t)
	put(t, st, "things", "a", "x") // data, no version record: v1
	var backedUp []int
	res, err := v2(false).Migrate(t.Context(), st, now, func(from int) error { backedUp = append(backedUp, from); return nil })
	if err != nil {
		t.Fatal(err)
	}
	if res.From != 1 || res.To != 2 || len(backedUp) != 1 || backedUp[0] != 1 {
		t.Errorf("result %+v, backups %v", res, backedUp)
	}
	if get(t, st, "things", "a") != "X" || get(t, st, schema.Bucket, schema.VersionKey) != "2" {
		t.Error("migration not applied or version not recorded")
	}
	evs, _ := audit.New(st, nil).List(t.Context(), 10)
	if len(evs) != 1 || evs[0].Action != "store.migrate" || !strings.Contains(evs[0].Detail, "from=v1 to=v2") {
		t.Errorf("audit = %+v", evs)
	}
	// Again: nothing to do, no second backup.
	if _, err := v2(false).Migrate(t.Context(), st, now, func(int) error { t.Error("backup taken twice"); return nil }); err != nil {
		t.Fatal(err)
	}
	// The old binary refuses it.
	_, err = schema.Default().Migrate(t.Context(), st, now, nil)
	var tn *schema.TooNewError
	if !errors.As(err, &tn) || !strings.Contains(err.Error(), "written by Signet schema v2, this binary supports v1: upgrade the binary") {
		t.Errorf("old binary on a v2 store: %v", err)
	}
}

func TestMigrate_FailureChangesNothing(t *testing.T) {
	st := openStore(t)
	put(t, st, "things", "a", "x")
	if _, err := v2(true).Migrate(t.Context(), st, now, nil); err == nil {
		t.Fatal("failing migration succeeded")
	}
	if get(t, st, "things", "a") != "x" || get(t, st, schema.Bucket, schema.VersionKey) != "" {
		t.Error("a failed migration left changes")
	}
	// A failed backup stops the migration before it starts.
	if _, err := v2(false).Migrate(t.Context(), st, now, func(int) error { return errors.New("disk full") }); err == nil || get(t, st, "things", "a") != "x" {
		t.Errorf("migration without its backup: %v", err)
	}
}

func TestMigrate_NewStore(t *testing.T) {
	st := openStore(t)
	if _, err := v2(false).Migrate(t.Context(), st, now, func(int) error { t.Error("backup of an empty store"); return nil }); err != nil {
		t.Fatal(err)
	}
	if get(t, st, schema.Bucket, schema.VersionKey) != "2" {
		t.Error("a new store is not stamped with the current version")
	}
}
