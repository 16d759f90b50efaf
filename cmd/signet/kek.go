package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/signet-auth/signet/keys"
)

// resolveKEK finds the key-encryption key: SIGNET_KEK (base64 of 32 bytes)
// first, then the file keys.encryption_key_file (default DATA_DIR/kek). For
// the zero-config first run only (default path, empty store) it creates that
// file with mode 0600 and says so. It never creates a KEK for a store that
// already has keys: that would orphan them.
func resolveKEK(ctx context.Context, c *Config, getenv func(string) string, storeEmpty bool, log *slog.Logger) ([]byte, error) {
	if v := getenv("SIGNET_KEK"); v != "" {
		k, err := decodeKEK(v)
		if err != nil {
			return nil, fmt.Errorf("SIGNET_KEK: %w", err)
		}
		return k, nil
	}
	path := c.KEKPath()
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		info, err := os.Stat(path)
		if err != nil {
			return nil, fmt.Errorf("keys.encryption_key_file %s: %w", path, err)
		}
		if info.Mode().Perm()&0o077 != 0 {
			return nil, fmt.Errorf("keys.encryption_key_file %s: mode %v lets other users read it: run chmod 600 %s", path, info.Mode().Perm(), path)
		}
		k, err := decodeKEK(string(b))
		if err != nil {
			return nil, fmt.Errorf("keys.encryption_key_file %s: %w", path, err)
		}
		return k, nil
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("keys.encryption_key_file %s: %w", path, err)
	case c.Storage.Backend == "etcd":
		return nil, errSharedKEK(path)
	case c.Keys.EncryptionKeyFile != "":
		return nil, fmt.Errorf("keys.encryption_key_file %s does not exist: create it (32 random bytes, base64) or unset the field to use %s", path, filepath.Join(c.DataDir, "kek"))
	case !storeEmpty:
		return nil, fmt.Errorf("the store has keys but no key-encryption key was found at %s: restore that file, or set SIGNET_KEK or keys.encryption_key_file to the KEK the keys were made with", path)
	}
	k := make([]byte, keys.KEKSize)
	if _, err := rand.Read(k); err != nil {
		return nil, fmt.Errorf("generate key-encryption key: %w", err)
	}
	if err := writePrivateFile(path, []byte(base64.StdEncoding.EncodeToString(k)+"\n")); err != nil {
		return nil, fmt.Errorf("write key-encryption key: %w", err)
	}
	log.LogAttrs(ctx, slog.LevelWarn, "created a new key-encryption key file; back it up: without it the signing keys cannot be read",
		slog.String("path", path))
	return k, nil
}

func decodeKEK(v string) ([]byte, error) {
	v = strings.TrimSpace(v)
	k, err := base64.StdEncoding.DecodeString(v)
	if err != nil {
		k, err = base64.RawURLEncoding.DecodeString(strings.TrimRight(v, "="))
	}
	if err != nil {
		return nil, errors.New("not base64: expected the base64 of 32 random bytes (openssl rand -base64 32)")
	}
	if len(k) != keys.KEKSize {
		return nil, fmt.Errorf("decodes to %d bytes, want %d (openssl rand -base64 32)", len(k), keys.KEKSize)
	}
	return k, nil
}

// writePrivateFile writes data to path atomically with mode 0600: a temp file
// in the same directory, fsync, rename, fsync the directory.
func writePrivateFile(path string, data []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
