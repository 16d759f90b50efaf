package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/signet-auth/signet/backup"
	"github.com/signet-auth/signet/keksource"
	"github.com/signet-auth/signet/schema"
	"github.com/signet-auth/signet/storage"
	"github.com/signet-auth/signet/storeopen"
)

// schemaPlan is the schema this binary runs: Main.Schema, else schema.Default.
func (m *Main) schemaPlan() schema.Plan {
	if m.Schema.Current == 0 {
		return schema.Default()
	}
	return m.Schema
}

// migrateSchema refuses a store newer than this binary, and migrates an
// older one in one transaction after writing a backup file beside the
// database. A new store is stamped with the current version.
func (m *Main) migrateSchema(ctx context.Context, st storage.Store) error {
	c := &m.Config
	plan := m.schemaPlan()
	before := func(from int) error {
		kek, err := keksource.Resolve(ctx, c, m.Getenv, false, m.Logger)
		if err != nil {
			return err
		}
		path := filepath.Join(filepath.Dir(c.BoltPath()),
			fmt.Sprintf("signet.db.schema-v%d.%s.signet-backup", from, m.Now().UTC().Format("20060102T150405Z")))
		hdr := backup.Header{CreatedAt: m.Now().UTC(), SignetVersion: readBuildInfo().Version, SchemaVersion: from, KEKFingerprint: backup.KEKFingerprint(kek)}
		n, err := writeBackupFile(ctx, path, st, hdr, kek)
		if err != nil {
			return err
		}
		m.Logger.LogAttrs(ctx, slog.LevelWarn, "store schema upgrade: backup written before migrating",
			slog.String("path", path), slog.Int64("bytes", n), slog.Int("from", from), slog.Int("to", plan.Current))
		return nil
	}
	res, err := plan.Migrate(ctx, st, m.Now(), before)
	var tn *schema.TooNewError
	if errors.As(err, &tn) {
		return fmt.Errorf("%s: %w", storeopen.Name(c), err)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", storeopen.Name(c), err)
	}
	if len(res.Applied) > 0 {
		m.Logger.LogAttrs(ctx, slog.LevelWarn, "store schema upgraded", slog.Int("from", res.From), slog.Int("to", res.To), slog.Any("migrations", res.Applied))
	}
	return nil
}

// backupHeader is the header of a backup of this server's store.
func (m *Main) backupHeader(ctx context.Context) (backup.Header, error) {
	s, err := schema.Read(ctx, m.Store)
	if err != nil {
		return backup.Header{}, err
	}
	return backup.Header{CreatedAt: m.Now().UTC(), SignetVersion: readBuildInfo().Version, SchemaVersion: s.Version, KEKFingerprint: backup.KEKFingerprint(m.kek)}, nil
}

// writeBackupFile writes a backup of st, authenticated under kek, to path
// (mode 0600) through a temporary file that is checked before it is
// renamed into place. It refuses to replace an existing file.
func writeBackupFile(ctx context.Context, path string, st storage.Store, hdr backup.Header, kek []byte) (int64, error) {
	return writeVerified(ctx, path, kek, func(w *countWriter) error { return backup.Write(ctx, w, st, hdr, kek) })
}
