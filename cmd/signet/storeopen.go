package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/signet-auth/signet/config"
	"github.com/signet-auth/signet/storage"
	"github.com/signet-auth/signet/storage/etcd"
)

// readPasswordFile reads an etcd password from a file only its owner can
// read, as for the KEK; one trailing newline is not part of it.
func readPasswordFile(path string) (string, error) {
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

// openConfigStore opens the store the configuration names; log may be nil.
func openConfigStore(ctx context.Context, c *config.Config, log *slog.Logger) (storage.Store, error) {
	st, err := openStoreUnchecked(ctx, c, log)
	if err != nil {
		return nil, err
	}
	if err := checkSchemaOffline(ctx, st); err != nil {
		st.Close()
		return nil, fmt.Errorf("%s: %w", storeName(c), err)
	}
	return st, nil
}

// openStoreUnchecked opens the configured store without the schema check:
// serve migrates an older schema itself (migrateSchema) after opening.
func openStoreUnchecked(ctx context.Context, c *config.Config, log *slog.Logger) (storage.Store, error) {
	switch c.Storage.Backend {
	case "etcd":
		opts, errs := c.Storage.Etcd.Options()
		if len(errs) > 0 {
			return nil, errors.Join(errs...)
		}
		if c.Storage.Etcd.PasswordFile != "" {
			p, err := readPasswordFile(c.Storage.Etcd.PasswordFile)
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
		return openBoltFile(c.BoltPath(), c.Parsed.LockTimeout)
	}
}

// storeName says which store the configuration names, for messages.
func storeName(c *config.Config) string {
	if c.Storage.Backend == "etcd" {
		return fmt.Sprintf("etcd %s prefix %s", strings.Join(c.Storage.Etcd.Endpoints, ","), c.Storage.Etcd.Prefix)
	}
	return c.BoltPath()
}

// errSharedKEK is why Signet never creates a KEK for an etcd store: every
// replica would create its own, and none could read the others' keys.
func errSharedKEK(path string) error {
	return fmt.Errorf("storage.backend etcd: no key-encryption key (SIGNET_KEK unset, no file at %s): "+
		"every replica needs the same one, so Signet does not create it; "+
		"make one (openssl rand -base64 32) and give it to every replica as SIGNET_KEK or keys.encryption_key_file", path)
}
