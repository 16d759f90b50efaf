// Package storeopen opens the store a configuration names (a bbolt file
// or etcd) for signet serve and the offline commands, with errors that name
// the fix: a database held by a running server, a file or directory this
// user may not use, a store whose schema this binary does not run.
package storeopen

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/signet-auth/signet/config"
	"github.com/signet-auth/signet/datadir"
	"github.com/signet-auth/signet/schema"
	"github.com/signet-auth/signet/storage"
	"github.com/signet-auth/signet/storage/bolt"
	"github.com/signet-auth/signet/storage/etcd"
)

// OpenBolt opens the database at path for an offline command: OpenBoltFile,
// then a refusal of a store whose schema this binary does not run.
func OpenBolt(path string, lockTimeout time.Duration) (*bolt.Store, error) {
	st, err := OpenBoltFile(path, lockTimeout)
	if err != nil {
		return nil, err
	}
	if err := CheckSchema(context.Background(), st); err != nil {
		st.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return st, nil
}

// OpenBoltFile opens the database at path, making its directory (0700) if
// needed. A database held by a running server is a clear error, not a hang.
func OpenBoltFile(path string, lockTimeout time.Duration) (*bolt.Store, error) {
	dir := filepath.Dir(path)
	if err := datadir.Check(dir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, datadir.Error(dir, err, datadir.CurrentUser())
	}
	if _, err := os.ReadDir(dir); err != nil {
		return nil, datadir.Error(dir, err, datadir.CurrentUser())
	}
	// The file holds the encrypted private keys and every client's secret
	// hash: refuse one that other users can read, as for the KEK file.
	if info, err := os.Stat(path); err == nil && info.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("database %s: mode %v lets other users read it: run chmod 600 %s", path, info.Mode().Perm(), path)
	}
	st, err := bolt.Open(path, bolt.Options{Timeout: lockTimeout})
	if errors.Is(err, bolt.ErrCorrupt) {
		return nil, fmt.Errorf("%w\nSignet will not replace it with a new, empty key set: restore %s from a backup (bbolt check reports what is broken)", err, path)
	}
	if errors.Is(err, bolt.ErrLocked) {
		return nil, &LockedError{path: path, err: err}
	}
	if errors.Is(err, fs.ErrPermission) {
		return nil, datadir.PermissionError("database", path, err, datadir.CurrentUser())
	}
	if err != nil {
		return nil, err
	}
	return st, nil
}

// LockedError is a database another process holds open. Offline commands
// can use --server instead; serve says what serve can do (serve sets Serve).
type LockedError struct {
	path string
	err  error
	// Serve is set when the opener is signet serve.
	Serve bool
}

func (e *LockedError) Error() string {
	if e.Serve {
		return fmt.Sprintf("database %s is in use by another signet process: stop that server first, or give this one its own data_dir or storage.bolt.path", e.path)
	}
	return fmt.Sprintf("database %s is in use by another signet process (a running server?): stop it, or pass --server URL to work through that server's admin API", e.path)
}

func (e *LockedError) Unwrap() error { return e.err }

// ReadPasswordFile reads an etcd password from a file only its owner can
// read, as for the KEK; one trailing newline is not part of it.
func ReadPasswordFile(path string) (string, error) {
	info, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("storage.etcd.password_file: %w", err)
	}
	if info.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("storage.etcd.password_file %s: mode %v lets other users read it: run chmod 600 %s", path, info.Mode().Perm(), path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("storage.etcd.password_file: %w", err)
	}
	p := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
	if p == "" {
		return "", fmt.Errorf("storage.etcd.password_file %s is empty", path)
	}
	return p, nil
}

// Open opens the store the configuration names; log may be nil.
func Open(ctx context.Context, c *config.Config, log *slog.Logger) (storage.Store, error) {
	st, err := OpenUnchecked(ctx, c, log)
	if err != nil {
		return nil, err
	}
	if err := CheckSchema(ctx, st); err != nil {
		st.Close()
		return nil, fmt.Errorf("%s: %w", Name(c), err)
	}
	return st, nil
}

// OpenUnchecked opens the configured store without the schema check:
// serve migrates an older schema itself (migrateSchema) after opening.
func OpenUnchecked(ctx context.Context, c *config.Config, log *slog.Logger) (storage.Store, error) {
	switch c.Storage.Backend {
	case "etcd":
		opts, errs := c.Storage.Etcd.Options()
		if len(errs) > 0 {
			return nil, errors.Join(errs...)
		}
		if c.Storage.Etcd.PasswordFile != "" {
			p, err := ReadPasswordFile(c.Storage.Etcd.PasswordFile)
			if err != nil {
				return nil, err
			}
			opts.Password = p
		}
		if log != nil {
			opts.Logger = log.With("component", "etcd")
		}
		st, err := etcd.Open(ctx, opts)
		if err != nil {
			return nil, fmt.Errorf("storage.backend etcd: %w", err)
		}
		return st, nil
	default:
		return OpenBoltFile(c.BoltPath(), c.Parsed.LockTimeout)
	}
}

// Name says which store the configuration names, for messages.
func Name(c *config.Config) string {
	if c.Storage.Backend == "etcd" {
		return fmt.Sprintf("etcd %s prefix %s", strings.Join(c.Storage.Etcd.Endpoints, ","), c.Storage.Etcd.Prefix)
	}
	return c.BoltPath()
}

// CheckSchema refuses, for offline commands, a store this binary
// cannot work on: newer than it, or older (serve migrates it, with a backup).
func CheckSchema(ctx context.Context, st storage.Store) error {
	s, err := schema.Read(ctx, st)
	if err != nil {
		return err
	}
	needs, err := schema.Default().Check(s)
	if err != nil {
		return err
	}
	if needs {
		return fmt.Errorf("the store has schema v%d, this binary v%d: start signet serve once to upgrade it (it writes a backup first)", s.Version, schema.Default().Current)
	}
	return nil
}
