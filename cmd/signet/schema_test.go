package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/signet-auth/signet/backup"
	"github.com/signet-auth/signet/internal/signettest"
	"github.com/signet-auth/signet/keksource"
	"github.com/signet-auth/signet/schema"
	"github.com/signet-auth/signet/storage"
	"github.com/signet-auth/signet/storeopen"
)

// TestSchema_UpgradeAndRefusal: a store made by today's code, without a
// version record (v1), is opened by a binary with a simulated schema change
// (v2, one registered migration): serve writes a backup beside the database,
// migrates, and serves. The v1 binary then refuses the store, serve and
// offline commands alike, naming both versions.
func TestSchema_UpgradeAndRefusal(t *testing.T) {
	t.Setenv("SIGNET_KEYS_ALGORITHMS", "ES256,EdDSA")
	c := testConfig(t, nil)
	m, _ := startMain(t, c, nil)
	before := m.Keys.Current()
	m.Close()
	// Today's code before schema versions: no record.
	st, err := storeopen.OpenBoltFile(c.BoltPath(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Update(t.Context(), func(tx storage.Tx) error { return tx.Delete(schema.Bucket, schema.VersionKey) }); err != nil {
		t.Fatal(err)
	}
	st.Close()

	migrated := false
	plan := schema.Plan{Current: 2, Migrations: []schema.Migration{{To: 2, Name: "test-marker", Apply: func(tx storage.Tx) error {
		migrated = true
		return tx.Put(schema.Bucket, "test_marker", []byte("v2"))
	}}}}
	logs := &signettest.LogBuffer{}
	m2 := &Main{Config: c, LogOutput: logs, Getenv: func(string) string { return "" }, Schema: plan}
	if err := m2.Open(t.Context()); err != nil {
		m2.Close()
		t.Fatalf("open with a v2 binary: %v\n%s", err, logs)
	}
	if !migrated {
		t.Error("migration not run")
	}
	if after := m2.Keys.Current(); len(after) != len(before) || after[0] != before[0] {
		t.Errorf("keys after migration = %v, want %v", after, before)
	}
	if !strings.Contains(logs.String(), "store schema upgraded") {
		t.Errorf("no upgrade log line:\n%s", logs)
	}
	m2.Close()
	backups, _ := filepath.Glob(filepath.Join(c.DataDir, "signet.db.schema-v1.*.signet-backup"))
	if len(backups) != 1 {
		t.Fatalf("backups beside the data = %v, want one", backups)
	}
	kekText, _ := os.ReadFile(c.KEKPath())
	kek, _ := keksource.Decode(string(kekText))
	h, err := backup.Verify(t.Context(), backups[0], t.TempDir(), kek)
	if err != nil || h.SchemaVersion != 1 {
		t.Errorf("pre-migration backup: %+v, %v", h, err)
	}

	// The v1 binary refuses the v2 store.
	m3 := &Main{Config: c, LogOutput: &signettest.LogBuffer{}, Getenv: func(string) string { return "" }}
	err = m3.Open(t.Context())
	m3.Close()
	var tn *schema.TooNewError
	if !errors.As(err, &tn) || !strings.Contains(err.Error(), "written by Signet schema v2, this binary supports v1: upgrade the binary") {
		t.Errorf("v1 serve on a v2 store: %v", err)
	}
	if _, stderr, code := runCmd(t, "keys", "list", "--data-dir", c.DataDir); code == 0 || !strings.Contains(stderr, "upgrade the binary") {
		t.Errorf("v1 keys list on a v2 store: code %d: %s", code, stderr)
	}
}
