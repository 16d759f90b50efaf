package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/signet-auth/signet/storage"
	"github.com/signet-auth/signet/storage/bolt"
)

// openBolt opens the database at path for an offline command: openBoltFile,
// then a refusal of a store whose schema this binary does not run.
func openBolt(path string, lockTimeout time.Duration) (*bolt.Store, error) {
	st, err := openBoltFile(path, lockTimeout)
	if err != nil {
		return nil, err
	}
	if err := checkSchemaOffline(context.Background(), st); err != nil {
		st.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return st, nil
}

// openBoltFile opens the database at path, making its directory (0700) if
// needed. A database held by a running server is a clear error, not a hang.
func openBoltFile(path string, lockTimeout time.Duration) (*bolt.Store, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("data directory %s: %w", dir, err)
	}
	if _, err := os.ReadDir(dir); err != nil {
		return nil, fmt.Errorf("data directory %s: %w", dir, err)
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
		return nil, fmt.Errorf("database %s is in use by another signet process (a running server?): stop it, or use --server to talk to it: %w", path, err)
	}
	if err != nil {
		return nil, err
	}
	return st, nil
}

// openStore opens the store of a data directory for offline commands.
func openStore(dataDir string) (storage.Store, error) {
	return openBolt(filepath.Join(dataDir, "signet.db"), time.Second)
}
